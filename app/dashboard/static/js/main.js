// The dashboard shell: who am I (/v1/me: a key, or the open demo mode), the navigation, and the view named in the
// URL hash (#spend?start=...&group_by=...: the view's query, shareable and restored on reload).
import { api, ApiError, fromResponse, getKey, setKey, clearKey } from "./api.js";
import { h } from "./ui.js";

const VIEWS = [
  { id: "spend", label: "Spend", may: "costs", load: () => import("./views/spend.js") },
  { id: "movers", label: "Top movers", may: "costs", load: () => import("./views/movers.js") },
  { id: "team", label: "Team", may: "costs", load: () => import("./views/team.js") },
  { id: "budgets", label: "Budgets", may: "budgets", load: () => import("./views/budgets.js") },
  { id: "recommendations", label: "Recommendations", may: "recommendations", load: () => import("./views/recommendations.js") },
  { id: "health", label: "Data health", may: "data_quality", load: () => import("./views/health.js") },
  { id: "coverage", label: "Allocation", may: "allocation_coverage", load: () => import("./views/coverage.js") },
];
const ARRAYS = ["group_by", "filter"];

function parseHash() {
  const [view, qs = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(qs);
  const state = {};
  for (const [k, v] of params) {
    if (ARRAYS.includes(k)) (state[k] ||= []).push(v);
    else state[k] = v;
  }
  return { view, state };
}

function writeHash(view, state) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, item);
  }
  const s = q.toString();
  location.hash = `#${view}${s ? `?${s}` : ""}`;
}

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const ctx = { me: null, latestMonth: null }; // latestMonth(): a promise of "YYYY-MM-01"

function askForKey(message) {
  nav.replaceChildren();
  who.replaceChildren();
  const form = h("form", { class: "panel key-form", "aria-labelledby": "key-h" },
    h("h2", { id: "key-h" }, "Sign in with an API key"),
    h("p", {}, "The dashboard reads the API with your key (created by `cloudtally keys create`). It is kept in this browser tab only (sessionStorage)."),
    message ? h("p", { class: "problem", role: "alert" }, message) : null,
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"),
      h("input", { id: "api-key", name: "key", type: "password", autocomplete: "off", required: true, size: 60, placeholder: "ct_…" })),
    h("button", { type: "submit" }, "Open the dashboard"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(new FormData(form).get("key").trim());
    start();
  });
  main.replaceChildren(form);
  form.querySelector("input").focus();
}

function renderShell() {
  const me = ctx.me;
  who.replaceChildren(
    me.auth === "disabled"
      ? h("span", { class: "badge demo", title: "CLOUDTALLY_AUTH=disabled" }, "Demo mode: authentication disabled")
      : h("span", { class: "badge" }, `${me.name} (${me.role})`),
  );
  if (getKey()) {
    const out = h("button", { type: "button", class: "link" }, "Sign out");
    out.addEventListener("click", () => {
      // Forget the key and the view (no hashchange: a view must not render between sign-out and the key form).
      window.removeEventListener("hashchange", route);
      ctx.me = null;
      renderSeq += 1;
      clearKey();
      history.replaceState(null, "", location.pathname);
      start();
    });
    who.append(" ", out);
  }
  nav.replaceChildren(h("ul", {}, VIEWS.filter((v) => me.may.includes(v.may)).map((v) =>
    h("li", {}, h("a", { href: `#${v.id}`, id: `nav-${v.id}`, dataset: { view: v.id } }, v.label)))));
}

let renderSeq = 0;

async function route() {
  if (!ctx.me) return; // signed out
  const seq = ++renderSeq;
  let { view, state } = parseHash();
  const allowed = VIEWS.filter((v) => ctx.me.may.includes(v.may));
  let def = allowed.find((v) => v.id === view);
  if (!def) def = allowed.find((v) => v.id === (ctx.me.team ? "team" : "spend"));
  for (const a of nav.querySelectorAll("a")) a.removeAttribute("aria-current");
  nav.querySelector(`a[data-view="${def.id}"]`)?.setAttribute("aria-current", "page");
  const mod = await def.load();
  if (seq !== renderSeq || !ctx.me) return;
  const root = h("div", { class: "view", id: `view-${def.id}`, "aria-busy": "true" });
  main.replaceChildren(root);
  document.title = `${def.label} · CloudTally`;
  try {
    await mod.render(root, state, (next) => writeHash(def.id, next), ctx);
  } catch (err) {
    root.append(h("p", { class: "problem", role: "alert" }, String(err.message || err)));
  }
  root.setAttribute("aria-busy", "false");
  root.dataset.state = "ready";
}

async function start() {
  try {
    // index.html asked /v1/me already while the modules loaded (first load only; after a sign-in, ask again).
    const early = window.ctMe;
    window.ctMe = null;
    ctx.me = early ? await fromResponse(await early) : await api("/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      const had = getKey();
      clearKey();
      askForKey(had ? "That key is unknown or revoked." : null);
      return;
    }
    main.replaceChildren(h("p", { class: "problem", role: "alert" }, `The API is not answering: ${err.message}`));
    return;
  }
  renderShell();
  // The latest month with data (the API's default window), for views that compare months: asked for only when
  // such a view needs it, so it never delays (or competes with) the first chart's own query.
  let latest = null;
  ctx.latestMonth = () => (latest ||= api("/costs", { limit: 1 }).then((b) => b.query.start));
  window.removeEventListener("hashchange", route);
  window.addEventListener("hashchange", route);
  await route();
}

start();
