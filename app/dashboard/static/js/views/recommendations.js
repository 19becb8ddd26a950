// Recommendations (/v1/recommendations): what to do, predicted monthly savings and status, biggest first; the
// open savings per currency summed exactly.
import { api } from "../api.js";
import { barCell } from "../chart.js";
import * as D from "../decimal.js";
import { h, chartTools, table, problemBox, nextId } from "../ui.js";

export async function render(root, state, setState, ctx) {
  await recommendationsPanel(root, state, setState, ctx);
}

// The list; with `team`, only that team's (the API's team parameter) and no filter form (the team page).
export async function recommendationsPanel(root, state, setState, ctx, { team, heading = "Recommendations", tableId = "recommendations-table", csvName = "recommendations.csv" } = {}) {
  const id = nextId("h");
  const panel = h("section", { class: "panel recommendations", "aria-labelledby": id }, h("h2", { id }, heading));
  root.append(panel);
  const params = { status: state.status || "open", category: state.category, team, limit: 1000 };
  const form = h("form", { class: "query", "aria-label": "Recommendation filters" });
  const field = (name, label, options, value) => h("div", { class: "field" }, h("label", { for: `${id}-${name}` }, label),
    h("select", { id: `${id}-${name}`, name }, options.map(([v, t]) => h("option", { value: v, selected: (value || "") === v }, t))));
  form.append(field("status", "Status", [["open", "Open"], ["acted_on", "Acted on"], ["expired", "Expired"], ["any", "Any"]], params.status),
    field("category", "Category", [["", "All"], ["commitment", "Commitments"], ["waste", "Waste"], ["rightsizing", "Rightsizing"]], params.category),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    setState({ ...state, status: fd.get("status"), category: fd.get("category") || undefined });
  });
  if (!team) panel.append(form);
  let body;
  try {
    body = await api("/recommendations", params);
  } catch (err) {
    panel.append(problemBox(err, "recommendations"));
    panel.dataset.state = "error";
    return;
  }
  const recs = body.recommendations;
  const sums = new Map();
  for (const r of recs) sums.set(r.currency, (sums.get(r.currency) || 0n) + D.parse(r.monthly_savings));
  const totals = h("p", { class: "totals" }, `${recs.length} of ${body.total} recommendations; predicted monthly savings: `);
  [...sums.entries()].sort().forEach(([cur, v], i) => {
    if (i) totals.append(" · ");
    totals.append(h("strong", { dataset: { savingsCurrency: cur, value: D.exact(v) } }, `${cur} ${D.fmt(v)}`));
  });
  if (!recs.length) totals.append("none. Run `cloudtally recommend refresh` (or POST /v1/recommendations/refresh).");
  panel.append(totals);
  if (ctx.me.role === "admin" && !team) { // POST /v1/recommendations/refresh is admin-only
    const run = h("button", { type: "button", class: "csv", id: "refresh-recommendations" }, "Run the optimizers now");
    run.addEventListener("click", async () => {
      run.disabled = true;
      run.textContent = "Running…";
      try {
        await api("/recommendations/refresh", {}, "POST");
        setState({ ...state, refreshed: String(Date.now()) });
      } catch (err) {
        run.replaceWith(problemBox(err, "the optimizers"));
      }
    });
    panel.append(run);
  }
  const max = Math.max(0, ...recs.map((r) => D.toNumber(D.parse(r.monthly_savings))));
  const title = `Recommendations (${params.status}${params.category ? `, ${params.category}` : ""}), biggest predicted monthly savings first`;
  panel.append(table({ caption: title, id: tableId, numeric: [1, 8, 9],
    columns: ["Action", "Monthly savings", "Currency", "Savings (bar)", "Kind", "Provider", "Team", "Status", "Monthly cost now", "Realized / month"],
    rows: recs.map((r) => [{ text: r.action, cls: "wrap", title: r.resource_id || r.sub_account_id || r.billing_account_id || undefined },
      { text: D.fmt(D.parse(r.monthly_savings)), value: r.monthly_savings }, r.currency,
      { text: barCell(D.toNumber(D.parse(r.monthly_savings)), max, "#009E73") }, r.kind, r.provider, r.team || "",
      { text: r.status, cls: `status ${r.status}` }, { text: r.monthly_cost ? D.fmt(D.parse(r.monthly_cost)) : "", value: r.monthly_cost ?? undefined },
      r.realized_monthly_savings ? D.fmt(D.parse(r.realized_monthly_savings)) : ""]) }));
  const cols = ["id", "kind", "category", "status", "provider", "billing_account_id", "sub_account_id", "resource_id", "region", "team", "action", "currency", "monthly_savings", "monthly_cost", "realized_monthly_savings"];
  panel.append(chartTools({ csvName, label: title, path: "/recommendations", params,
    csv: () => ({ header: cols, rows: recs.map((r) => cols.map((k) => r[k] ?? "")) }) }));
  panel.dataset.state = "ready";
}
