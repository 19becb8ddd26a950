// The /v1 API with the user's key (sessionStorage, this tab only) or none in the open demo mode.
const KEY = "cloudtally.key";

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const clearKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, problem) {
    const named = (problem?.errors || []).map((e) => `${e.parameter}: ${e.detail}`).join("; ");
    super(named || problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// Query parameters as the API takes them: arrays become repeated keys (group_by=a&group_by=b), empty values drop.
export function queryString(params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) if (item !== "" && item !== null) q.append(k, item);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const apiUrl = (path, params) => `${location.origin}/v1${path}${queryString(params)}`;

export async function api(path, params, method = "GET") {
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return fromResponse(await fetch(apiUrl(path, params), { headers, method }));
}

// A fetch Response as the API's JSON, or an ApiError with its problem document.
export async function fromResponse(res) {
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, problem);
  }
  return res.json();
}

// The same call as a shell command (the key stays a variable: never printed).
export function curl(path, params) {
  const auth = getKey() ? ` -H "Authorization: Bearer $CLOUDTALLY_KEY"` : "";
  return `curl${auth} '${apiUrl(path, params)}'`;
}
