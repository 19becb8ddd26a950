"""Budgets: scopes, periods, versions side by side, CSV round-trip, and their status (actual to date, estimate at
completion from the forecast, variance, burn rate, projected crossing date).

Arithmetic (all Decimal; the actuals are exact warehouse sums, the forecast is rounded to the cent per day):
- actual = Σ metric over the period's days up to the last day of data (or the day before `as_of`);
- forecast_remaining = Σ daily forecast over the period's days after that; EAC = actual + forecast_remaining;
- variance = EAC − budget (positive: over budget, unfavorable; zero or negative: favorable);
  variance_pct = variance / budget × 100, rounded half up to 0.01;
- burn_rate = actual / days elapsed, and phased_budget = budget × days elapsed / days in period, rounded half up to
  the cent; variance_to_date = actual − phased_budget;
- pct_of_budget_actual = actual / budget × 100, pct_of_budget_forecast = EAC / budget × 100 (0.01);
- projected_crossing_date: the first day on which actual-so-far plus forecast-so-far reaches the budget.
The budget of a period is its newest version (reforecast-N over plan); every version's amount is shown beside it.
"""
from __future__ import annotations

import csv
import io
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import duckdb
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.costs import cents_str, money_str
from app.currency import RateTable, describe_rates, rate_str
from app.itfm import periods
from app.itfm.actuals import DIMS, METRICS, DailySeries, ScopeDims, daily_series, data_end
from app.itfm.conversion import ConvertedSeries, convert_series, left_out_in
from app.itfm.forecast import MAX_HORIZON_DAYS, DEFAULT_MODEL, Forecast, NotEnoughHistory, forecast_series
from app.itfm.models import Budget, BudgetAmount

CSV_COLUMNS = ("budget", *DIMS, "period_type", "fiscal_year_start", "currency", "metric", "version", "period",
               "amount", "convert_currencies")
