// Exact decimal money in the browser: the API's decimal strings as BigInt multiples of 10^-18 (the warehouse keeps
// DECIMAL(38,18)). Sums (the "Other" series, movers' deltas) are exact; floats are used only to place pixels.
const SCALE = 18;
const ONE = 10n ** BigInt(SCALE);

export function parse(text) {
  if (text === null || text === undefined || text === "") return 0n;
  const s = String(text).trim();
  const neg = s.startsWith("-");
  const body = neg || s.startsWith("+") ? s.slice(1) : s;
  if (!/^\d*(\.\d*)?$/.test(body) || body === "" || body === ".") throw new Error(`not a decimal: ${text}`);
  const [whole, frac = ""] = body.split(".");
  if (frac.length > SCALE) throw new Error(`more than ${SCALE} decimals: ${text}`);
  const v = BigInt(whole || "0") * ONE + BigInt((frac + "0".repeat(SCALE)).slice(0, SCALE) || "0");
  return neg ? -v : v;
}

export const sum = (values) => values.reduce((a, b) => a + b, 0n);

// Like app.costs.money_str: no exponent, no trailing zeros beyond the cents.
export function exact(v) {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const whole = a / ONE;
  let frac = (a % ONE).toString().padStart(SCALE, "0").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return `${neg ? "-" : ""}${whole}.${frac}`;
}

// Rounded half away from zero to the cent (Python's ROUND_HALF_UP, as the CLI prints), as a BigInt of cents.
export function cents(v) {
  const unit = ONE / 100n;
  const neg = v < 0n;
  const a = neg ? -v : v;
  let c = a / unit;
  if ((a % unit) * 2n >= unit) c += 1n;
  return neg ? -c : c;
}

// "48,913.92" (grouped thousands, two decimals, half away from zero).
export function fmt(v) {
  const c = cents(v);
  const neg = c < 0n;
  const a = neg ? -c : c;
  const whole = (a / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg ? "−" : ""}${whole}.${(a % 100n).toString().padStart(2, "0")}`;
}

// Cents only, no grouping: "48913.92" (what the tests compare with the API's amounts).
export function centsText(v) {
  const c = cents(v);
  const neg = c < 0n;
  const a = neg ? -c : c;
  return `${neg ? "-" : ""}${a / 100n}.${(a % 100n).toString().padStart(2, "0")}`;
}

export const toNumber = (v) => Number(v) / Number(ONE);

export const abs = (v) => (v < 0n ? -v : v);

// Percentage change a -> b with one decimal, or null when a is 0.
export function pct(before, after) {
  if (before === 0n) return null;
  const tenths = ((after - before) * 1000n) / abs(before);
  const neg = tenths < 0n;
  const t = neg ? -tenths : tenths;
  return `${neg ? "−" : "+"}${t / 10n}.${t % 10n}%`;
}
