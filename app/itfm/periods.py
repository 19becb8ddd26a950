"""Budget periods: months, fiscal quarters and fiscal years with a configurable first month.

A fiscal year is named by the calendar year it ends in (a year starting 1 July 2026 is FY2027); with the default
first month (January) FY2026 is calendar 2026. Labels: `2026-10` (month), `FY2027-Q2` (quarter; `2026-Q4` is
accepted for calendar quarters), `FY2027` (fiscal year). Periods are [start, end) in days.
"""
from __future__ import annotations

import re
from datetime import date

KINDS = ("month", "quarter", "fiscal_year")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(FY)?(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^FY(\d{4})$")


class PeriodError(ValueError):
    pass


def add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def fiscal_year_of(d: date, fy_start: int) -> int:
    """The name (end year) of the fiscal year holding day d."""
    if fy_start == 1:
        return d.year
    return d.year + 1 if d.month >= fy_start else d.year


def fiscal_year_start(fy: int, fy_start: int) -> date:
    return date(fy if fy_start == 1 else fy - 1, fy_start, 1)


def bounds(kind: str, label: str, fy_start: int = 1) -> tuple[date, date]:
    """[start, end) of the period a label names."""
    label = (label or "").strip()
    if kind == "month":
        m = _MONTH.match(label)
        if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1900:
            raise PeriodError(f"{label!r} is not a month (YYYY-MM)")
        start = date(int(m.group(1)), int(m.group(2)), 1)
        return start, add_months(start, 1)
    if kind == "quarter":
        m = _QUARTER.match(label)
        if not m or (m.group(1) is None and fy_start != 1) or int(m.group(2)) < 1900:
            raise PeriodError(f"{label!r} is not a quarter (FYyyyy-Qn{', or yyyy-Qn' if fy_start == 1 else ''})")
        start = add_months(fiscal_year_start(int(m.group(2)), fy_start), 3 * (int(m.group(3)) - 1))
        return start, add_months(start, 3)
    if kind == "fiscal_year":
        m = _YEAR.match(label)
        if not m or int(m.group(1)) < 1900:
            raise PeriodError(f"{label!r} is not a fiscal year (FYyyyy, named by the year it ends in)")
        start = fiscal_year_start(int(m.group(1)), fy_start)
        return start, add_months(start, 12)
    raise PeriodError(f"{kind!r} is not one of {', '.join(KINDS)}")


def containing(kind: str, d: date, fy_start: int = 1) -> tuple[date, date]:
    """[start, end) of the period of this kind that holds day d."""
    if kind == "month":
        start = d.replace(day=1)
        return start, add_months(start, 1)
    fy0 = fiscal_year_start(fiscal_year_of(d, fy_start), fy_start)
    if kind == "fiscal_year":
        return fy0, add_months(fy0, 12)
    if kind == "quarter":
        months = (d.year - fy0.year) * 12 + d.month - fy0.month
        start = add_months(fy0, 3 * (months // 3))
        return start, add_months(start, 3)
    raise PeriodError(f"{kind!r} is not one of {', '.join(KINDS)}")


def label(kind: str, start: date, fy_start: int = 1) -> str:
    """The canonical label of the period starting at `start` (bounds(kind, label(kind, s)) == s, ...)."""
    if kind == "month":
        return f"{start:%Y-%m}"
    fy = fiscal_year_of(start, fy_start)
    if kind == "fiscal_year":
        return f"FY{fy}"
    fy0 = fiscal_year_start(fy, fy_start)
    q = ((start.year - fy0.year) * 12 + start.month - fy0.month) // 3 + 1
    return f"FY{fy}-Q{q}"
