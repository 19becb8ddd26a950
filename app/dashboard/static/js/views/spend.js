// Spend over time: /v1/costs stacked by a dimension, one currency at a time (currencies are never added), or all of
// it in one reporting currency ("Report in", the API's `currency`: finance's monthly rates from /v1/fx-rates).
import { api } from "../api.js";
import { PALETTE, OTHER_COLOUR, stackedBars, legend } from "../chart.js";
import * as D from "../decimal.js";
import { h, chartTools, table, problemBox, nextId } from "../ui.js";

export const GROUPS = ["ProviderName", "ServiceName", "ServiceCategory", "team", "cost_center", "environment",
  "SubAccountId", "RegionId", "ChargeCategory", "BillingCurrency"];
const TOP = PALETTE.length; // series shown; the rest is "Other" (exact sum)

// The query form: every field is an API parameter (start, end, granularity, group_by, metric, filter, and
// report_in, sent as `currency`).
export function queryForm(state, onSubmit, { fixed = {}, fields = ["start", "end", "granularity", "group_by", "metric", "filter", "report_in"] } = {}) {
  const id = nextId("q");
  const form = h("form", { class: "query", "aria-label": "Query" });
  const field = (name, label, control) => h("div", { class: "field" }, h("label", { for: `${id}-${name}` }, label), control);
  const listId = `${id}-dims`;
  if (fields.includes("start")) form.append(field("start", "Start", h("input", { id: `${id}-start`, name: "start", type: "date", value: state.start || "" })));
  if (fields.includes("end")) form.append(field("end", "End (exclusive)", h("input", { id: `${id}-end`, name: "end", type: "date", value: state.end || "" })));
  if (fields.includes("granularity")) {
    const sel = h("select", { id: `${id}-granularity`, name: "granularity" },
      ["day", "month"].map((g) => h("option", { value: g, selected: state.granularity === g }, g === "day" ? "Daily" : "Monthly")));
    form.append(field("granularity", "Granularity", sel));
  }
  if (fields.includes("group_by")) {
    form.append(field("group_by", "Group by", h("input", { id: `${id}-group_by`, name: "group_by", list: listId, value: (state.group_by || []).join(","),
      "aria-describedby": `${id}-group_by-help`, size: 16 })),
    h("datalist", { id: listId }, GROUPS.map((g) => h("option", { value: g }))),
    h("span", { id: `${id}-group_by-help`, class: "visually-hidden" }, "A FOCUS column, tag:<key> or an allocation dimension; several separated by commas"));
  }
  if (fields.includes("metric")) {
    const fs = h("fieldset", { class: "field metric" }, h("legend", {}, "Metric"));
    for (const m of ["EffectiveCost", "BilledCost"]) {
      const rid = `${id}-metric-${m}`;
      fs.append(h("span", {}, h("input", { type: "radio", id: rid, name: "metric", value: m, checked: (state.metric || "EffectiveCost") === m }),
        h("label", { for: rid }, m === "EffectiveCost" ? "EffectiveCost (amortized)" : "BilledCost (invoice)")));
    }
    form.append(fs);
  }
  if (fields.includes("filter")) {
    const own = (state.filter || []).filter((f) => !Object.keys(fixed).some((k) => f.startsWith(`${k}=`)));
    form.append(field("filter", "Filters (KEY=VALUE, one a line)", h("textarea", { id: `${id}-filter`, name: "filter", rows: 1, cols: 26,
      placeholder: "ProviderName=AWS" }, own.join("\n"))));
  }
  if (fields.includes("report_in")) {
    form.append(field("report_in", "Report in", h("input", { id: `${id}-report_in`, name: "report_in", value: state.report_in || "",
      size: 4, maxlength: 3, pattern: "[A-Za-z]{3}", placeholder: "each", title: "A currency code (e.g. EUR) to convert every row into with the monthly rates of /v1/fx-rates; empty: each billing currency on its own" })));
  }
  form.append(h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const next = { ...state };
    for (const k of ["start", "end", "granularity", "metric"]) if (fd.has(k)) next[k] = fd.get(k) || undefined;
    if (fd.has("report_in")) next.report_in = String(fd.get("report_in")).trim().toUpperCase() || undefined;
    if (fd.has("group_by")) next.group_by = String(fd.get("group_by")).split(",").map((s) => s.trim()).filter(Boolean);
    if (fd.has("filter")) next.filter = String(fd.get("filter")).split("\n").map((s) => s.trim()).filter(Boolean);
    onSubmit(next);
  });
  return form;
}

