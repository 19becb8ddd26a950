// Data health: per source the last delivery loaded and its freshness, the latest ingest runs, failed deliveries
// and the data-quality checks (admin and finance keys: /v1/sources, /v1/deliveries, /v1/ingest-runs, /v1/data-quality).
import { api } from "../api.js";
import { h, chartTools, table, problemBox, nextId } from "../ui.js";
import * as D from "../decimal.js";

const hoursSince = (iso) => (iso ? (Date.now() - Date.parse(iso)) / 3600000 : null);
const ago = (hours) => (hours === null ? "never" : hours < 1 ? `${Math.round(hours * 60)} min ago` : hours < 48 ? `${hours.toFixed(1)} h ago` : `${(hours / 24).toFixed(1)} days ago`);
const status = (s) => ({ text: s, cls: `status ${s}` });

function section(root, title) {
  const id = nextId("h");
  const s = h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title));
  root.append(s);
  return s;
}

export async function render(root) {
  const calls = {
    sources: ["/sources", { limit: 1000 }],
    deliveries: ["/deliveries", { limit: 1000 }],
    runs: ["/ingest-runs", { limit: 20 }],
    checks: ["/data-quality", { limit: 1000 }],
  };
  const results = await Promise.allSettled(Object.values(calls).map(([p, q]) => api(p, q)));
  const [sources, deliveries, runs, checks] = results;
  const failed = results.find((r) => r.status === "rejected");
  if (failed) { root.append(problemBox(failed.reason, "data health (sources, ledger, runs, checks)")); return; }

  // Sources: last loaded delivery (finished_at), freshness from the freshness check when there is one.
  const fresh = new Map(checks.value.checks.filter((c) => c.check === "freshness").map((c) => [c.source, c]));
  const bySource = new Map();
  for (const d of deliveries.value.deliveries) {
    const cur = bySource.get(d.source) || { last: null, failed: 0, loaded: 0 };
    if (d.status === "loaded" || d.status === "replaced") {
      if (!cur.last || d.finished_at > cur.last.finished_at) cur.last = d;
      if (d.status === "loaded") cur.loaded += 1;
    }
    if (d.status === "failed") cur.failed += 1;
    bySource.set(d.source, cur);
  }
  const s1 = section(root, "Sources: last delivery and freshness");
  const srcRows = sources.value.sources.map((s) => {
    const info = bySource.get(s.name) || { last: null, failed: 0, loaded: 0 };
    const f = fresh.get(s.name);
    const hrs = hoursSince(info.last?.finished_at);
    return { s, info, f, hrs };
  });
  s1.append(table({ caption: "Sources: last delivery and freshness", id: "health-sources",
    columns: ["Source", "Provider / format", "Schedule", "Last delivery", "Billing period", "Age", "Freshness check", "Periods loaded", "Failed deliveries"],
    rows: srcRows.map(({ s, info, f, hrs }) => [s.name, `${s.provider} / ${s.format}`, s.schedule || "manual",
      info.last?.finished_at || "never", info.last ? info.last.billing_period_start.slice(0, 7) : "", ago(hrs),
      f ? status(f.status) : { text: "not checked yet", cls: "status skipped" }, String(info.loaded), String(info.failed)]),
    numeric: [7, 8] }));
  s1.append(chartTools({ csvName: "sources.csv", label: "sources",
    csv: () => ({ header: ["source", "provider", "format", "schedule", "last_delivery_at", "billing_period", "freshness", "periods_loaded", "failed_deliveries"],
      rows: srcRows.map(({ s, info, f }) => [s.name, s.provider, s.format, s.schedule || "", info.last?.finished_at || "",
        info.last ? info.last.billing_period_start.slice(0, 7) : "", f?.status || "", info.loaded, info.failed]) }),
    path: "/deliveries", params: { limit: 1000 } }));

  const s2 = section(root, "Data-quality checks");
  const order = { failed: 0, skipped: 1, passed: 2 };
  const cs = checks.value.checks.slice().sort((a, b) => (order[a.status] ?? 3) - (order[b.status] ?? 3));
  if (!cs.length) s2.append(h("p", {}, "No check results yet: checks run after every scheduled or CLI ingest (cloudtally quality SOURCE)."));
  const cols = ["source", "billing_period", "check", "status", "message", "checked_at"];
  s2.append(table({ caption: "Data-quality checks, failed first", id: "health-checks", columns: ["Source", "Billing period", "Check", "Status", "Message", "Checked"],
    rows: cs.map((c) => [c.source, c.billing_period || "(source-wide)", c.check, status(c.status), c.message || "", c.checked_at || ""]) }));
  s2.append(chartTools({ csvName: "data-quality.csv", label: "data-quality checks", path: "/data-quality", params: { limit: 1000 },
    csv: () => ({ header: cols, rows: cs.map((c) => cols.map((k) => c[k] ?? "")) }) }));

  const s3 = section(root, "Latest ingest runs");
  const rs = runs.value.runs;
  if (!rs.length) s3.append(h("p", {}, "No ingest runs recorded yet (scheduled, `cloudtally ingest SOURCE` and API runs are)."));
  s3.append(table({ caption: "Latest ingest runs", id: "health-runs", columns: ["Source", "Trigger", "Status", "Started", "Duration (s)", "Message"],
    rows: rs.map((r) => [r.source, r.trigger, status(r.status), r.started_at || "", r.duration_ms != null ? (r.duration_ms / 1000).toFixed(1) : "",
      r.error || r.message || ""]), numeric: [4] }));
  s3.append(chartTools({ csvName: "ingest-runs.csv", label: "ingest runs", path: "/ingest-runs", params: { limit: 20 },
    csv: () => ({ header: ["source", "trigger", "status", "started_at", "duration_ms", "message"],
      rows: rs.map((r) => [r.source, r.trigger, r.status, r.started_at || "", r.duration_ms ?? "", r.error || r.message || ""]) }) }));

  const s4 = section(root, "Deliveries (the ledger)");
  const ds = deliveries.value.deliveries.slice(0, 30);
  s4.append(table({ caption: "Latest deliveries: raw vs landed BilledCost", id: "health-deliveries",
    columns: ["Source", "Billing period", "Status", "Finished", "Rows landed", "BilledCost raw", "BilledCost landed", "Error"],
    rows: ds.map((d) => [d.source, d.billing_period_start.slice(0, 7), status(d.status), d.finished_at || "", String(d.landed?.rows ?? ""),
      { text: d.raw?.billed_cost != null ? D.fmt(D.parse(d.raw.billed_cost)) : "", value: d.raw?.billed_cost ?? undefined },
      { text: d.landed?.billed_cost != null ? D.fmt(D.parse(d.landed.billed_cost)) : "", value: d.landed?.billed_cost ?? undefined },
      d.error || ""]), numeric: [4, 5, 6] }));
  s4.append(chartTools({ csvName: "deliveries.csv", label: "deliveries", path: "/deliveries", params: { limit: 30 },
    csv: () => ({ header: ["id", "source", "billing_period", "status", "finished_at", "landed_rows", "raw_billed_cost", "landed_billed_cost", "error"],
      rows: ds.map((d) => [d.id, d.source, d.billing_period_start.slice(0, 7), d.status, d.finished_at || "", d.landed?.rows ?? "",
        d.raw?.billed_cost ?? "", d.landed?.billed_cost ?? "", d.error || ""]) }) }));
  root.querySelectorAll(".panel").forEach((p) => { p.dataset.state = "ready"; });
}
