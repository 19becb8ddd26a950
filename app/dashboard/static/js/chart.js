// Stacked bars on uPlot (vendored, window.uPlot): positive parts stack up from zero, negative parts (credits,
// refunds) down, so every bar's height is its period's net total. Colours: Okabe & Ito, safe for colour blindness.
import { h } from "./ui.js";

export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"];
export const OTHER_COLOUR = "#8c8c8c";

let firstChart = true;

function markFirstChart() {
  if (!firstChart) return;
  firstChart = false;
  // First meaningful paint: the first chart is drawn (measured by the browser test, tests/test_dashboard.py).
  requestAnimationFrame(() => performance.mark("cloudtally:first-chart"));
}

const DAY = 86400;

// periods: ["2026-10-01", ...]; series: [{label, colour, values: [number]}]; opts: {granularity, currency, title}
export function stackedBars(periods, series, { granularity, currency, title }) {
  const xs = periods.map((p) => Date.UTC(+p.slice(0, 4), +p.slice(5, 7) - 1, +p.slice(8, 10)) / 1000);
  let lo = 0, hi = 0;
  xs.forEach((_, i) => {
    let pos = 0, neg = 0;
    for (const s of series) { const v = s.values[i] || 0; if (v >= 0) pos += v; else neg += v; }
    hi = Math.max(hi, pos); lo = Math.min(lo, neg);
  });
  const gap = xs.length > 1 ? Math.min(...xs.slice(1).map((x, i) => x - xs[i])) : (granularity === "day" ? DAY : 31 * DAY);
  const wrap = h("figure", { class: "chart" });
  const readout = h("div", { class: "readout", "aria-hidden": "true" }, " ");
  wrap.append(h("figcaption", { class: "visually-hidden" }, title), readout);
  const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function drawBars(u) {
    const ctx = u.ctx;
    const px0 = u.valToPos(xs[0], "x", true), px1 = u.valToPos(xs[0] + gap, "x", true);
    const w = Math.max(1, Math.abs(px1 - px0) * 0.72);
    ctx.save();
    ctx.lineWidth = Math.max(1, devicePixelRatio * 0.5);
    ctx.strokeStyle = "#ffffff";
    xs.forEach((x, i) => {
      let pos = 0, neg = 0;
      const cx = u.valToPos(x, "x", true);
      for (const s of series) {
        const v = s.values[i] || 0;
        if (!v) continue;
        const base = v >= 0 ? pos : neg;
        const top = base + v;
        if (v >= 0) pos = top; else neg = top;
        const y0 = u.valToPos(base, "y", true), y1 = u.valToPos(top, "y", true);
        ctx.fillStyle = s.colour;
        ctx.fillRect(cx - w / 2, Math.min(y0, y1), w, Math.abs(y1 - y0));
        if (w > 4) ctx.strokeRect(cx - w / 2, Math.min(y0, y1), w, Math.abs(y1 - y0));
      }
    });
    ctx.restore();
  }

  const opts = {
    width: 800,
    height: 300,
    legend: { show: false },
    cursor: { points: { show: false }, drag: { x: false, y: false } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      x: { time: true, range: () => [xs[0] - gap * 0.6, xs[xs.length - 1] + gap * 0.6] },
      y: { range: () => { const pad = (hi - lo || 1) * 0.05; return [lo < 0 ? lo - pad : 0, hi + pad]; } },
    },
    axes: [
      { values: granularity === "month" ? "{MMM} {YYYY}" : undefined, grid: { show: false } },
      { label: currency, size: 70, values: (u, ticks) => ticks.map((t) => money.format(t)) },
    ],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.colour, paths: () => null, points: { show: false } }))],
    hooks: {
      draw: [(u) => { drawBars(u); markFirstChart(); }],
      setCursor: [(u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined) { readout.textContent = " "; return; }
        const parts = series.filter((s) => s.values[i]).map((s) => `${s.label}: ${s.text[i]}`);
        readout.textContent = `${periods[i]} — ${parts.join(" · ")}`;
      }],
    },
  };
  const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)], wrap);
  const fit = () => plot.setSize({ width: Math.max(320, wrap.clientWidth || 800), height: 300 });
  new ResizeObserver(fit).observe(wrap);
  requestAnimationFrame(fit);
  return wrap;
}

// The legend as a list (readable by screen readers; colours also named by their label).
export function legend(series) {
  return h("ul", { class: "legend", "aria-label": "Legend" }, series.map((s) =>
    h("li", {}, h("span", { class: "swatch", style: `background:${s.colour}`, "aria-hidden": "true" }), s.label)));
}

// Horizontal bars in HTML (movers, coverage): width ∝ |value|, direction by sign.
export function barCell(value, max, colour) {
  const pct = max > 0 ? Math.min(100, (Math.abs(value) / max) * 100) : 0;
  return h("span", { class: `hbar ${value < 0 ? "neg" : "pos"}`, "aria-hidden": "true" },
    h("span", { style: `width:${pct.toFixed(1)}%;background:${colour}` }));
}

// Daily actuals and a forecast with its 80% and 95% bands (uPlot bands between the interval series).
// actual: {days, values}; forecast: {days, point, lo80, hi80, lo95, hi95}; values as numbers (pixels only).
export function forecastBands(actual, forecast, { currency, title }) {
  const toX = (d) => Date.UTC(+d.slice(0, 4), +d.slice(5, 7) - 1, +d.slice(8, 10)) / 1000;
  const days = [...new Set([...actual.days, ...forecast.days])].sort();
  const xs = days.map(toX);
  const pick = (src, key) => { const m = new Map(src.days.map((d, i) => [d, src[key][i]])); return days.map((d) => (m.has(d) ? m.get(d) : null)); };
  const wrap = h("figure", { class: "chart" });
  wrap.append(h("figcaption", { class: "visually-hidden" }, title));
  const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const hidden = { stroke: "transparent", points: { show: false } };
  const opts = {
    width: 800, height: 280,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { y: { range: (u, lo, hi) => [Math.min(0, lo), hi * 1.05] } },
    axes: [{ grid: { show: false } }, { label: currency, size: 70, values: (u, ticks) => ticks.map((t) => money.format(t)) }],
    series: [{},
      { label: "Actual", stroke: "#0072B2", width: 2, points: { show: false } },
      { label: "Forecast", stroke: "#D55E00", width: 2, dash: [6, 4], points: { show: false } },
      { label: "95% high", ...hidden }, { label: "95% low", ...hidden },
      { label: "80% high", ...hidden }, { label: "80% low", ...hidden }],
    bands: [{ series: [3, 4], fill: "rgba(230,159,0,0.18)" }, { series: [5, 6], fill: "rgba(230,159,0,0.38)" }],
    hooks: { draw: [() => markFirstChart()] },
  };
  const data = [xs, pick(actual, "values"), pick(forecast, "point"), pick(forecast, "hi95"), pick(forecast, "lo95"),
    pick(forecast, "hi80"), pick(forecast, "lo80")];
  const plot = new uPlot(opts, data, wrap);
  const fit = () => plot.setSize({ width: Math.max(320, wrap.clientWidth || 800), height: 280 });
  new ResizeObserver(fit).observe(wrap);
  requestAnimationFrame(fit);
  return wrap;
}

export const FORECAST_LEGEND = [
  { label: "Actual (daily)", colour: "#0072B2" }, { label: "Forecast", colour: "#D55E00" },
  { label: "80% interval", colour: "rgba(230,159,0,0.55)" }, { label: "95% interval", colour: "rgba(230,159,0,0.25)" }];
