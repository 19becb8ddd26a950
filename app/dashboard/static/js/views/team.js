// A team's page: its spend over time by service and its top movers, both /v1/costs with filter team=<team>. A team
// key sees only its own team (the API enforces it; the page offers no other).
import { api } from "../api.js";
import { h, problemBox, nextId, addMonths } from "../ui.js";
import { costsPanel } from "./spend.js";
import { moversPanel } from "./movers.js";
import { budgetsPanel } from "./budgets.js";
import { recommendationsPanel } from "./recommendations.js";

async function teams(ctx) {
  if (ctx.me.team) return [ctx.me.team];
  const latest = await ctx.latestMonth();
  const body = await api("/costs", { start: addMonths(latest, -2), end: addMonths(latest, 1), group_by: ["team"] });
  return [...new Set(body.rows.map((r) => r.team).filter(Boolean))].sort();
}

export async function render(root, state, setState, ctx) {
  const head = h("section", { class: "panel team-head" });
  root.append(head);
  let names;
  try {
    names = await teams(ctx);
  } catch (err) {
    head.append(problemBox(err, "teams"));
    return;
  }
  const team = ctx.me.team || (names.includes(state.team) ? state.team : names[0]);
  const id = nextId("team");
  if (ctx.me.team) {
    head.append(h("h2", { id: `${id}-h` }, `Team ${team}`), h("p", {}, "This key reads this team's allocated costs only."));
  } else {
    const sel = h("select", { id, name: "team" }, names.map((n) => h("option", { value: n, selected: n === team }, n)));
    sel.addEventListener("change", () => setState({ ...state, team: sel.value }));
    head.append(h("h2", { id: `${id}-h` }, `Team ${team}`), h("div", { class: "field" }, h("label", { for: id }, "Team"), sel));
  }
  if (!team) { head.append(h("p", {}, "No allocated teams yet: apply allocation rules (cloudtally rules apply).")); return; }
  head.dataset.team = team;
  const fixed = { team };
  const spendState = { start: state.start, end: state.end, granularity: state.granularity || "day",
    group_by: state.group_by?.length ? state.group_by : ["ServiceName"], metric: state.metric, filter: state.filter, currency: state.currency };
  await costsPanel(root, spendState, (next) => setState({ ...next, team }), { fixed, title: `Spend of team ${team}`, csvName: `team-${team}-spend.csv` });
  await moversPanel(root, { group_by: ["ServiceName"], metric: state.metric, start: state.movers_start }, (next) =>
    setState({ ...state, team, movers_start: next.start }), ctx, { fixed, title: `Top movers of team ${team}`, csvName: `team-${team}-movers.csv` });
  await recommendationsPanel(root, {}, () => {}, ctx, { team, heading: `Open recommendations for team ${team}`,
    tableId: "team-recommendations-table", csvName: `team-${team}-recommendations.csv` });
  await budgetsPanel(root, {}, { only: (s) => s.team === team, heading: `Budgets of team ${team}`,
    tableId: "team-budgets-table", csvName: `team-${team}-budgets.csv` });
}
