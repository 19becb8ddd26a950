"""Turns the demo catalogue into FOCUS 1.2 rows (dicts of exact Decimals, UTC datetimes and text)."""
from __future__ import annotations

import calendar
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal as D

from app.demo.catalog import (
    ANOMALY, DAYS, INSTANCE_TYPES, KINDS, METERS, REGIONS, SERVICES, _SVC, Account, Commitment, Provider,
)

Q6 = D("0.000001")


def _ts(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _month(d: date) -> tuple[date, date]:
    start = d.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def _json(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _sku(provider: str, key: str) -> str:
    h = hashlib.sha256(f"{provider}:{key}".encode()).hexdigest().upper()
    return {"AWS": h[:16], "Microsoft": f"DZH3{h[:8]}/{h[8:12]}"}.get(provider, f"{h[:4]}-{h[4:8]}-{h[8:12]}")


def _price_id(provider: str, sku: str, key: str) -> str:
    code = hashlib.sha256(f"{sku}:{key}".encode()).hexdigest().upper()
    return f"{sku}.{code[:10]}" if provider == "AWS" else f"{sku}/{code[:8]}"


def _price(acct: Account, meter: str) -> tuple[D, D]:
    """(list, contracted) unit price of a meter for an account: EUR price list, negotiated discounts."""
    service, list_usd = METERS[meter][0], D(METERS[meter][3])
    price = list_usd if acct.currency == "USD" else (list_usd * D("0.92")).quantize(Q6, ROUND_HALF_UP)
    discount = acct.discounts.get(service, acct.discounts.get("*", D(0)))
    return price, (price * (1 - discount)).quantize(Q6, ROUND_HALF_UP)


def _set_quantity(row: dict, q: D) -> dict:
    """Give a usage row a new PricingQuantity; the costs follow exactly (unit prices have at most 6 decimals)."""
    cost = row["ContractedUnitPrice"] * q
    row.update(PricingQuantity=q, ConsumedQuantity=q * row["_factor"], ListCost=row["ListUnitPrice"] * q,
               ContractedCost=cost, BilledCost=cost, EffectiveCost=cost)
    return row


@dataclass
class Generator:
    p: Provider
    rng: random.Random
    invoices: dict = field(default_factory=dict)

    def row(self, acct: Account, sub: int | None, start: date, end: date, service: str, **cols) -> dict:
        """A row with the provider, account, period and service columns filled."""
        bp_start, bp_end = _month(start)
        if (acct.id, bp_start) not in self.invoices:
            number = self.rng.randint(10**9, 10**10 - 1)
            self.invoices[acct.id, bp_start] = f"G0{number // 10}" if self.p.name == "Microsoft" else str(number)
        name, category, subcategory = SERVICES[service]
        row = {
            "ProviderName": self.p.name, "PublisherName": self.p.name, "InvoiceIssuerName": self.p.name,
            "InvoiceId": self.invoices[acct.id, bp_start], "BillingAccountId": acct.id,
            "BillingAccountName": acct.name, "BillingAccountType": acct.type, "BillingCurrency": acct.currency,
            "BillingPeriodStart": _ts(bp_start), "BillingPeriodEnd": _ts(bp_end), "ChargePeriodStart": _ts(start),
            "ChargePeriodEnd": _ts(end), "ServiceName": name, "ServiceCategory": category,
            "ServiceSubcategory": subcategory,
        }
        if sub is not None:
            row.update(SubAccountId=acct.subs[sub][0], SubAccountName=acct.subs[sub][1], SubAccountType=acct.sub_type)
        row.update(cols)
        return row

    def resources(self) -> list[dict]:
        out, seen = [], {}
        for acct_i, sub_i, team, app, env, region, spec in self.p.workloads:
            sub = self.p.accounts[acct_i].subs[sub_i][0]
            for token in spec.split():
                kind, _, rest = token.partition("*")
                rest, _, schedule = rest.partition("@")
                count, _, scale = rest.partition("x")
                meters, rtype, template, zonal = KINDS[kind]
                for _ in range(int(count)):
                    n = seen[app, kind] = seen.get((app, kind), 0) + 1
                    name = f"{app}-{kind}-{n:02d}"
                    zone = None
                    if zonal:
                        zone = region + ("-" if self.p.name == "Google Cloud" else "") + self.rng.choice("abc")
                    rid = template.format(
                        svc=_SVC.get(kind), region=region, sub=sub, name=name, app=app, env=env, zone=zone,
                        hex=f"{self.rng.getrandbits(68):017x}", HEX=f"{self.rng.getrandbits(52):013X}",
                        short=name.replace("-", "")[:22], under=name.replace("-", "_"))
                    tagged = team and self.rng.randint(1, 100) > 8
                    out.append({"acct": acct_i, "sub": sub_i, "kind": kind, "scale": int(scale or 1),
                                "schedule": schedule or "always", "meters": meters, "ResourceId": rid,
                                "ResourceName": name, "ResourceType": rtype, "RegionId": region,
                                "RegionName": REGIONS[region], "AvailabilityZone": zone,
                                "Tags": _json({"team": team, "env": env, "app": app}) if tagged else None})
        return out

    def usage(self, res: dict, meter: str, q: D, day: date, description: str | None = None) -> dict:
        acct = self.p.accounts[res["acct"]]
        service, sku_meter, unit, _, text = METERS[meter]
        factor, _, consumed_unit = unit.partition(" ") if unit[0].isdigit() else ("1", "", unit)
        list_price, price = _price(acct, meter)
        dynamic = meter.endswith(".spot")
        if dynamic:  # spot prices move daily, between 26% and 40% of the on-demand price
            price = (list_price * self.rng.randint(26, 40) / 100).quantize(Q6, ROUND_HALF_UP)
        sku = _sku(self.p.name, meter)
        details = {"PricingModel": "Spot" if dynamic else "On-Demand"}
        if meter.removesuffix(".spot") in INSTANCE_TYPES:
            details["InstanceType"] = INSTANCE_TYPES[meter.removesuffix(".spot")]
        row = self.row(acct, res["sub"], day, day + timedelta(days=1), service, ChargeCategory="Usage",
                       ChargeFrequency="Usage-Based", ChargeDescription=description or text,
                       ListUnitPrice=list_price, ContractedUnitPrice=price, PricingUnit=unit,
                       PricingCategory="Dynamic" if dynamic else "Standard", ConsumedUnit=consumed_unit, SkuId=sku,
                       SkuMeter=sku_meter, SkuPriceId=_price_id(self.p.name, sku, f"{acct.currency}:{dynamic}"),
                       SkuPriceDetails=_json(details), _factor=D(factor), _meter=meter,
                       **{k: res[k] for k in ("ResourceId", "ResourceName", "ResourceType", "RegionId",
                                              "RegionName", "AvailabilityZone", "Tags")})
        return _set_quantity(row, q)

    def day_items(self, resources: list[dict], day: date) -> list[dict]:
        items = []
        days_in_month = D(calendar.monthrange(day.year, day.month)[1])
        weekend = day.weekday() >= 5
        growth = D(1000 + 3 * (day - DAYS[0]).days) / 1000  # storage and traffic grow 0.3% a day
        for res in resources:
            schedule = res["schedule"]
            if schedule == "always" or (schedule == "auto" and not weekend):
                hours = 20 if schedule == "always" and self.rng.randint(1, 40) == 1 else 24  # maintenance windows
            else:
                hours = self.rng.randint(0, 8 if schedule == "auto" else 14)
            for meter, size in res["meters"]:
                unit, base = METERS[meter][2], D(size) * res["scale"]
                if unit.endswith("Hours"):
                    q = base * hours
                elif unit.endswith("Months"):
                    q = (base * growth / days_in_month).quantize(Q6, ROUND_HALF_UP)
                else:
                    load = growth * self.rng.randint(80, 120) / 100 * (D("0.7") if weekend else 1)
                    if meter == ANOMALY[0] and ANOMALY[1] <= day < ANOMALY[2]:
                        load *= ANOMALY[3]
                    q = (base * load).quantize(Q6, ROUND_HALF_UP)
                if q:
                    items.append(self.usage(res, meter, q, day))
        return items

    def commitment_rows(self, c: Commitment, items: list[dict], day: date) -> list[dict]:
        """Cover the eligible usage (splitting any overflow off as Standard), then add Unused and Purchase rows."""
        acct, spend = self.p.accounts[0], c.category == "Spend"
        unit = acct.currency if spend else "Hours"
        fields = {"CommitmentDiscountId": c.id, "CommitmentDiscountName": c.name, "CommitmentDiscountUnit": unit,
                  "CommitmentDiscountCategory": c.category, "CommitmentDiscountType": c.type}
        eligible = sorted((r for r in items if r.get("_meter") in c.meters and r["BillingAccountId"] == acct.id
                           and c.region in (None, r["RegionId"])
                           and (c.shared or r["SubAccountId"] == acct.subs[c.sub][0])), key=lambda r: r["ResourceId"])
        out, remaining = [], c.capacity
        for item in eligible:
            price = c.sp_rates[item["_meter"]] if spend else c.rate
            draw = price if spend else D(1)  # commitment units used per pricing unit
            q = item["PricingQuantity"]
            if q * draw > remaining:
                covered = (remaining / draw).quantize(Q6, ROUND_DOWN)
                if not covered:
                    break
                out.append(_set_quantity(dict(item), q - covered))  # the overflow stays Standard
                _set_quantity(item, covered)
                used = remaining if spend else covered
            else:
                used = q * draw
            item.update(fields, BilledCost=D(0), EffectiveCost=used if spend else price * item["PricingQuantity"],
                        PricingCategory="Committed", CommitmentDiscountStatus="Used", CommitmentDiscountQuantity=used,
                        ChargeDescription=f"{item['ChargeDescription']}, covered by {c.type} {c.name}")
            remaining -= used
        payment = {"daily": "No Upfront", "monthly": "Monthly", "upfront": "All Upfront"}[c.billing]
        common = dict(fields, ResourceId=c.id, ResourceName=c.name, ResourceType=c.type, SkuId=c.sku,
                      SkuMeter="Commitment", SkuPriceDetails=_json({"Term": "1 Year", "PaymentOption": payment}))
        if c.region:
            common.update(RegionId=c.region, RegionName=REGIONS[c.region])
        if remaining:
            out.append(self.row(acct, c.sub, day, day + timedelta(days=1), c.service, ChargeCategory="Usage",
                                ChargeFrequency="Usage-Based", ChargeDescription=f"Unused {c.type} {c.name}",
                                BilledCost=D(0), EffectiveCost=remaining * c.rate, ListCost=D(0), ContractedCost=D(0),
                                ListUnitPrice=D(0), ContractedUnitPrice=D(0), PricingCategory="Committed",
                                PricingQuantity=remaining, PricingUnit=unit, SkuPriceId=c.sku + ":unused",
                                CommitmentDiscountStatus="Unused", CommitmentDiscountQuantity=remaining, **common))
        month_start, month_end = _month(day)
        days = (month_end - month_start).days
        end, hours, price, quantity, frequency, text = {  # the fee billed for this commitment, if any today
            "daily": (day + timedelta(days=1), 24, c.capacity * c.rate / 24, c.capacity, "Recurring", "daily fee"),
            "monthly": (month_end, 24 * days, c.capacity * c.rate / 24, c.capacity * days, "Recurring", "monthly fee"),
            "upfront": (date(day.year + 1, day.month, day.day), c.capacity * 365, c.rate, c.capacity * 365,
                        "One-Time", "upfront payment for the 1-year term"),
        }[c.billing]
        if c.billing == "daily" or day == {"monthly": month_start, "upfront": DAYS[0]}[c.billing]:
            cost = price * hours
            out.append(self.row(acct, c.sub, day, end, c.service, ChargeCategory="Purchase", ChargeFrequency=frequency,
                                ChargeDescription=f"{c.type} {c.name}: {text}", BilledCost=cost, EffectiveCost=D(0),
                                ListCost=cost, ContractedCost=cost, ListUnitPrice=price, ContractedUnitPrice=price,
                                PricingCategory="Standard", PricingQuantity=D(hours), PricingUnit="Hours",
                                SkuPriceId=c.sku + ":fee", CommitmentDiscountQuantity=quantity, **common))
        return out

    def rows(self) -> list[dict]:
        resources = self.resources()
        rows = []
        for day in DAYS:
            items = self.day_items(resources, day)
            for c in self.p.commitments:
                items += self.commitment_rows(c, items, day)
            if self.p.refund and self.p.refund[2] == day:
                kind, meter, _, q, text = self.p.refund
                items.append(self.usage(next(r for r in resources if r["kind"] == kind), meter, q, day, text))
            rows += items
        months = sorted({_month(d)[0] for d in DAYS})
        for acct_i, sub, service, text, amount, month_indexes in self.p.credits:
            for start in (months[i] for i in month_indexes):
                rows.append(self.row(self.p.accounts[acct_i], sub, start, _month(start)[1], service,
                                     ChargeCategory="Credit", ChargeFrequency="One-Time", ChargeDescription=text,
                                     BilledCost=-amount, EffectiveCost=-amount, ListCost=-amount,
                                     ContractedCost=-amount))
        billed: dict[tuple, D] = {}
        for r in rows:
            key = (r["BillingAccountId"], r["BillingPeriodStart"])
            billed[key] = billed.get(key, D(0)) + r["BilledCost"]
        for acct in self.p.accounts:
            for start in months:
                tax = (billed[acct.id, _ts(start)] * acct.tax_rate).quantize(D("0.01"), ROUND_HALF_UP)
                label = f"{'VAT' if acct.currency == 'EUR' else 'Sales tax'} {(acct.tax_rate * 100).normalize():f}%"
                rows.append(self.row(acct, None, start, _month(start)[1], "tax", ChargeCategory="Tax",
                                     ChargeFrequency="One-Time", ChargeDescription=label, BilledCost=tax,
                                     EffectiveCost=tax, ListCost=tax, ContractedCost=tax))
        for r in rows:  # everything is priced in the billing currency
            r.update(PricingCurrency=r["BillingCurrency"], PricingCurrencyEffectiveCost=r["EffectiveCost"],
                     PricingCurrencyListUnitPrice=r.get("ListUnitPrice"),
                     PricingCurrencyContractedUnitPrice=r.get("ContractedUnitPrice"))
        return rows
