"""Exchange rates for reporting in one currency (the cost query's `currency` parameter).

Bills come in their billing currency, and CloudTally never adds two currencies by itself. Finance supplies the
rates it reports with (month-end, average or budget rates, whatever its policy is): a rate says what one unit of
`currency` is worth in `to_currency` for the charges of one calendar month. They live in the control database
(migration 0008), are set one by one or imported from CSV (CLI `cloudtally fx`, API /v1/fx-rates). A cost query
with `currency=EUR` converts each of its rows with the rate of the row's month (app.costs), a budget with
`convert_currencies` each day of its scope (app.itfm.conversion), and chargeback statements each line of the
billing month (app.itfm.statements).

A missing rate is an error that names the currency and the months, never a fallback to another month's rate or
to the inverse pair: the figure finance reports must come from a rate finance chose.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from sqlalchemy import String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import MONEY_PRECISION
from app.control import Base, Money, UTCDateTime, new_id, utcnow

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
RATE_PLACES = 18  # the warehouse's money scale: a rate has at most 18 decimal places
PLACES = Decimal(1).scaleb(-RATE_PLACES)  # converted amounts are rounded half-up to these places
CSV_COLUMNS = ("month", "currency", "to_currency", "rate")  # and an optional `source`
MAX_CSV_ROWS = 100_000


class ExchangeRate(Base):
    """One unit of `currency` is worth `rate` units of `to_currency` for charges in `month` (YYYY-MM)."""

    __tablename__ = "exchange_rates"
    __table_args__ = (UniqueConstraint("currency", "to_currency", "month", name="uq_exchange_rates_pair_month"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    to_currency: Mapped[str] = mapped_column(String(3), nullable=False, index=True)
    month: Mapped[str] = mapped_column(String(7), nullable=False)
    rate: Mapped[Decimal] = mapped_column(Money, nullable=False)
    source: Mapped[str | None] = mapped_column(String(200))  # e.g. "ECB month-end", "FY27 budget rate"
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    def to_dict(self) -> dict:
        return {"month": self.month, "currency": self.currency, "to_currency": self.to_currency,
                "rate": rate_str(self.rate), "source": self.source,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None}


class RateError(ValueError):
    """Invalid rates: `problems` is a list of {"parameter", "detail"} (for CSV, `FILE row N, column C`). Nothing
    was stored."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__("; ".join(f"{p['parameter']}: {p['detail']}" for p in problems))


def rate_str(value: Decimal) -> str:
    """A rate as plain decimal text, without trailing zeros (0.9200 -> 0.92)."""
    return format(Decimal(value).normalize(), "f")


@dataclass(frozen=True)
class Rate:
    month: str
    currency: str
    to_currency: str
    rate: Decimal
    source: str | None = None


def parse_currency(value: str | None) -> str | None:
    """An ISO 4217 code in upper case, or None for None/''. Raises ValueError for anything else."""
    if value in (None, ""):
        return None
    code = value.strip().upper()
    if not CURRENCY_RE.match(code):
        raise ValueError(f"{value!r} is not a three-letter ISO 4217 currency code (e.g. USD, EUR)")
    return code


