// Small DOM helpers: elements, tables, CSV downloads and "the same call in the API" links.
import { apiUrl, curl } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;

// CSV as RFC 4180: quoted when needed, "\n" line ends (as the API writes).
export function toCsv(header, rows) {
  const cell = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\n") + "\n";
}

export function downloadCsv(filename, header, rows) {
  const blob = new Blob([toCsv(header, rows)], { type: "text/csv;charset=utf-8" });
  const a = h("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

// The tools under every chart: download CSV of exactly what it shows, and the equivalent API call.
export function chartTools({ csvName, csv, path, params, label }) {
  const tools = h("div", { class: "tools" });
  const btn = h("button", { type: "button", class: "csv", "aria-label": `Download CSV: ${label}` }, "Download CSV");
  btn.addEventListener("click", () => { const { header, rows } = csv(); downloadCsv(csvName, header, rows); });
  tools.append(btn);
  if (path) {
    const url = apiUrl(path, params);
    tools.append(
      h("a", { href: url, class: "api-link", target: "_blank", rel: "noopener",
        "aria-label": `The same data from the API: ${label}` }, "API call"),
      h("code", { class: "curl", title: "The same call with curl" }, curl(path, params)),
    );
  }
  return tools;
}

// A table; cells are strings or {text, value, cls}. `caption` labels it for screen readers.
export function table({ caption, columns, rows, numeric = [], id }) {
  const t = h("table", { id, class: "data" });
  t.append(h("caption", {}, caption));
  t.append(h("thead", {}, h("tr", {}, columns.map((c, i) =>
    h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, c)))));
  const body = h("tbody");
  for (const r of rows) {
    body.append(h("tr", {}, r.map((c, i) => {
      const cell = c !== null && typeof c === "object" ? c : { text: c };
      const tag = i === 0 ? "th" : "td";
      return h(tag, { scope: i === 0 ? "row" : null, class: [numeric.includes(i) ? "num" : "", cell.cls || ""]
        .join(" ").trim() || null, dataset: cell.value !== undefined ? { value: cell.value } : null,
      title: cell.title || null }, cell.text ?? "");
    })));
  }
  t.append(body);
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, t);
}

export function problemBox(err, what) {
  const text = err.status === 403 ? `This key may not read ${what}: ${err.message}` : `${what}: ${err.message}`;
  return h("p", { class: "problem", role: "alert" }, text);
}

// Month arithmetic on "YYYY-MM-DD" / "YYYY-MM" strings (UTC, no time zones).
export function addMonths(day, n) {
  const [y, m] = day.split("-").map(Number);
  const t = y * 12 + (m - 1) + n;
  return `${Math.floor(t / 12)}-${String((t % 12) + 1).padStart(2, "0")}-01`;
}
