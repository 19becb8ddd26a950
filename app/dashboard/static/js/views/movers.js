// Top movers: each group's cost in a window vs the window of the same length just before it (one /v1/costs call
// spanning both windows), ranked by the absolute change. Exact deltas (BigInt decimals).
import { api } from "../api.js";
import { barCell } from "../chart.js";
import * as D from "../decimal.js";
import { h, chartTools, table, problemBox, nextId, addMonths } from "../ui.js";
import { queryForm } from "./spend.js";

const SHOW = 10;

const isMonthStart = (d) => /^\d{4}-\d{2}-01$/.test(d || "");
const dayShift = (d, n) => new Date(Date.parse(`${d}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);
const days = (a, b) => Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86400000);

// The previous window of the same length: whole months when the window is whole months, else days.
export function previousWindow(start, end) {
  if (isMonthStart(start) && isMonthStart(end)) {
    const months = (+end.slice(0, 4) * 12 + +end.slice(5, 7)) - (+start.slice(0, 4) * 12 + +start.slice(5, 7));
    return { start: addMonths(start, -months), granularity: "month" };
  }
  return { start: dayShift(start, -days(start, end)), granularity: "day" };
}

export async function moversPanel(root, state, setState, ctx, { fixed = {}, title = "Top movers vs the previous period", csvName = "movers.csv" } = {}) {
  const start = state.start || await ctx.latestMonth();
  const end = state.end || addMonths(start, 1);
  const prev = previousWindow(start, end);
  const groupBy = state.group_by?.length ? state.group_by : ["ServiceName"];
  const own = (state.filter || []).filter((f) => !Object.keys(fixed).some((k) => f.startsWith(`${k}=`)));
  const params = { start: prev.start, end, granularity: prev.granularity, group_by: groupBy, metric: state.metric || "EffectiveCost",
    filter: [...own, ...Object.entries(fixed).map(([k, v]) => `${k}=${v}`)] };
  const panel = h("section", { class: "panel movers" });
  const hid = nextId("h");
  panel.setAttribute("aria-labelledby", hid);
  panel.append(h("h2", { id: hid }, title));
  panel.append(queryForm({ ...state, start, end, group_by: groupBy, metric: params.metric, filter: own }, setState,
    { fixed, fields: ["start", "end", "group_by", "metric", "filter"] }));
  root.append(panel);
  let body;
  try {
    body = await api("/costs", params);
  } catch (err) {
    panel.append(problemBox(err, "costs"));
    panel.dataset.state = "error";
    return;
  }
  const label = (r) => groupBy.map((g) => r[g] ?? "(none)").join(" / ");
  const groups = new Map();
  for (const r of body.rows) {
    const k = `${label(r)}\u0000${r.currency}`;
    if (!groups.has(k)) groups.set(k, { label: label(r), keys: groupBy.map((g) => r[g]), currency: r.currency, before: 0n, after: 0n });
    const g = groups.get(k);
    if (r.period < start) g.before += D.parse(r.cost); else g.after += D.parse(r.cost);
  }
  const movers = [...groups.values()].map((g) => ({ ...g, delta: g.after - g.before }))
    .filter((g) => g.delta !== 0n)
    .sort((a, b) => (D.abs(b.delta) > D.abs(a.delta) ? 1 : D.abs(b.delta) < D.abs(a.delta) ? -1 : a.label.localeCompare(b.label)))
    .slice(0, SHOW);
  const max = Math.max(0, ...movers.map((m) => Math.abs(D.toNumber(m.delta))));
  panel.append(h("p", { class: "window" }, `${params.metric}: ${start} to ${end} vs ${prev.start} to ${start} (ends exclusive), by ${groupBy.join(", ")}; top ${SHOW} by absolute change.`));
  const chartTitle = `${title}: ${params.metric} by ${groupBy.join(", ")}, ${start} to ${end} vs ${prev.start} to ${start}`;
  const rows = movers.map((m) => [m.label, m.currency,
    { text: D.fmt(m.before), value: D.exact(m.before) }, { text: D.fmt(m.after), value: D.exact(m.after) },
    { text: `${m.delta > 0n ? "+" : ""}${D.fmt(m.delta)}`, value: D.exact(m.delta), cls: m.delta > 0n ? "up" : "down" },
    D.pct(m.before, m.after) ?? "new",
    { text: barCell(D.toNumber(m.delta), max, m.delta > 0n ? "#D55E00" : "#0072B2") }]);
  const t = table({ caption: chartTitle, columns: [groupBy.join(" / "), "Currency", "Previous", "Current", "Change", "Change %", "Change (bar)"],
    rows, numeric: [2, 3, 4, 5], id: nextId("movers-table") });
  if (!movers.length) panel.append(h("p", {}, "No group changed between the two periods."));
  panel.append(t);
  const csv = () => ({
    header: [...groupBy, "currency", "previous", "current", "change"],
    rows: movers.map((m) => [...m.keys, m.currency, D.exact(m.before), D.exact(m.after), D.exact(m.delta)]),
  });
  panel.append(chartTools({ csvName, csv, path: "/costs", params, label: chartTitle }));
  panel.dataset.state = "ready";
}

export async function render(root, state, setState, ctx) {
  await moversPanel(root, state, setState, ctx);
}