def check_rate(month: str, currency: str, to_currency: str, rate: str | Decimal, source: str | None = None) -> Rate:
    """A validated Rate, or ValueError naming what is wrong (field: detail)."""
    month = (month or "").strip()
    if not MONTH_RE.match(month):
        raise ValueError(f"month: {month!r} is not a month (YYYY-MM)")
    codes = []
    for name, value in (("currency", currency), ("to_currency", to_currency)):
        try:
            code = parse_currency(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if code is None:
            raise ValueError(f"{name}: missing")
        codes.append(code)
    if codes[0] == codes[1]:
        raise ValueError(f"to_currency: a rate converts between two currencies; {codes[0]} to {codes[1]} is always 1")
    try:
        value = Decimal(str(rate).strip())
    except InvalidOperation:
        raise ValueError(f"rate: {rate!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"rate: {rate!r} must be a positive decimal number")
    if -value.as_tuple().exponent > RATE_PLACES:
        raise ValueError(f"rate: {rate!r} has more than {RATE_PLACES} decimal places")
    if value.adjusted() >= 20:
        raise ValueError(f"rate: {rate!r} is too large (at most 20 digits before the decimal point)")
    source = (source or "").strip() or None
    if source is not None and len(source) > 200:
        raise ValueError("source: at most 200 characters")
    return Rate(month, codes[0], codes[1], value, source)


def set_rates(session: Session, rates: list[Rate]) -> int:
    """Insert or replace each (currency, to_currency, month)'s rate; the caller commits. Returns how many."""
    now = utcnow()
    existing = {(r.currency, r.to_currency, r.month): r for r in session.scalars(
        select(ExchangeRate).where(ExchangeRate.month.in_({r.month for r in rates})))} if rates else {}
    for r in rates:
        row = existing.get((r.currency, r.to_currency, r.month))
        if row is None:
            row = ExchangeRate(currency=r.currency, to_currency=r.to_currency, month=r.month)
            session.add(row)
            existing[(r.currency, r.to_currency, r.month)] = row
        row.rate, row.source, row.updated_at = r.rate, r.source, now
    return len(rates)


def delete_rate(session: Session, month: str, currency: str, to_currency: str) -> bool:
    row = session.scalars(select(ExchangeRate).where(
        ExchangeRate.month == month, ExchangeRate.currency == currency.upper(),
        ExchangeRate.to_currency == to_currency.upper())).first()
    if row is None:
        return False
    session.delete(row)
    return True


def list_rates(session: Session, to_currency: str | None = None, currency: str | None = None) -> list[ExchangeRate]:
    stmt = select(ExchangeRate)
    if to_currency:
        stmt = stmt.where(ExchangeRate.to_currency == to_currency.upper())
    if currency:
        stmt = stmt.where(ExchangeRate.currency == currency.upper())
    return list(session.scalars(stmt.order_by(ExchangeRate.to_currency, ExchangeRate.currency, ExchangeRate.month)))


def parse_csv(text: str, name: str = "rates.csv") -> list[Rate]:
    """The rates of a CSV file with a header `month,currency,to_currency,rate[,source]`. Every bad row is reported
    (file, row, column) in one RateError; nothing is returned unless all rows are good."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise RateError([{"parameter": f"{name} row 1", "detail": f"missing column(s) {', '.join(missing)}; the "
                          f"header must be {','.join(CSV_COLUMNS)}[,source]"}])
    reader.fieldnames = header
    rates, problems, seen = [], [], {}
    for number, record in enumerate(reader, start=2):  # row 1 is the header
        if number - 1 > MAX_CSV_ROWS:
            problems.append({"parameter": f"{name}", "detail": f"more than {MAX_CSV_ROWS} rows"})
            break
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue  # a blank line
        try:
            rate = check_rate(record.get("month") or "", record.get("currency") or "", record.get("to_currency") or "",
                              record.get("rate") or "", record.get("source"))
        except ValueError as exc:
            column, _, detail = str(exc).partition(": ")
            problems.append({"parameter": f"{name} row {number}, column {column}", "detail": detail})
            continue
        key = (rate.currency, rate.to_currency, rate.month)
        if key in seen:
            problems.append({"parameter": f"{name} row {number}", "detail": f"{rate.currency} to {rate.to_currency} "
                             f"for {rate.month} is also on row {seen[key]}"})
            continue
        seen[key] = number
        rates.append(rate)
    if problems:
        raise RateError(problems)
    return rates


def to_csv(rows: list[ExchangeRate]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "source"])
    for r in rows:
        writer.writerow([r.month, r.currency, r.to_currency, rate_str(r.rate), r.source or ""])
    return buf.getvalue()


def describe_rates(rates: list[dict]) -> str:
    """Rates used ({currency, month, rate, source}) as one line for people: `EUR 2026-10 x 1.085 (ECB), ...`."""
    return ", ".join(f"{r['currency']} {r['month']} x {r['rate']}" + (f" ({r['source']})" if r.get("source") else "")
                     for r in rates)


@dataclass(frozen=True)
class RateTable:
    """The rates into one reporting currency, as a cost query reads them: (currency, month) -> (rate, source)."""

    target: str
    rates: dict[tuple[str, str], tuple[Decimal, str | None]]

    @classmethod
    def for_currency(cls, rt, target: str | None) -> RateTable | None:
        """The rates a cost query in `target` needs (None when it asks for no conversion)."""
        if not target:
            return None
        with rt.sessions() as session:
            return cls.load(session, target)

    @classmethod
    def load(cls, session: Session, target: str) -> RateTable:
        rows = list_rates(session, to_currency=target)
        return cls(target.upper(), {(r.currency, r.month): (r.rate, r.source) for r in rows})

    def missing(self, needed) -> dict[str, set[str]]:
        """{currency: months} among the (currency, month) pairs of `needed` that are not in the target and have
        no rate into it."""
        out: dict[str, set[str]] = {}
        for currency, month in needed:
            if currency != self.target and (currency, month) not in self.rates:
                out.setdefault(currency or "(none)", set()).add(month)
        return out

    def describe_missing(self, missing: dict[str, set[str]]) -> str:
        """The error a conversion reports for `missing` (see missing()): every currency and month, and the fix."""
        detail = "; ".join(f"{cur} for {', '.join(sorted(months))}" for cur, months in sorted(missing.items()))
        return (f"no exchange rate into {self.target}: {detail}. Add them with `cloudtally fx set` or "
                "`cloudtally fx import`, or PUT /v1/fx-rates")

    def convert(self, amount: Decimal, currency: str, month: str) -> Decimal:
        """`amount` (billed in `currency`, in `month`) in the target: x the month's rate, rounded half-up to 18
        decimal places (exact when the product has no more places, as for amounts and rates of 9 places each).
        KeyError when the rate is missing (check missing() first)."""
        if currency == self.target:
            return amount
        with localcontext(prec=MONEY_PRECISION):
            return (amount * self.rates[(currency, month)][0]).quantize(PLACES, rounding=ROUND_HALF_UP)

    def used(self, pairs) -> list[dict]:
        """The rates of the (currency, month) pairs converted: [{currency, month, rate, source}], sorted."""
        return [{"currency": c, "month": m, "rate": rate_str(self.rates[(c, m)][0]), "source": self.rates[(c, m)][1]}
                for c, m in sorted(set(pairs)) if c != self.target]

    def fingerprint(self) -> str:
        """Changes whenever a rate into the target changes (a cache key part)."""
        text = ";".join(f"{c},{m},{rate_str(r)},{s or ''}" for (c, m), (r, s) in sorted(self.rates.items()))
        return hashlib.sha256(f"{self.target}|{text}".encode()).hexdigest()[:16]
