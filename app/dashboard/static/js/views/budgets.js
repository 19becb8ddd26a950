// Budgets (/v1/budgets/status): per budget its current period's budget, actual, forecast of the rest, EAC and
// variance; and for one budget its daily actuals with the forecast and its 80%/95% bands (/v1/costs, /v1/forecasts).
import { api } from "../api.js";
import { barCell, forecastBands, legend, FORECAST_LEGEND } from "../chart.js";
import * as D from "../decimal.js";
import { h, chartTools, table, problemBox, nextId } from "../ui.js";

// A budget's scope as cost-query filters (the allocation dimensions and FOCUS columns the budget counts).
export function scopeFilters(scope) {
  const map = { team: "team", service: "service", cost_center: "cost_center", provider: "ProviderName", account: "SubAccountId" };
  return Object.entries(map).filter(([k]) => scope[k]).map(([k, key]) => `${key}=${scope[k]}`);
}

const dayShift = (d, n) => new Date(Date.parse(`${d}T00:00:00Z`) + n * 86400000).toISOString().slice(0, 10);

// The status table; `only` narrows the API's list (the team page: budgets scoped to the team).
export async function budgetsPanel(root, state, { only = () => true, heading = "Budgets: actual, forecast and variance", tableId = "budgets-table", csvName = "budgets.csv" } = {}) {
  const id = nextId("h");
  const panel = h("section", { class: "panel budgets", "aria-labelledby": id }, h("h2", { id }, heading));
  root.append(panel);
  const params = { period: state.period };
  let body;
  try {
    body = await api("/budgets/status", params);
  } catch (err) {
    panel.append(problemBox(err, "budgets"));
    panel.dataset.state = "error";
    return null;
  }
  const st = body.statuses.filter(only);
  if (!st.length) panel.append(h("p", {}, "No budgets yet (cloudtally budgets import budgets.csv, or POST /v1/budgets)."));
  const scopeText = (s) => Object.entries(s.scope).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(", ") || "everything";
  const title = `Budgets in their ${state.period ? state.period : "current"} period: budget, actual to date, forecast, EAC and variance`;
  const rows = st.map((s) => {
    const pct = Number(s.pct_of_budget_forecast ?? 0);
    return [s.name, scopeText(s), s.period, s.currency, s.metric,
      { text: D.fmt(D.parse(s.budget)), value: s.budget }, { text: D.fmt(D.parse(s.actual)), value: s.actual },
      { text: D.fmt(D.parse(s.forecast_remaining)), value: s.forecast_remaining }, { text: D.fmt(D.parse(s.eac)), value: s.eac },
      { text: `${D.parse(s.variance) > 0n ? "+" : ""}${D.fmt(D.parse(s.variance))}`, value: s.variance, cls: s.favorable ? "down" : "up" },
      s.variance_pct === null ? "n/a" : `${Number(s.variance_pct) > 0 ? "+" : ""}${s.variance_pct}%`,
      { text: s.favorable ? "favorable" : "over", cls: s.favorable ? "status passed" : "status failed" },
      { text: h("span", {}, barCell(Math.min(pct, 150), 150, pct > 100 ? "#D55E00" : "#009E73"), ` ${s.pct_of_budget_forecast ?? "n/a"}%`) },
      s.projected_crossing_date || "—"];
  });
  panel.append(table({ caption: title, id: tableId, rows, numeric: [5, 6, 7, 8, 9, 10],
    columns: ["Budget", "Scope", "Period", "Currency", "Metric", "Budget", "Actual", "Forecast rest", "EAC", "Variance", "Variance %", "Status", "EAC % of budget", "Crossing date"] }));
  // What each actual converted, and what it leaves out (another billing currency, or a month without a rate).
  const notes = st.flatMap((s) => [
    ...(s.conversion?.length ? [`${s.name} (${s.period}): converted into ${s.currency} with ${s.conversion.map((r) => `${r.currency} ${r.month} × ${r.rate}${r.source ? ` (${r.source})` : ""}`).join("; ")}.`] : []),
    ...(s.not_counted || []).map((n) => `${s.name} (${s.period}): not counted: ${n.currency} ${D.fmt(D.parse(n.amount))}, ${n.reason}.`)]);
  if (notes.length) panel.append(h("ul", { class: "window budget-notes" }, notes.map((t) => h("li", {}, t))));
  const cols = ["name", "period", "currency", "metric", "version", "budget", "actual", "actual_through", "forecast_remaining", "eac", "variance", "variance_pct", "favorable", "pct_of_budget_forecast", "projected_crossing_date"];
  panel.append(chartTools({ csvName, label: title, path: "/budgets/status", params,
    csv: () => ({ header: ["scope", ...cols], rows: st.map((s) => [scopeText(s), ...cols.map((k) => s[k] ?? "")]) }) }));
  panel.dataset.state = "ready";
  return st;
}