REQUIRED_CSV_COLUMNS = ("budget", "currency", "period", "amount")
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0", "")
VERSION_RE = re.compile(r"^(plan|reforecast-([1-9][0-9]{0,3}))$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


class BudgetError(ValueError):
    """Invalid budget input: `problems` is a list of {"parameter", "detail"} (for CSV: `row N, column`)."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__("; ".join(f"{p['parameter']}: {p['detail']}" for p in problems))


class BudgetNotFound(LookupError):
    pass


def version_rank(version: str) -> int:
    m = VERSION_RE.match(version)
    return 0 if m is None or m.group(2) is None else int(m.group(2))


# -- validation and CRUD -------------------------------------------------------------------------------------------
def _check_attrs(attrs: dict, where: str = "") -> tuple[dict, list[dict]]:
    problems = []

    def bad(name, detail):
        problems.append({"parameter": f"{where}{name}", "detail": detail})

    out = {}
    name = (attrs.get("name") or "").strip()
    if not 1 <= len(name) <= 200:
        bad("name" if not where else "budget", "a budget needs a name of 1 to 200 characters")
    out["name"] = name
    for d in DIMS:
        v = attrs.get(d)
        v = None if v is None or str(v).strip() == "" else str(v).strip()
        if v is not None and len(v) > 200:
            bad(d, "at most 200 characters")
        out[d] = v
    kind = (attrs.get("period") or "month").strip()
    if kind not in periods.KINDS:
        bad("period" if not where else "period_type", f"{kind!r} is not one of {', '.join(periods.KINDS)}")
    out["period"] = kind
    fy = attrs.get("fiscal_year_start", 1)
    try:
        fy = int(fy if fy not in (None, "") else 1)
        if not 1 <= fy <= 12:
            raise ValueError
    except (TypeError, ValueError):
        bad("fiscal_year_start", f"{fy!r} is not a month number 1-12")
        fy = 1
    out["fiscal_year_start"] = fy
    cur = (attrs.get("currency") or "").strip().upper()
    if not CURRENCY_RE.match(cur):
        bad("currency", f"{attrs.get('currency')!r} is not an ISO 4217 currency code (e.g. USD)")
    out["currency"] = cur
    metric = (attrs.get("metric") or "EffectiveCost").strip()
    if metric not in METRICS:
        bad("metric", f"{metric!r} is not one of {', '.join(METRICS)}")
    out["metric"] = metric
    if "convert_currencies" in attrs:  # absent (a CSV without the column): an existing budget keeps its setting
        flag = attrs.get("convert_currencies")
        if isinstance(flag, str) and flag.strip().lower() in TRUE + FALSE:
            flag = flag.strip().lower() in TRUE
        if flag is None:
            flag = False
        if not isinstance(flag, bool):
            bad("convert_currencies", f"{attrs.get('convert_currencies')!r} is not true or false")
        out["convert_currencies"] = flag
    if "description" in attrs:
        out["description"] = attrs.get("description")
    return out, problems


def _check_amount(item: dict, kind: str, fy: int, where: str) -> tuple[tuple | None, list[dict]]:
    problems = []
    version = (item.get("version") or "plan").strip()
    if not VERSION_RE.match(version):
        problems.append({"parameter": f"{where}version",
                         "detail": f"{version!r} is not plan or reforecast-N (N = 1, 2, ...)"})
    try:
        start, end = periods.bounds(kind, str(item.get("period") or ""), fy)
    except periods.PeriodError as exc:
        problems.append({"parameter": f"{where}period", "detail": str(exc)})
        start = end = None
    raw = item.get("amount")
    try:
        amount = Decimal(str(raw).strip())
        if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -18 or abs(amount) >= Decimal(10) ** 20:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append({"parameter": f"{where}amount",
                         "detail": f"{raw!r} is not a decimal amount >= 0 (at most 20 digits and 18 decimals)"})
        amount = None
    if problems:
        return None, problems
    return (version, start, end, amount), []


def _apply_amounts(session: Session, budget: Budget, amounts: list[tuple]) -> None:
    existing = {(a.version, a.period_start): a for a in budget.amounts}
    for version, start, end, amount in amounts:
        row = existing.get((version, start))
        if row is None:
            row = BudgetAmount(version=version, period_start=start, period_end=end, amount=amount)
            budget.amounts.append(row)
            existing[(version, start)] = row
        else:
            row.amount, row.period_end = amount, end


def create_budget(session: Session, attrs: dict, amounts: list[dict] | None = None) -> Budget:
    clean, problems = _check_attrs(attrs)
    parsed = []
    for i, item in enumerate(amounts or []):
        p, errs = _check_amount(item, clean["period"], clean["fiscal_year_start"], f"amounts[{i}].")
        problems += errs
        if p:
            parsed.append(p)
    if not problems and session.scalar(select(Budget.id).where(Budget.name == clean["name"])):
        problems.append({"parameter": "name", "detail": f"a budget named {clean['name']!r} exists already"})
    if problems:
        raise BudgetError(problems)
    b = Budget(**clean)
    session.add(b)
    _apply_amounts(session, b, parsed)
    session.commit()
    return b


def get_budget(session: Session, budget_id: str, team: str | None = None) -> Budget:
    """By id or name; a team scope sees only budgets scoped to its team (others: not found)."""
    b = session.scalar(select(Budget).options(selectinload(Budget.amounts)).where(
        (Budget.id == budget_id) | (Budget.name == budget_id)))
    if b is None or (team is not None and b.team != team):
        raise BudgetNotFound(f"no budget {budget_id!r}")
    return b


def list_budgets(session: Session, team: str | None = None, limit: int | None = None,
                 offset: int = 0) -> tuple[int, list[Budget]]:
    stmt = select(Budget)
    if team is not None:
        stmt = stmt.where(Budget.team == team)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    stmt = stmt.options(selectinload(Budget.amounts)).order_by(Budget.name).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return total, list(session.scalars(stmt))


def delete_budget(session: Session, budget_id: str) -> None:
    b = get_budget(session, budget_id)
    session.delete(b)
    session.commit()


def budget_view(b: Budget) -> dict:
    return {"id": b.id, "name": b.name, "scope": {d: getattr(b, d) for d in DIMS}, "period_type": b.period,
            "fiscal_year_start": b.fiscal_year_start, "currency": b.currency,
            "convert_currencies": bool(b.convert_currencies), "metric": b.metric, "description": b.description,
            "amounts": [{"version": a.version, "period": periods.label(b.period, a.period_start, b.fiscal_year_start),
                         "period_start": a.period_start.isoformat(), "period_end": a.period_end.isoformat(),
                         "amount": money_str(a.amount)}
                        for a in sorted(b.amounts, key=lambda a: (a.period_start, version_rank(a.version)))]}


# -- CSV round-trip --------------------------------------------------------------------------------------------------
def export_csv(session: Session, team: str | None = None) -> str:
    """Every budget amount as one row (CSV_COLUMNS): what import_csv reads back unchanged."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for b in list_budgets(session, team)[1]:
        for a in sorted(b.amounts, key=lambda a: (a.period_start, version_rank(a.version))):
            w.writerow([b.name, *((getattr(b, d) or "") for d in DIMS), b.period, b.fiscal_year_start, b.currency,
                        b.metric, a.version, periods.label(b.period, a.period_start, b.fiscal_year_start),
                        money_str(a.amount), "true" if b.convert_currencies else "false"])
    return buf.getvalue()


def import_csv(session: Session, text: str, replace: bool = False) -> dict:
    """Create or update the budgets a CSV names (CSV_COLUMNS; `budget` is the name) and upsert their amounts by
    (version, period). replace: also delete the amounts of those budgets that the file does not list. All or
    nothing: any problem (each named `row N, column`) changes nothing."""
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        rows = list(reader)
    except csv.Error as exc:
        raise BudgetError([{"parameter": "body", "detail": f"not a CSV table: {exc}"}]) from exc
    return _import_rows(session, reader.fieldnames or [], rows, replace)


def _import_rows(session: Session, fieldnames: list[str], rows: list[dict], replace: bool) -> dict:
    header = [h.strip() for h in fieldnames if h is not None]
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    if missing:
        raise BudgetError([{"parameter": "header", "detail": f"missing column(s) {', '.join(missing)}; expected "
                                                              f"{','.join(CSV_COLUMNS)}"}])
    problems: list[dict] = []
    budgets: OrderedDict[str, tuple[dict, int]] = OrderedDict()
    amounts: dict[str, list[tuple]] = {}
    seen: dict[tuple, int] = {}
    for n, raw in enumerate(rows, start=1):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"row {n}, "
        attrs, errs = _check_attrs({"name": row.get("budget"), **{d: row.get(d) for d in DIMS},
                                    "period": row.get("period_type") or "month",
                                    "fiscal_year_start": row.get("fiscal_year_start") or 1,
                                    "currency": row.get("currency"), "metric": row.get("metric") or "EffectiveCost",
                                    **({"convert_currencies": row.get("convert_currencies")}
                                       if "convert_currencies" in header else {})},
                                   where)
        problems += errs
        if errs:
            continue
        name = attrs["name"]
        if name in budgets and budgets[name][0] != attrs:
            problems.append({"parameter": f"{where}budget", "detail": f"budget {name!r} has other scope, period type, "
                             f"currency, conversion or metric on row {budgets[name][1]}"})
            continue
        budgets.setdefault(name, (attrs, n))
        parsed, errs = _check_amount(row, attrs["period"], attrs["fiscal_year_start"], where)
        problems += errs
        if parsed:
            key = (name, parsed[0], parsed[1])
            if key in seen:
                problems.append({"parameter": f"{where}period", "detail": f"{name} {parsed[0]} {row.get('period')} "
                                 f"is on row {seen[key]} already"})
                continue
            seen[key] = n
            amounts.setdefault(name, []).append(parsed)
    if problems:
        raise BudgetError(problems)
    created = updated = 0
    lines = 0
    for name, (attrs, _) in budgets.items():
        b = session.scalar(select(Budget).options(selectinload(Budget.amounts)).where(Budget.name == name))
        if b is None:
            b = Budget(**attrs)
            session.add(b)
            created += 1
        else:
            for k, v in attrs.items():
                setattr(b, k, v)
            b.updated_at = datetime.now(timezone.utc)
            updated += 1
            if replace:
                keep = {(v, s) for v, s, _, _ in amounts.get(name, [])}
                for a in list(b.amounts):
                    if (a.version, a.period_start) not in keep:
                        b.amounts.remove(a)
        _apply_amounts(session, b, amounts.get(name, []))
        lines += len(amounts.get(name, []))
    session.commit()
    return {"budgets_created": created, "budgets_updated": updated, "amounts": lines}


# -- status ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetStatus:
    """One budget in one period. Money is Decimal (exact actuals; forecast to the cent), percentages to 0.01."""

    budget_id: str
    name: str
    scope: dict  # team, service, cost_center, provider, account (None = any)
    team: str | None
    period_type: str  # month | quarter | fiscal_year
    period: str  # label: 2026-10, FY2027-Q2, FY2027
    period_start: date
    period_end: date  # exclusive
    currency: str
    metric: str
    version: str  # the version the budget figure comes from (newest for the period)
    budget: Decimal
    versions: dict  # {version: amount} side by side
    actual: Decimal
    actual_through: date | None  # last day counted in `actual` (None: the period has not started)
    days_elapsed: int
    days_in_period: int
    burn_rate: Decimal  # actual per elapsed day
    phased_budget: Decimal
    variance_to_date: Decimal  # actual − phased_budget
    forecast_remaining: Decimal | None
    eac: Decimal | None  # estimate at completion = actual + forecast_remaining
    variance: Decimal | None  # eac − budget: > 0 unfavorable
    variance_pct: Decimal | None
    favorable: bool | None
    pct_of_budget_actual: Decimal | None
    pct_of_budget_forecast: Decimal | None
    projected_crossing_date: date | None
    crossed: bool  # actual alone reached the budget
    forecast_model: str | None
    forecast_note: str | None  # why there is no forecast (e.g. fewer than 14 days of data)
    convert_currencies: bool = False
    # the exchange rates applied to days of the period counted so far: [{currency, month, rate, source}]
    conversion: list = field(default_factory=list)
    # the scope's costs in the period so far that `actual` leaves out: [{currency, amount (in that currency),
    # months, reason}] (billed in another currency, or no exchange rate for their month)
    not_counted: list = field(default_factory=list)

    def to_json(self) -> dict:
        out = {}
        for k, v in asdict(self).items():
            if k == "conversion":
                v = [{**r, "rate": rate_str(r["rate"])} for r in v]
            elif k == "not_counted":
                v = [{**r, "amount": money_str(r["amount"])} for r in v]
            elif isinstance(v, Decimal):
                v = money_str(v) if not k.startswith(("pct", "variance_pct")) else str(v)
            elif isinstance(v, date):
                v = v.isoformat()
            elif k == "versions":
                v = {name: money_str(a) for name, a in v.items()}
            out[k] = v
        return out


def _pct(x: Decimal, whole: Decimal) -> Decimal | None:
    return None if whole == 0 else (x * HUNDRED / whole).quantize(CENT, ROUND_HALF_UP)


def compute_status(b: Budget, start: date, end: date, series: DailySeries | None, forecast: Forecast | None,
                   note: str | None, through: date, conversion: list | None = None,
                   not_counted: list | None = None) -> BudgetStatus:
    """The status of budget b in [start, end), given the scope's daily series (ending on the last day counted,
    `through`) and a forecast starting the day after it (None: no forecast, `note` says why); `conversion` and
    `not_counted` as BudgetStatus carries them."""
    lines = [a for a in b.amounts if a.period_start == start]
    versions = {a.version: a.amount for a in sorted(lines, key=lambda a: version_rank(a.version))}
    version = max(versions, key=version_rank)
    budget = versions[version]
    days = (end - start).days
    last = min(through, end - timedelta(days=1))
    elapsed = max(0, (last - start).days + 1)
    daily_actual: list[Decimal] = []
    for i in range(elapsed):
        d = start + timedelta(days=i)
        j = (d - series.start).days if series is not None else -1
        daily_actual.append(series.usage[j] + series.calendar[j] if series is not None and 0 <= j < len(series.usage)
                            else Decimal(0))
    actual = sum(daily_actual, Decimal(0))
    remaining_start = max(start, through + timedelta(days=1))
    daily_fc: list[Decimal] = []
    model = None
    if remaining_start >= end:
        forecast_remaining, note = Decimal(0), None
    elif forecast is not None:
        daily_fc = [forecast.point[(remaining_start - forecast.start).days + i] for i in range((end - remaining_start).days)]
        forecast_remaining, note, model = sum(daily_fc, Decimal(0)), None, forecast.model
    else:
        forecast_remaining = None
    eac = None if forecast_remaining is None else actual + forecast_remaining
    variance = None if eac is None else eac - budget
    crossing = None
    crossed = budget > 0 and actual >= budget
    if budget > 0:
        running = Decimal(0)
        for i, v in enumerate(daily_actual + daily_fc):
            running += v
            if running >= budget:
                crossing = start + timedelta(days=i)
                break
    phased = (budget * elapsed / days).quantize(CENT, ROUND_HALF_UP)
    return BudgetStatus(
        budget_id=b.id, name=b.name, scope={d: getattr(b, d) for d in DIMS}, team=b.team, period_type=b.period,
        period=periods.label(b.period, start, b.fiscal_year_start), period_start=start, period_end=end,
        currency=b.currency, metric=b.metric, version=version, budget=budget, versions=versions, actual=actual,
        actual_through=last if elapsed else None, days_elapsed=elapsed, days_in_period=days,
        burn_rate=(actual / elapsed).quantize(CENT, ROUND_HALF_UP) if elapsed else Decimal("0.00"),
        phased_budget=phased, variance_to_date=actual - phased, forecast_remaining=forecast_remaining, eac=eac,
        variance=variance, variance_pct=None if variance is None else _pct(variance, budget),
        favorable=None if variance is None else variance <= 0,
        pct_of_budget_actual=_pct(actual, budget), pct_of_budget_forecast=None if eac is None else _pct(eac, budget),
        projected_crossing_date=crossing, crossed=crossed, forecast_model=model, forecast_note=note,
        convert_currencies=bool(b.convert_currencies), conversion=conversion or [], not_counted=not_counted or [])


_FORECASTS: OrderedDict = OrderedDict()  # a pure function of the series: memoized on its content


def cached_forecast(s: DailySeries, horizon: int, model: str = DEFAULT_MODEL,
                    scale: tuple[float, float] = (1.0, 1.0)) -> Forecast:
    """forecast_series, remembered for the same series (the same days and amounts), horizon, model and scale."""
    key = (s.scope, s.currency, s.start, tuple(s.usage), tuple(s.calendar), horizon, model, scale)
    hit = _FORECASTS.get(key)
    if hit is not None:
        _FORECASTS.move_to_end(key)
        return hit
    f = forecast_series(s, horizon, model, scale)
    _FORECASTS[key] = f
    while len(_FORECASTS) > 256:
        _FORECASTS.popitem(last=False)
    return f


def rates_from(session: Session) -> Callable[[str], RateTable]:
    """The exchange-rate loader `statuses` takes, reading finance's rates from the control database."""
    return lambda currency: RateTable.load(session, currency)


def statuses(con: duckdb.DuckDBPyConnection, budgets: list[Budget], as_of: date | None = None,
             period: str | None = None, model: str = DEFAULT_MODEL,
             rates: Callable[[str], RateTable] | None = None) -> list[BudgetStatus]:
    """Status of each budget in `period` (a label), or by default in its current period: the one holding the last
    day counted (the day before `as_of`, default the warehouse's last day of data). Budgets without an amount in
    that period are left out. period='all': every period the budget has amounts for. `rates(currency)` gives the
    exchange rates into a currency, for budgets that convert other currencies (without it they find none)."""
    last_data = data_end(con)
    if as_of is None:
        as_of = (last_data + timedelta(days=1)) if last_data else datetime.now(timezone.utc).date()
    through = as_of - timedelta(days=1)
    if last_data is not None:
        through = min(through, last_data)
    wanted: list[tuple[Budget, date, date]] = []
    for b in budgets:
        starts = sorted({a.period_start for a in b.amounts})
        if period == "all":
            chosen = starts
        elif period:
            try:
                chosen = [periods.bounds(b.period, period, b.fiscal_year_start)[0]]
            except periods.PeriodError as exc:
                raise BudgetError([{"parameter": "period", "detail": str(exc)}]) from exc
        else:
            chosen = [periods.containing(b.period, as_of - timedelta(days=1), b.fiscal_year_start)[0]]
        for s in chosen:
            if s in starts:
                end = next(a.period_end for a in b.amounts if a.period_start == s)
                wanted.append((b, s, end))
    if not wanted:
        return []
    # One series query per metric for every scope; history reaches back to the earliest period start (and a year
    # for the model).
    out = []
    by_metric: dict[str, list[tuple[Budget, date, date]]] = {}
    tables: dict[str, RateTable] = {}
    for w in wanted:
        by_metric.setdefault(w[0].metric, []).append(w)
    for metric, items in by_metric.items():
        scopes = sorted({ScopeDims.of(b) for b, _, _ in items}, key=lambda s: s.key())
        index = {s: i for i, s in enumerate(scopes)}
        earliest = min(s for _, s, _ in items)
        max_days = max(365, (through - earliest).days + 1)
        series = daily_series(con, scopes, metric, end=through + timedelta(days=1), max_days=max_days)
        converted: dict[tuple, ConvertedSeries] = {}

        def key(b: Budget) -> tuple:
            return index[ScopeDims.of(b)], b.currency, bool(b.convert_currencies)

        def counted(k: tuple) -> tuple[DailySeries | None, DailySeries | None]:
            """The series a budget's actual counts, and the one its forecast learns from."""
            sid, cur, convert = k
            if not convert:
                return series.get((sid, cur)), series.get((sid, cur))
            if k not in converted:
                if cur not in tables:
                    tables[cur] = rates(cur) if rates else RateTable(cur, {})
                converted[k] = convert_series({c: ser for (i, c), ser in series.items() if i == sid}, tables[cur])
            return converted[k].series, converted[k].forecast_history()

        horizons: dict[tuple, int] = {}
        for b, s, e in items:
            k = key(b)
            horizons[k] = max(horizons.get(k, 0), (e - max(s, through + timedelta(days=1))).days)
        forecasts: dict[tuple, tuple[Forecast | None, str | None]] = {}
        for k, h in horizons.items():
            ser, history = counted(k)
            if h <= 0:
                forecasts[k] = (None, None)
            elif ser is None:
                forecasts[k] = (None, f"no {metric} in {k[1]} for {scopes[k[0]].key()}: nothing to forecast from")
            elif ser.end < through:
                forecasts[k] = (None, f"no data for {scopes[k[0]].key()} after {ser.end}")
            elif history is None:  # a converting budget whose last day of data could not be converted
                forecasts[k] = (None, f"no data for {scopes[k[0]].key()} after the last day without an exchange "
                                      "rate: nothing to forecast from")
            elif h > MAX_HORIZON_DAYS:
                forecasts[k] = (None, f"the period ends {h} days after the data; forecasts reach {MAX_HORIZON_DAYS}")
            else:
                try:
                    forecasts[k] = (cached_forecast(history, h, model), None)
                except NotEnoughHistory as exc:
                    forecasts[k] = (None, str(exc) + (" (after the last day without an exchange rate)"
                                                      if history is not ser else ""))
        for b, s, e in items:
            k = key(b)
            f, note = forecasts[k]
            counted_end = min(e, through + timedelta(days=1))
            if k[2]:
                conv = converted[k]
                used = conv.rates_in(s, counted_end)
                left = left_out_in(conv.left_out, s, counted_end, lambda c, months, t=b.currency: (
                    f"no exchange rate from {c} into {t} for {', '.join(months)}"))
            else:
                used = []
                others = {c: {ser.day(i): u + v for i, (u, v) in enumerate(zip(ser.usage, ser.calendar)) if u or v}
                          for (i_, c), ser in series.items() if i_ == k[0] and c != b.currency}
                left = left_out_in(others, s, counted_end, lambda c, _m, t=b.currency: (
                    f"billed in {c}; this budget counts {t} only: set convert_currencies to count it"))
            out.append(compute_status(b, s, e, counted(k)[0], f, note, through, used, left))
    out.sort(key=lambda st: (st.name, st.period_start))
    return out


STATUS_COLUMNS = ("name", "budget_id", *DIMS, "period_type", "period", "period_start", "period_end", "currency",
                  "metric", "version", "budget", "actual", "actual_through", "days_elapsed", "days_in_period",
                  "burn_rate", "phased_budget", "variance_to_date", "forecast_remaining", "eac", "variance",
                  "variance_pct", "favorable", "pct_of_budget_actual", "pct_of_budget_forecast",
                  "projected_crossing_date", "crossed", "forecast_model", "forecast_note", "convert_currencies",
                  "conversion", "not_counted")


def describe_not_counted(items: list[dict], cents: bool = False) -> str:
    """`not_counted` (JSON form) as one line of text: `EUR 40.00 (billed in EUR; ...); GBP 3.10 (...)`; amounts
    exact, or rounded to the cent for people (`cents`)."""
    return "; ".join(f"{i['currency']} {cents_str(Decimal(i['amount'])) if cents else i['amount']} ({i['reason']})"
                     for i in items)




def status_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(STATUS_COLUMNS)
    for r in rows:
        flat = {**r, **r["scope"], "conversion": describe_rates(r.get("conversion") or []),
                "not_counted": describe_not_counted(r.get("not_counted") or [])}
        w.writerow(["" if flat.get(k) is None else (str(flat[k]).lower() if isinstance(flat[k], bool) else flat[k])
                    for k in STATUS_COLUMNS])
    return buf.getvalue()
