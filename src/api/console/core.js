// The console's plumbing: the token, API calls, problem display, and a DOM builder that only
// ever sets text (never innerHTML), so no value from the API can become markup or script.

const TOKEN_KEY = "encours.console.token";

/** The bearer token, kept in this tab's sessionStorage only: gone when the tab closes. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The claims of a JWT, decoded (not verified: the server does that on every call). */
export function claims(jwt) {
  const parts = (jwt || "").trim().split(".");
  if (parts.length !== 3) throw new Error("a JWT has three dot-separated parts");
  const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  const value = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof value !== "object" || value === null) throw new Error("the claims are not a JSON object");
  return value;
}

export function scopes(jwt) {
  try {
    const scope = claims(jwt).scope;
    return typeof scope === "string" ? scope.split(" ").filter(Boolean) : [];
  } catch {
    return [];
  }
}

/** An API problem (RFC 9457), or a network failure shaped like one. */
export class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Called on a 401: set by the app to send the user back to the token screen. */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function send(path, options = {}) {
  const headers = { Accept: options.accept || "application/json" };
  const current = token();
  if (current) headers.Authorization = `Bearer ${current}`;
  let body;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let res;
  try {
    res = await fetch(path, {
      method: options.method || "GET",
      headers,
      body,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new Problem(0, { title: "The service cannot be reached", detail: String(e.message || e) });
  }
  if (res.ok) return res;
  let problem;
  try {
    problem = await res.json();
  } catch {
    problem = { title: `HTTP ${res.status}`, detail: res.statusText || "no details given" };
  }
  const error = new Problem(res.status, problem);
  if (res.status === 401) onUnauthorized(error);
  throw error;
}

/** Calls the API and returns its JSON; any error is thrown as a `Problem`. */
export async function api(path, options) {
  const res = await send(path, options);
  return res.status === 204 ? null : res.json();
}

/** Fetches with the token and hands the response to the browser as a file download. */
export async function download(path, filename) {
  const res = await send(path, { accept: "*/*" });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob.size;
}

/** `?a=1&b=2` from the non-empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * Builds an element. `attrs.text` sets textContent, `attrs.class` the class, `on*` functions
 * become listeners, anything else an attribute. Children are nodes or strings (as text).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "class") node.className = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Renders a problem: title, status, detail, code, and each field error. */
export function problemBox(error) {
  const body = error instanceof Problem ? error.body : { title: "Unexpected error", detail: String(error) };
  const status = error instanceof Problem && error.status ? ` (${error.status})` : "";
  const fields = Array.isArray(body.errors) ? body.errors : [];
  return el(
    "div",
    { class: "problem", role: "alert" },
    el("strong", { text: `${body.title || "Error"}${status}` }),
    body.code ? el("code", { class: "code", text: body.code }) : null,
    body.detail ? el("p", { text: body.detail }) : null,
    fields.length
      ? el("ul", {}, fields.map((f) => el("li", {}, el("code", { text: f.field }), ": ", f.message)))
      : null,
  );
}

/** A confirmation to show once the next view is on screen (after a navigation). */
let pending = null;
export function flashNext(content) {
  pending = content;
}

/** The banner above the view: problems and confirmations; `null` clears it (or shows what
 * `flashNext` left). */
export function flash(content, kind = "error") {
  const area = document.getElementById("flash");
  area.replaceChildren();
  if (!content && pending) {
    [content, kind, pending] = [pending, "ok", null];
  }
  if (!content) return;
  area.append(kind === "error" ? problemBox(content) : el("div", { class: `note ${kind}`, role: "status" }, content));
}

// ---- formatting ----

/** A decimal string with thousands separators, digits untouched (no float rounding). */
export function amount(value, currency) {
  if (value === undefined || value === null) return "—";
  const text = String(value);
  const negative = text.startsWith("-");
  const [int, frac] = text.replace(/^-/, "").split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "−" : ""}${grouped}${frac !== undefined ? `.${frac}` : ""}${currency ? ` ${currency}` : ""}`;
}

/** RFC 3339 shown as `YYYY-MM-DD HH:MM:SS UTC`: auditors compare times across offices. */
export function when(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function outcomeBadge(outcome) {
  return el("span", { class: `badge outcome-${outcome}`, text: outcome || "—" });
}

export function bandBadge(band, score) {
  if (!band && (score === null || score === undefined)) return el("span", { class: "muted", text: "not scored" });
  return el("span", { class: "nowrap" }, el("span", { class: `badge band-${band}`, text: band || "?" }), ` ${score ?? ""}`);
}

export function mono(value, title) {
  return el("code", { class: "mono", title, text: value ?? "—" });
}

/** A hash shown short, the whole value in its tooltip and selectable. */
export function hash(value) {
  return value ? mono(`${value.slice(0, 12)}…`, value) : mono("—");
}

/** A table; `columns` are `[heading, row => cell]`. */
export function table(columns, rows, empty = "Nothing to show.") {
  if (!rows.length) return el("p", { class: "empty", text: empty });
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", { text: h })))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(r)))))),
  );
}

/** Key/value pairs as a definition grid. */
export function facts(pairs) {
  return el(
    "dl",
    { class: "facts" },
    pairs.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", {}, v ?? "—"))),
  );
}

/** Any JSON object flattened to `a.b.c → value` rows, for snapshots of unknown shape. */
export function flatTable(value, empty = "Empty.") {
  const rows = [];
  const walk = (v, path) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    } else if (Array.isArray(v) && v.length && v.every((x) => x !== null && typeof x === "object")) {
      v.forEach((x, i) => walk(x, `${path}[${i}]`));
    } else {
      rows.push([path, v]);
    }
  };
  walk(value, "");
  return table(
    [
      ["Field", ([k]) => mono(k)],
      ["Value", ([, v]) => scalar(v)],
    ],
    rows,
    empty,
  );
}

export function scalar(v) {
  if (v === null || v === undefined) return el("span", { class: "muted", text: "null" });
  if (typeof v === "object") return mono(JSON.stringify(v));
  return String(v);
}

/** The raw JSON, collapsed. */
export function rawJson(label, value) {
  return el(
    "details",
    { class: "raw" },
    el("summary", { text: label }),
    el("pre", { text: JSON.stringify(value, null, 2) }),
  );
}

export function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), ...children);
}

/** A button that shows its work: disabled while `action` runs, a problem shown if it fails. */
export function actionButton(label, action, slot) {
  const button = el("button", { type: "button", text: label });
  button.addEventListener("click", async () => {
    button.disabled = true;
    slot.replaceChildren(el("span", { class: "muted", text: "Working…" }));
    try {
      await action();
    } catch (e) {
      slot.replaceChildren(problemBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** `YYYY-MM-DD` from a date input as the RFC 3339 start of that UTC day; `nextDay` for an end. */
export function dayStart(date, nextDay = false) {
  if (!date) return "";
  const d = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return "";
  if (nextDay) d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().replace(".000Z", "Z");
}

export function link(href, text) {
  return el("a", { href, text });
}

export function decisionLink(id, text) {
  return link(`#/decision/${encodeURIComponent(id)}`, text || `${id.slice(0, 8)}…`);
}

export function clientLink(id) {
  return id ? link(`#/client/${encodeURIComponent(id)}`, id) : "—";
}
