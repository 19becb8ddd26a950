// Allocation coverage (/v1/allocation/coverage): per provider, month and currency the share of EffectiveCost the
// rules allocate, and what stays unallocated, with the unallocated cost by account (/v1/costs filter team=unallocated).
import { api } from "../api.js";
import { barCell } from "../chart.js";
import * as D from "../decimal.js";
import { h, chartTools, table, problemBox, nextId, addMonths } from "../ui.js";

export async function render(root, state, setState, ctx) {
  const id = nextId("h");
  const panel = h("section", { class: "panel coverage", "aria-labelledby": id }, h("h2", { id }, "Allocation coverage"));
  root.append(panel);
  const params = { start: state.start, end: state.end, granularity: "month" };
  let body;
  try {
    body = await api("/allocation/coverage", params);
  } catch (err) {
    panel.append(problemBox(err, "allocation coverage"));
    panel.dataset.state = "error";
    return;
  }
  const cov = body.coverage;
  const title = "Share of EffectiveCost allocated by the rules, per provider, month and currency";
  const rows = cov.map((c) => [c.provider, c.period.slice(0, 7), c.currency,
    { text: D.fmt(D.parse(c.total)), value: c.total }, { text: D.fmt(D.parse(c.allocated)), value: c.allocated },
    { text: D.fmt(D.parse(c.unallocated)), value: c.unallocated, cls: D.parse(c.unallocated) !== 0n ? "warn" : "" },
    { text: c.coverage_pct === null ? "n/a" : `${c.coverage_pct}%`, value: c.coverage_pct ?? undefined },
    { text: barCell(c.coverage_pct === null ? 0 : Number(c.coverage_pct), 100, "#009E73") }]);
  panel.append(table({ caption: title, id: "coverage-table", columns: ["Provider", "Month", "Currency", "Total", "Allocated", "Unallocated", "Coverage", "Coverage (bar)"],
    rows, numeric: [3, 4, 5, 6] }));
  const cols = ["provider", "period", "currency", "total", "allocated", "unallocated", "not_allocated_yet", "coverage_pct"];
  panel.append(chartTools({ csvName: "allocation-coverage.csv", label: title, path: "/allocation/coverage", params,
    csv: () => ({ header: cols, rows: cov.map((c) => cols.map((k) => c[k] ?? "")) }) }));
  panel.dataset.state = "ready";

  // What is unallocated, by provider and account, in the latest month.
  const latest = await ctx.latestMonth();
  const id2 = nextId("h");
  const un = h("section", { class: "panel unallocated", "aria-labelledby": id2 }, h("h2", { id: id2 }, `Unallocated cost in ${latest.slice(0, 7)}, by account`));
  root.append(un);
  const q = { start: latest, end: addMonths(latest, 1), group_by: ["ProviderName", "SubAccountId"], filter: ["team=unallocated"], metric: "EffectiveCost" };
  let res;
  try {
    res = await api("/costs", q);
  } catch (err) {
    un.append(problemBox(err, "unallocated costs"));
    return;
  }
  const rs = res.rows.slice().sort((a, b) => (D.abs(D.parse(b.cost)) > D.abs(D.parse(a.cost)) ? 1 : -1));
  if (!rs.length) un.append(h("p", {}, "Nothing is unallocated in this month."));
  un.append(table({ caption: "Unallocated EffectiveCost by provider and account", id: "unallocated-table",
    columns: ["Provider", "Account (SubAccountId)", "Currency", "Unallocated"],
    rows: rs.map((r) => [r.ProviderName ?? "(none)", r.SubAccountId ?? "(none)", r.currency, { text: D.fmt(D.parse(r.cost)), value: r.cost }]), numeric: [3] }));
  un.append(chartTools({ csvName: "unallocated.csv", label: "unallocated cost by account", path: "/costs", params: q,
    csv: () => ({ header: ["period", "ProviderName", "SubAccountId", "cost", "currency"], rows: rs.map((r) => [r.period, r.ProviderName ?? "", r.SubAccountId ?? "", r.cost, r.currency]) }) }));
  un.dataset.state = "ready";
}