export async function render(root, state, setState) {
  const st = await budgetsPanel(root, state);
  if (!st || !st.length) return;

  // One budget's forecast band.
  const chosen = st.find((s) => s.name === state.budget) || st[0];
  const id2 = nextId("h");
  const band = h("section", { class: "panel forecast", "aria-labelledby": id2 });
  const sel = h("select", { id: `${id2}-sel` }, st.map((s) => h("option", { value: s.name, selected: s === chosen }, `${s.name} (${s.period})`)));
  sel.addEventListener("change", () => setState({ ...state, budget: sel.value }));
  band.append(h("h2", { id: id2 }, `Forecast of ${chosen.name}: daily actuals, forecast and its 80% / 95% intervals`),
    h("div", { class: "field" }, h("label", { for: `${id2}-sel` }, "Budget"), sel));
  root.append(band);
  const filters = scopeFilters(chosen.scope);
  const fparams = { ...Object.fromEntries(Object.entries(chosen.scope).filter(([, v]) => v)), currency: chosen.currency, metric: chosen.metric, horizon_days: 60 };
  let fc, actual;
  try {
    fc = await api("/forecasts", fparams);
  } catch (err) {
    band.append(problemBox(err, "forecasts"));
    band.dataset.state = "error";
    return;
  }
  const f = fc.forecasts[0];
  const cparams = { start: dayShift(f.start, -60), end: f.start, granularity: "day", metric: chosen.metric,
    filter: [...filters, `BillingCurrency=${chosen.currency}`] };
  try {
    actual = await api("/costs", cparams);
  } catch (err) {
    band.append(problemBox(err, "costs"));
    band.dataset.state = "error";
    return;
  }
  const act = { days: actual.rows.map((r) => r.period), values: actual.rows.map((r) => D.toNumber(D.parse(r.cost))), exact: actual.rows.map((r) => r.cost) };
  const num = (k) => f.days.map((d) => D.toNumber(D.parse(d[k])));
  const fore = { days: f.days.map((d) => d.day), point: num("forecast"), lo80: num("lo80"), hi80: num("hi80"), lo95: num("lo95"), hi95: num("hi95") };
  const billedOnly = chosen.convert_currencies ? ` (costs billed in ${chosen.currency} only; the status above also counts other currencies converted)` : "";
  const chartTitle = `${chosen.name}: ${chosen.metric} in ${chosen.currency}, 60 days of actuals and a ${f.horizon_days}-day forecast (${f.model})${billedOnly}`;
  band.append(forecastBands(act, fore, { currency: chosen.currency, title: chartTitle }), legend(FORECAST_LEGEND));
  const months = f.months.map((m) => [m.month, { text: D.fmt(D.parse(m.forecast)), value: m.forecast }]);
  band.append(table({ caption: `Forecast month totals of ${chosen.name} (${chosen.currency})`, id: "forecast-months", columns: ["Month", "Forecast"], rows: months, numeric: [1] }));
  const acc = f.accuracy?.metrics;
  if (acc) band.append(h("p", { class: "window" }, `Measured accuracy (rolling-origin backtest): month-total error median ${acc.month_ape_median}% (p90 ${acc.month_ape_p90}%), daily WAPE ${acc.wape}%, 80% interval coverage ${acc.coverage80}%.`));
  band.append(chartTools({ csvName: `forecast-${chosen.name}.csv`, label: chartTitle, path: "/forecasts", params: fparams,
    csv: () => ({ header: ["day", "kind", "value", "lo80", "hi80", "lo95", "hi95", "currency"],
      rows: [...act.days.map((d, i) => [d, "actual", act.exact[i], "", "", "", "", chosen.currency]),
        ...f.days.map((d) => [d.day, "forecast", d.forecast, d.lo80, d.hi80, d.lo95, d.hi95, chosen.currency])] }) }));
  band.append(chartTools({ csvName: `actuals-${chosen.name}.csv`, label: `actuals of ${chosen.name}`, path: "/costs", params: cparams,
    csv: () => ({ header: ["period", "cost", "currency"], rows: actual.rows.map((r) => [r.period, r.cost, r.currency]) }) }));
  band.dataset.state = "ready";
}