// Rows of one currency -> series (top groups by |total|, then "Other"), periods, exact sums.
export function buildSeries(rows, groupBy, currency) {
  const label = (r) => (groupBy.length ? groupBy.map((g) => r[g] ?? "(none)").join(" / ") : "Total");
  const periods = [...new Set(rows.filter((r) => r.currency === currency).map((r) => r.period))].sort();
  const pIndex = new Map(periods.map((p, i) => [p, i]));
  const groups = new Map();
  for (const r of rows) {
    if (r.currency !== currency) continue;
    const k = label(r);
    if (!groups.has(k)) groups.set(k, { label: k, keys: groupBy.map((g) => r[g]), amounts: periods.map(() => 0n), exact: periods.map(() => null) });
    const g = groups.get(k);
    const i = pIndex.get(r.period);
    g.amounts[i] += D.parse(r.cost);
    g.exact[i] = g.exact[i] === null ? r.cost : D.exact(g.amounts[i]); // API's own text where it is one row
  }
  const all = [...groups.values()].map((g) => ({ ...g, total: D.sum(g.amounts) }));
  all.sort((a, b) => (D.abs(b.total) > D.abs(a.total) ? 1 : D.abs(b.total) < D.abs(a.total) ? -1 : a.label.localeCompare(b.label)));
  const shown = all.length > TOP ? all.slice(0, TOP - 1) : all;
  const rest = all.slice(shown.length);
  const series = shown.map((g, i) => ({ ...g, colour: PALETTE[i] }));
  if (rest.length) {
    const amounts = periods.map((_, i) => D.sum(rest.map((g) => g.amounts[i])));
    series.push({ label: `Other (${rest.length})`, other: true, keys: groupBy.map((_, i) => (i === 0 ? `(other: ${rest.length} groups)` : "")),
      amounts, exact: amounts.map((a, i) => (rest.some((g) => g.exact[i] !== null) ? D.exact(a) : null)), total: D.sum(amounts), colour: OTHER_COLOUR });
  }
  for (const s of series) {
    s.values = s.amounts.map(D.toNumber);
    s.text = s.amounts.map(D.fmt);
  }
  return { periods, series };
}

