"""Commitment kinds: the rate table (rates.yaml) and what follows from it.

Which usage each kind of commitment (Savings Plans, reserved instances, Azure reservations and savings plan, GCP
CUDs) can cover, as SQL over the FOCUS columns; the instance family and AWS normalization factor of an instance
type (size-flexible reservations count normalized units); the discount of each purchase option, from the table or
scaled to the discount observed in the bill. optimizers/commitment_utilization.py turns these into utilization
figures, optimizers/commitments.py into purchase recommendations.
"""
from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import yaml

from app.allocation.sql import lit

RATES_FILE = Path(__file__).with_name("rates.yaml")


# -- the rate table ---------------------------------------------------------------------------------------------------
def load_kinds(path: str | Path | None = None) -> list[dict]:
    """The commitment kinds of the rate table: `path`, else CLOUDTALLY_COMMITMENT_RATES, else rates.yaml."""
    path = Path(path or os.environ.get("CLOUDTALLY_COMMITMENT_RATES") or RATES_FILE)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from exc
    kinds = doc.get("kinds") if isinstance(doc, dict) else None
    if not isinstance(kinds, list) or not kinds:
        raise ValueError(f"{path}: no `kinds` list")
    for i, k in enumerate(kinds):
        for name in ("name", "provider", "eligible", "options", "default"):
            if name not in k:
                raise ValueError(f"{path}: kinds[{i}] lacks `{name}`")
        for o in k["options"]:
            d = Decimal(str(o["discount"]))
            if not Decimal(0) < d < Decimal(1):
                raise ValueError(f"{path}: kinds[{i}] ({k['name']}): discount {d} is not between 0 and 1")
    return kinds


def _eligible(kind: dict) -> str:
    """SQL: whether a line is of the kind's provider and holds one of the listed values in each eligible column."""
    tests = [f'"ProviderName" = {lit(kind["provider"])}']
    tests += [f'"{column}" IN ({", ".join(lit(v) for v in values)})' for column, values in kind["eligible"].items()]
    return " AND ".join(tests)


def kind_case(kinds: list[dict]) -> str:
    """SQL: the commitment kind a line is eligible for (the first matching), or NULL. Spot never is."""
    whens = [f"WHEN {_eligible(k)} THEN {lit(k['name'])}" for k in kinds]
    return (f"CASE WHEN \"ChargeCategory\" <> 'Usage' OR coalesce(\"PricingCategory\", '') = 'Dynamic' THEN NULL "
            f"{' '.join(whens)} END")


def kind_list(kinds: list[dict]) -> str:
    """SQL: every commitment kind a line is eligible for, as a list (kinds that compete cover the same lines)."""
    items = [f"CASE WHEN {_eligible(k)} THEN {lit(k['name'])} END" for k in kinds]
    return (f"CASE WHEN \"ChargeCategory\" <> 'Usage' OR coalesce(\"PricingCategory\", '') = 'Dynamic' "
            f"THEN []::VARCHAR[] ELSE list_filter([{', '.join(items)}], lambda k: k IS NOT NULL) END")


# An AWS instance type (m6i.xlarge, db.r6g.large): SkuPriceDetails' InstanceType, else the one the description names
AWS_TYPE = r"\b((?:db\.)?[a-z][0-9][a-z0-9-]*\.(?:nano|micro|small|medium|[0-9]*x?large))\b"
INSTANCE_TYPE = ("coalesce(CASE WHEN json_valid(\"SkuPriceDetails\") THEN "
                 "json_extract_string(\"SkuPriceDetails\", '$.InstanceType') END, "
                 f"nullif(regexp_extract(\"ChargeDescription\", {lit(AWS_TYPE)}, 1), ''))")
SIZE_FACTORS = {"nano": Decimal("0.25"), "micro": Decimal("0.5"), "small": Decimal(1), "medium": Decimal(2),
                "large": Decimal(4), "xlarge": Decimal(8)}


def instance_family(itype: str | None) -> str | None:
    """m6i.xlarge -> m6i, db.r6g.large -> db.r6g; None for a type without a size (e.g. Standard_D4s_v5)."""
    if not itype or "." not in itype:
        return None
    return itype.rsplit(".", 1)[0]


def normalization_factor(itype: str | None) -> Decimal | None:
    """AWS's normalization factor of an instance size (nano 0.25 ... large 4, xlarge 8, Nxlarge 8N); None for sizes
    without one (metal, unknown): size-flexible reserved instances count usage in these units."""
    if not instance_family(itype):
        return None
    size = itype.rsplit(".", 1)[1]
    if size in SIZE_FACTORS:
        return SIZE_FACTORS[size]
    m = re.fullmatch(r"(\d+)xlarge", size)
    return Decimal(8 * int(m.group(1))) if m else None


def option_discounts(kind: dict, observed: Decimal | None) -> list[dict]:
    """The kind's options with their discount: the table's, or scaled so the default option gets the observed one
    (each option keeps the table's price ratio to the default)."""
    default = next((o for o in kind["options"] if o["term"] == kind["default"]["term"]
                    and o["payment"] == kind["default"]["payment"]), kind["options"][0])
    out = []
    for o in kind["options"]:
        d = Decimal(str(o["discount"]))
        if observed is not None:
            d = 1 - (1 - d) * (1 - observed) / (1 - Decimal(str(default["discount"])))
        out.append({**o, "discount": d, "is_default": o is default})
    return out


def term_years(term: str) -> int:
    return 3 if term.strip().startswith("3") else 1


class ObservedDiscounts:
    """The discounts the bill shows per (kind, provider, account, currency): 1 - EffectiveCost / ContractedCost of
    usage covered by commitments of the kind (`_series`' observed rows); kept only when plausible (1% to 90%)."""

    def __init__(self, observed_rows: list[tuple], by_name: dict):
        self.by_name = by_name
        self.sums: dict[tuple, list[Decimal]] = {}
        for kind, prov, acct, cur, ctype, eff, contracted in observed_rows:
            if ctype in by_name[kind].get("commitment_types", []) and contracted:
                acc = self.sums.setdefault((kind, prov, acct, cur), [Decimal(0), Decimal(0)])
                acc[0] += eff
                acc[1] += contracted

    def observed(self, name: str, prov: str, acct: str, cur: str) -> Decimal | None:
        obs = self.sums.get((name, prov, acct, cur))
        if obs and obs[1] > 0:
            d = 1 - obs[0] / obs[1]
            if Decimal("0.01") < d < Decimal("0.9"):
                return d
        return None

    def for_kind(self, kind: dict, prov: str, acct: str, cur: str) -> tuple[Decimal | None, str]:
        """(observed discount or None, where it comes from). A kind the bill cannot tell apart from another
        (`discount_from`) takes the other's observed discount, scaled by the rate table's price ratio."""
        donor = kind.get("discount_from")
        if donor not in self.by_name:
            d_obs = None if donor else self.observed(kind["name"], prov, acct, cur)
            return d_obs, "observed" if d_obs is not None else "rate table"
        d_donor = self.observed(donor, prov, acct, cur)
        if d_donor is None:
            return None, "rate table"
        own = next(o for o in option_discounts(kind, None) if o["is_default"])["discount"]
        theirs = next(o for o in option_discounts(self.by_name[donor], None) if o["is_default"])["discount"]
        return (1 - (1 - own) * (1 - d_donor) / (1 - theirs),
                f"observed on {self.by_name[donor].get('label', donor)}, scaled by the rate table")
