"""The cost query: one parser and one SQL builder, used by both the CLI and the API.

A query names a window of charge periods [start, end), a granularity (day or month), dimensions to group by
(FOCUS columns or `tag:<key>`), filters (same keys; several values of one key are OR-ed, different keys AND-ed)
and one cost metric. Results are exact decimals, one row per period, group and currency; totals are per currency,
because two currencies are never added. With `currency` the query reports in that one currency instead: each row is
converted with finance's rate for its month (app.currency; a missing rate is an error), rounded half-up to 18
decimal places, rows that differ only by their billing currency are merged, and the totals are the converted rows'
sums.

Every query runs under a scope (app.access): None sees all costs; a team name reads the allocation parts of that
team only, whatever the query groups or filters on (so they can only narrow it), and a filter naming another team
is refused (ScopeForbidden, 403).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

import duckdb

from app import MONEY_PRECISION
from app.access import Scope, ScopeForbidden
from app.currency import RateTable, parse_currency, rate_str
from app.allocation.compile import ALLOCATION_TABLE
from app.allocation.rules import BUILTIN_DIMENSIONS
from app.focus import COST_METRICS, DIMENSIONS, canonical_dimension
from app.warehouse import COST_TABLE

GRANULARITIES = ("day", "month")
DEFAULT_METRIC = "EffectiveCost"
MAX_ROWS = 1_000_000
# Limits that keep every query answerable in well under a second on a large warehouse: a longer window, more
# dimensions or more filter values are a 400 naming the parameter, never a timeout.
MAX_DAYS = {"day": 732, "month": 3660}  # 2 years of days, 10 years of months
MAX_GROUP_BY = 4
MAX_FILTER_VALUES = 100


class QueryError(ValueError):
    """A query parameter is invalid; `parameter` names it (API problem details, CLI messages)."""

    def __init__(self, parameter: str, message: str):
        self.parameter, self.message = parameter, message
        super().__init__(f"{parameter}: {message}")


@dataclass(frozen=True)
class CostQuery:
    start: date | None = None
    end: date | None = None  # exclusive
    granularity: str = "month"
    group_by: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metric: str = DEFAULT_METRIC
    limit: int = 100_000
    currency: str | None = None  # report in this currency (converted with app.currency rates); None: per currency

    def echo(self) -> dict:
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "granularity": self.granularity,
            "group_by": list(self.group_by),
            "filter": {k: list(v) for k, v in self.filters.items()},
            "metric": self.metric,
            "limit": self.limit,
            "currency": self.currency,
        }


@dataclass
class CostResult:
    query: CostQuery
    rows: list[dict]
    totals: list[dict]
    truncated: bool = False
    # with a `currency`: {"currency", "rates": [{"currency", "month", "rate", "source"}]}, the rates used
    conversion: dict | None = None

    def to_json(self) -> dict:
        out = {
            "query": self.query.echo(),
            "rows": [{**r, "cost": money_str(r["cost"])} for r in self.rows],
            "totals": [{"currency": t["currency"], "cost": money_str(t["cost"])} for t in self.totals],
        }
        if self.truncated:
            out["truncated"] = True
        if self.conversion is not None:
            out["conversion"] = self.conversion
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        keys = ["period", *self.query.group_by, "cost", "currency"]
        writer.writerow(keys)
        for r in self.rows:
            writer.writerow(["" if r[k] is None else (money_str(r[k]) if k == "cost" else r[k]) for k in keys])
        return buf.getvalue()


def money_str(value: Decimal | None) -> str | None:
    """An exact decimal as text: no exponent, no trailing zeros beyond the cents."""
    if value is None:
        return None
    text = format(Decimal(value).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def cents_str(value: Decimal | None) -> str | None:
    """For human tables only: rounded half-up to the cent. JSON and CSV always carry the exact amount."""
    if value is None:
        return None
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# -- parsing -----------------------------------------------------------------------------------------------------
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


def parse_date(parameter: str, value: str | None) -> date | None:
    if value in (None, ""):
        return None
    if not _DATE.match(value):
        raise QueryError(parameter, f"{value!r} is not a date (YYYY-MM-DD, or YYYY-MM for a month's first day)")
    try:
        return date.fromisoformat(value if len(value) == 10 else value + "-01")
    except ValueError as exc:
        raise QueryError(parameter, f"{value!r} is not a valid date ({exc})") from exc


def parse_key(parameter: str, key: str, allocation_dimensions: tuple[str, ...] = BUILTIN_DIMENSIONS) -> str:
    """The canonical spelling of a group/filter key: a FOCUS column, a provider x_ column, tag:<key>, or an
    allocation dimension (team, service, cost_center, environment and the active rules' custom dimensions)."""
    key = key.strip()
    if key.lower() in allocation_dimensions:
        return key.lower()
    if key.lower().startswith("tag:"):
        if not key[4:]:
            raise QueryError(parameter, "tag: needs a key, e.g. tag:team")
        return "tag:" + key[4:]
    canonical = canonical_dimension(key)
    if canonical is None:
        raise QueryError(
            parameter,
            f"unknown dimension {key!r}; use a FOCUS column ({', '.join(DIMENSIONS[:6])}, ...), tag:<key> or an "
            f"allocation dimension ({', '.join(allocation_dimensions)})",
        )
    return canonical


def parse_query(
    start: str | None = None,
    end: str | None = None,
    granularity: str | None = None,
    group_by: list[str] | None = None,
    filters: list[str] | None = None,
    metric: str | None = None,
    limit: int | None = None,
    allocation_dimensions: tuple[str, ...] = BUILTIN_DIMENSIONS,
    limits: bool = False,
    currency: str | None = None,
) -> CostQuery:
    """limits: enforce the API's MAX_DAYS, MAX_GROUP_BY and MAX_FILTER_VALUES (the CLI, a local tool, does not)."""
    granularity = (granularity or "month").lower()
    if granularity not in GRANULARITIES:
        raise QueryError("granularity", f"{granularity!r} is not one of {', '.join(GRANULARITIES)}")
    metric_name = metric or DEFAULT_METRIC
    canonical_metric = next((m for m in COST_METRICS if m.lower() == metric_name.lower()), None)
    if canonical_metric is None:
        raise QueryError("metric", f"{metric_name!r} is not one of {', '.join(COST_METRICS)}")
    groups: list[str] = []
    for item in group_by or []:
        for key in filter(None, (k.strip() for k in item.split(","))):
            canonical = parse_key("group_by", key, allocation_dimensions)
            if canonical not in groups:
                groups.append(canonical)
    parsed_filters: dict[str, list[str]] = {}
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep:  # allocation dimensions also take KEY:VALUE (cost_center:CC-42)
            key, sep, value = item.partition(":")
            if not sep or key.strip().lower() not in allocation_dimensions:
                raise QueryError("filter", f"{item!r} is not KEY=VALUE (e.g. ProviderName=AWS, tag:team=payments "
                                           f"or team=payments)")
        parsed_filters.setdefault(parse_key("filter", key, allocation_dimensions), []).append(value)
    if limits and len(groups) > MAX_GROUP_BY:
        raise QueryError("group_by", f"{len(groups)} dimensions; at most {MAX_GROUP_BY} per query")
    if limits and sum(len(v) for v in parsed_filters.values()) > MAX_FILTER_VALUES:
        raise QueryError("filter", f"more than {MAX_FILTER_VALUES} filter values")
    start_d, end_d = parse_date("start", start), parse_date("end", end)
    if start_d and end_d and start_d >= end_d:
        raise QueryError("end", f"end ({end_d}) must be after start ({start_d}); end is exclusive")
    if limits and start_d and end_d:
        check_range(start_d, end_d, granularity)
    if limit is not None and not (1 <= limit <= MAX_ROWS):
        raise QueryError("limit", f"must be between 1 and {MAX_ROWS}")
    try:
        target = parse_currency(currency)
    except ValueError as exc:
        raise QueryError("currency", str(exc)) from None
    return CostQuery(
        start_d, end_d, granularity, tuple(groups), {k: tuple(v) for k, v in parsed_filters.items()},
        canonical_metric, limit or 100_000, target,
    )


def check_range(start: date, end: date, granularity: str) -> None:
    days = (end - start).days
    if days > MAX_DAYS[granularity]:
        raise QueryError("end", f"the window [{start}, {end}) spans {days} days; at most {MAX_DAYS[granularity]} "
                                f"with granularity={granularity}")


def check_scope(q: CostQuery, scope: Scope) -> None:
    """A team key may name its own team only; anything else it asks is narrowed by the scope in the SQL."""
    if scope is None:
        return
    for value in q.filters.get("team", ()):
        if value != scope:
            raise ScopeForbidden("filter", f"this key reads team {scope!r} only, not {value or '(no team)'!r}")


# -- running -----------------------------------------------------------------------------------------------------
def _key_sql(key: str, params: list) -> str:
    if key.startswith("tag:"):
        params.append(key[4:])
        return "Tags[?]"
    if _is_allocation(key) and key not in BUILTIN_DIMENSIONS:
        params.append(key)
        return "dims[?]"
    return f'"{key}"'


def _is_allocation(key: str) -> bool:
    return not key.startswith("tag:") and canonical_dimension(key) is None


# Columns cost_allocation carries itself; other FOCUS columns and Tags come from a join on x_LineId.
_PART_COLUMNS = ("ChargePeriodStart", "BillingCurrency", "ProviderName", "x_SourceId", *COST_METRICS)


def rollup_covers(q: CostQuery) -> bool:
    """Whether the daily rollups (app.rollups) hold every dimension the query groups or filters on."""
    from app.rollups import table_for

    return table_for((*q.group_by, *q.filters)) is not None


def _source(q: CostQuery, scope: Scope = None, rollup: bool = False) -> str:
    """The table a query reads: the warehouse lines, or, when it groups or filters on an allocation dimension or
    runs under a team scope, the allocation parts (joined to their lines for FOCUS columns and tags). Parts sum to
    their line, so totals are the same either way."""
    keys = set(q.group_by) | set(q.filters)
    if rollup:
        from app.rollups import table_for

        table = table_for(keys)
        if scope is None and not any(_is_allocation(k) for k in keys):
            return table
        return f"(SELECT * FROM {table} WHERE allocated) AS parts"
    if scope is None and not any(_is_allocation(k) for k in keys):
        return COST_TABLE
    focus = sorted({k for k in keys if not _is_allocation(k) and not k.startswith("tag:")} - set(_PART_COLUMNS))
    tags = any(k.startswith("tag:") for k in keys)
    cols = ["a.team", "a.service", "a.cost_center", "a.environment", "a.dims"] + [f'a."{c}"' for c in _PART_COLUMNS]
    cols += [f'c."{c}"' for c in focus] + (["c.Tags"] if tags else [])
    join = f" JOIN {COST_TABLE} c ON c.x_LineId = a.x_LineId" if focus or tags else ""
    return f"(SELECT {', '.join(cols)} FROM {ALLOCATION_TABLE} a{join}) AS parts"


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def resolve_window(con: duckdb.DuckDBPyConnection, q: CostQuery) -> CostQuery:
    """Fill a missing start/end: by default the latest month that has data (end exclusive)."""
    if q.start and q.end:
        return q
    start, end = q.start, q.end
    if start is None and end is None:
        latest = con.execute(f"SELECT max(ChargePeriodStart) FROM {COST_TABLE}").fetchone()[0]
        anchor = (latest.date() if latest else date.today()).replace(day=1)
        start, end = anchor, _add_months(anchor, 1)
    elif start is None:
        start = _add_months(end.replace(day=1), -1) if end.day == 1 else end.replace(day=1)
    else:
        end = _add_months(start.replace(day=1), 1)
    return replace(q, start=start, end=end)


def _where(q: CostQuery, params: list, scope: Scope = None) -> str:
    clauses = ["ChargePeriodStart >= ?", "ChargePeriodStart < ?"]
    params += [datetime.combine(q.start, datetime.min.time()), datetime.combine(q.end, datetime.min.time())]
    if scope is not None:  # always first: nothing after it can widen the rows
        clauses.append("team = ?")
        params.append(scope)
    for key, values in q.filters.items():
        wanted = [v for v in values if v != ""]
        parts = []
        if wanted:
            parts.append(f"{_key_sql(key, params)} IN ({', '.join('?' for _ in wanted)})")
            params += wanted
        if len(wanted) != len(values):  # an empty value matches rows where the key is missing
            parts.append(f"{_key_sql(key, params)} IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses)


def run_query(con: duckdb.DuckDBPyConnection, q: CostQuery, scope: Scope = None,
              rollups: bool | None = None, rates: RateTable | None = None) -> CostResult:
    """rollups: None = read the daily rollups when they cover the query and are current, else the lines; True or
    False force one path (tests compare them). rates: the rates into `q.currency` (required when it is set)."""
    if q.currency and (rates is None or rates.target != q.currency):
        raise ValueError(f"a query in {q.currency} needs the rates into {q.currency}")
    check_scope(q, scope)
    q = resolve_window(con, q)  # a defaulted window is one month at most: within every limit
    if rollups is None:
        from app.rollups import fresh

        rollups = rollup_covers(q) and fresh(con)
    elif rollups and not rollup_covers(q):
        raise ValueError("the rollups do not cover this query")
    src = _source(q, scope, rollups)
    trunc = "day" if q.granularity == "day" else "month"
    # Rollups carry the day as a DATE: bucketing it needs no time-zone arithmetic (3x faster than on TIMESTAMPTZ).
    period = (("day" if trunc == "day" else "CAST(date_trunc('month', day) AS DATE)") if rollups
              else f"CAST(date_trunc('{trunc}', ChargePeriodStart) AS DATE)")
    params: list = []
    # Tags[?] placeholders come first in the SELECT, so their parameters are bound before the WHERE's.
    group_exprs = [_key_sql(k, params) for k in q.group_by]
    select_groups = "".join(f", {e} AS g{i}" for i, e in enumerate(group_exprs))
    where = _where(q, params, scope)
    group_positions = ", ".join(str(i) for i in range(1, len(group_exprs) + 3))
    metric = f'"{q.metric}"'
    sql = (
        f"SELECT {period} AS period{select_groups}, "
        f"BillingCurrency AS currency, sum({metric}) AS cost "
        f"FROM {src} WHERE {where} GROUP BY {group_positions} "
        f"ORDER BY 1, cost DESC, {group_positions} LIMIT {q.limit + 1}"
    )
    fetched = con.execute(sql, params).fetchall()
    truncated = len(fetched) > q.limit
    rows = []
    for rec in fetched[: q.limit]:
        period, *groups, currency, cost = rec
        row = {"period": period.isoformat()}
        row.update(dict(zip(q.group_by, groups)))
        row.update({"cost": cost if cost is not None else Decimal(0), "currency": currency})
        rows.append(row)
    if q.currency:  # one total in that currency, from the converted rows (or, when cut, per month and currency)
        month_sums = None
        if truncated:
            m_params: list = []
            m_where = _where(q, m_params, scope)
            month = "CAST(date_trunc('month', day) AS DATE)" if rollups else \
                "CAST(date_trunc('month', ChargePeriodStart) AS DATE)"
            month_sums = con.execute(f"SELECT {month}, BillingCurrency, sum({metric}) FROM {src} WHERE {m_where} "
                                     "GROUP BY 1, 2", m_params).fetchall()
        return convert(CostResult(q, rows, [], truncated), rates, month_sums)
    if truncated:  # the totals cover every row, also those past the limit
        t_params: list = []
        t_where = _where(q, t_params, scope)
        sums = con.execute(f"SELECT BillingCurrency, sum({metric}) FROM {src} WHERE {t_where} GROUP BY 1 ORDER BY 1",
                           t_params).fetchall()
    else:  # every group is here: their exact sums are the totals (one query saved)
        by_currency: dict[str, Decimal] = {}
        with localcontext(prec=MONEY_PRECISION):  # DECIMAL(38,18) sums exceed the default 28 digits: never round
            for _, *_, currency, cost in fetched:
                by_currency[currency] = by_currency.get(currency, Decimal(0)) + (cost if cost is not None else 0)
        sums = sorted(by_currency.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    totals = [{"currency": cur, "cost": cost if cost is not None else Decimal(0)} for cur, cost in sums]
    return CostResult(q, rows, totals, truncated)


def require_rates(rates: RateTable, currencies, month: str) -> None:
    """QueryError("currency") naming every one of `currencies` without a rate into `rates.target` for `month`: the
    check a one-month report (statements, monthly totals, the ITFM export) makes before it converts anything."""
    missing = rates.missing((c, month) for c in currencies)
    if missing:
        raise QueryError("currency", rates.describe_missing(missing))


def convert(result: CostResult, rates: RateTable, month_sums: list[tuple] | None = None) -> CostResult:
    """`result` in `rates.target`: each row's cost x the rate of its month and billing currency, rounded half-up to
    18 decimal places; rows equal but for their currency merged (and re-ordered by period, cost descending, groups);
    totals the sum of the converted rows, or, for a truncated result, of `month_sums` ((month, currency, sum) of
    the whole query) converted the same way. Raises QueryError("currency") naming every missing rate."""
    target = rates.target
    used: dict[tuple[str, str], tuple[Decimal, str | None]] = {}
    missing: dict[str, set[str]] = {}

    def into(cost: Decimal | None, currency: str | None, month: str) -> Decimal:
        cost = cost if cost is not None else Decimal(0)
        if currency == target:
            return cost
        found = rates.rates.get((currency, month))
        if found is None:
            missing.setdefault(currency or "(none)", set()).add(month)
            return Decimal(0)
        used[(currency, month)] = found
        return rates.convert(cost, currency, month)

    keys = ("period", *result.query.group_by)
    merged: dict[tuple, Decimal] = {}
    with localcontext(prec=MONEY_PRECISION):
        for row in result.rows:
            key = tuple(row[k] for k in keys)
            merged[key] = merged.get(key, Decimal(0)) + into(row["cost"], row["currency"], row["period"][:7])
        if month_sums is not None:
            total = sum((into(cost, cur, m.isoformat()[:7]) for m, cur, cost in month_sums), Decimal(0))
        else:
            total = sum(merged.values(), Decimal(0))
    if missing:
        raise QueryError("currency", rates.describe_missing(missing))
    ordered = sorted(merged.items(), key=lambda kv: (kv[0][0], -kv[1], tuple(
        (g is None, "" if g is None else str(g)) for g in kv[0][1:])))
    rows = [{**dict(zip(keys, key)), "cost": cost, "currency": target} for key, cost in ordered]
    has_rows = bool(result.rows) or bool(month_sums)
    totals = [{"currency": target, "cost": total}] if has_rows else []
    conversion = {"currency": target, "rates": [
        {"currency": cur, "month": month, "rate": rate_str(rate), "source": source}
        for (cur, month), (rate, source) in sorted(used.items())]}
    return CostResult(result.query, rows, totals, result.truncated, conversion)