// A costs panel: query form, totals per currency, stacked chart, legend, table, CSV and API link.
export async function costsPanel(root, state, setState, { fixed = {}, title = "Spend over time", csvName = "spend.csv" } = {}) {
  const params = { start: state.start, end: state.end, granularity: state.granularity || "day",
    group_by: state.group_by?.length ? state.group_by : ["ProviderName"], metric: state.metric || "EffectiveCost",
    filter: [...(state.filter || []).filter((f) => !Object.keys(fixed).some((k) => f.startsWith(`${k}=`))),
      ...Object.entries(fixed).map(([k, v]) => `${k}=${v}`)], currency: state.report_in || undefined };
  const panel = h("section", { class: "panel costs", "aria-labelledby": nextId("h") });
  const heading = h("h2", { id: panel.getAttribute("aria-labelledby") }, title);
  panel.append(heading);
  root.append(panel);
  let body;
  try {
    body = await api("/costs", params);
  } catch (err) {
    panel.append(queryForm({ ...params, report_in: params.currency }, setState, { fixed }), problemBox(err, "costs"));
    panel.dataset.state = "error";
    return;
  }
  const q = body.query;
  const echo = { ...params, start: q.start, end: q.end, granularity: q.granularity, group_by: q.group_by, metric: q.metric,
    report_in: q.currency || undefined };
  panel.append(queryForm(echo, setState, { fixed }));
  const currencies = body.totals.map((t) => t.currency);
  const currency = currencies.includes(state.currency) ? state.currency
    : (body.totals.slice().sort((a, b) => (D.parse(b.cost) > D.parse(a.cost) ? 1 : -1))[0]?.currency);
  const totals = h("p", { class: "totals" }, `${q.metric}, ${q.start} to ${q.end} (end exclusive): `);
  body.totals.forEach((t, i) => {
    if (i) totals.append(" · ");
    const b = h("button", { type: "button", class: "currency", "aria-pressed": String(t.currency === currency),
      dataset: { totalCurrency: t.currency, value: t.cost }, title: `exact: ${t.cost}` }, `${t.currency} ${D.fmt(D.parse(t.cost))}`);
    b.addEventListener("click", () => setState({ ...state, currency: t.currency }));
    totals.append(b);
  });
  if (!body.totals.length) totals.append("no costs in this window.");
  panel.append(totals);
  if (body.conversion) {  // every rate the converted figures used, so a reader can check them
    const used = body.conversion.rates.map((r) => `${r.currency} ${r.month} × ${r.rate}${r.source ? ` (${r.source})` : ""}`);
    panel.append(h("p", { class: "conversion" }, `Converted into ${body.conversion.currency} with finance's monthly rates: `
      + (used.length ? used.join(" · ") : "no conversion needed") + "."));
  }
  if (!currency) { panel.dataset.state = "ready"; return; }
  const { periods, series } = buildSeries(body.rows, q.group_by, currency);
  // The API call that returns exactly the chart's rows: the same query, narrowed to the shown currency.
  const apiParams = { ...params, start: q.start, end: q.end, granularity: q.granularity, group_by: q.group_by,
    filter: currencies.length > 1 ? [...params.filter, `BillingCurrency=${currency}`] : params.filter };
  const chartTitle = `${title}: ${q.metric} in ${currency} by ${q.group_by.join(", ") || "total"}, ${q.granularity === "day" ? "daily" : "monthly"}`;
  panel.append(stackedBars(periods, series, { granularity: q.granularity, currency, title: chartTitle }), legend(series));
  const csv = () => ({
    header: ["period", ...q.group_by, "cost", "currency"],
    rows: periods.flatMap((p, i) => series.filter((s) => s.exact[i] !== null).map((s) => [p, ...s.keys, s.exact[i], currency])),
  });
  panel.append(chartTools({ csvName, csv, path: "/costs", params: apiParams, label: chartTitle }));
  const totalAll = D.sum(series.map((s) => s.total));
  const rows = periods.map((p, i) => [p, ...series.map((s) => ({ text: s.exact[i] === null ? "" : s.text[i], value: s.exact[i] ?? undefined, title: s.exact[i] ?? undefined })),
    { text: D.fmt(D.sum(series.map((s) => s.amounts[i]))), value: D.exact(D.sum(series.map((s) => s.amounts[i]))) }]);
  rows.push([{ text: "Total", cls: "total" }, ...series.map((s) => ({ text: D.fmt(s.total), value: D.exact(s.total), cls: "total" })),
    { text: D.fmt(totalAll), value: D.exact(totalAll), cls: "total" }]);
  const numeric = series.map((_, i) => i + 1).concat([series.length + 1]);
  panel.append(table({ caption: `${chartTitle} (${currency}, rounded to the cent; hover a cell for the exact amount)`,
    columns: ["Period", ...series.map((s) => s.label), "Total"], rows, numeric, id: nextId("spend-table") }));
  panel.dataset.state = "ready";
  panel.dataset.currency = currency;
}

export async function render(root, state, setState) {
  await costsPanel(root, state, setState);
}
