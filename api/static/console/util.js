// Shared helpers: DOM building (never innerHTML), API calls, formatting, the error banner.
import { t, hasKey, getLang, applyOne } from "./i18n.js";

// Session state shared by all views. `me` is the /v1/auth/me body; null while signed out.
export const app = { me: null, onUnauthorized: () => {} };

export class AuthError extends Error {}
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}
// Thrown when a view was left while its request was in flight; the router ignores it.
export const STALE = Symbol("stale");

// Build an element. Children are appended before props so that `value` on a <select> sticks.
// Strings become text nodes: server data never reaches the HTML parser.
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  append(el, kids);
  setProps(el, props);
  return el;
}

export function svg(tag, attrs, ...kids) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null) continue;
    if (k === "text") el.textContent = v;
    else el.setAttribute(k, String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
}

const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "open", "required", "tabIndex"]);

function setProps(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = Array.isArray(v) ? v.filter(Boolean).join(" ") : v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "i18n") setI18n(el, v);
    else if (k === "i18nAttr") for (const [a, key] of Object.entries(v)) el.setAttribute(`data-i18n-${a}`, key);
    else if (k === "testid") el.setAttribute("data-testid", v);
    else if (k === "dataset") for (const [dk, dv] of Object.entries(v)) { if (dv != null) el.dataset[dk] = String(dv); }
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  if (props && props.i18nAttr) applyOne(el);
}

// Mark an element as translated: key, or [key, vars]. applyI18n re-renders it when the language changes.
export function setI18n(el, spec) {
  const [key, vars] = Array.isArray(spec) ? spec : [spec, null];
  el.setAttribute("data-i18n", key);
  if (vars) el.setAttribute("data-i18n-vars", JSON.stringify(vars));
  else el.removeAttribute("data-i18n-vars");
  el.textContent = t(key, vars);
  return el;
}

// Props for a label that is a server-given enum value (severity, status, state): translated if known.
export function enumLabel(prefix, value) {
  if (value == null || value === "") return { text: "—" };
  const key = `${prefix}.${value}`;
  return hasKey(key) ? { i18n: key } : { text: String(value) };
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// ---- API ----------------------------------------------------------------------------------------------

export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = (app.me && app.me.csrf_token) || csrfCookie();
    if (body !== undefined) opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, "network", t("err.network"));
  }
  if (res.status === 401 && path !== "/v1/auth/login") {
    app.onUnauthorized();
    throw new AuthError("unauthorized");
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const d = data && data.detail;
    const msg = (d && typeof d === "object" && d.message) || (typeof d === "string" && d) || `HTTP ${res.status}`;
    throw new ApiError(res.status, (d && d.code) || "", msg);
  }
  return data;
}

// Fallback only: the token normally comes from /me or the login answer.
function csrfCookie() {
  const m = document.cookie.match(/(?:^|;\s*)harken_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

// Query string from an object, leaving out empty values (FastAPI rejects "" for numbers and dates).
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && String(v).trim() !== "") p.set(k, String(v).trim());
  const s = p.toString();
  return s ? `?${s}` : "";
}

export const enc = encodeURIComponent;

// ---- banner -------------------------------------------------------------------------------------------

let bannerTimer = 0;
export function showError(err) {
  if (err instanceof AuthError || err === STALE) return;
  const msg = err instanceof Error ? err.message : String(err);
  const banner = document.getElementById("banner");
  const text = document.getElementById("banner-text");
  if (!banner || !text) return;
  text.textContent = msg;
  banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(hideError, 10000);
}

export function hideError() {
  const banner = document.getElementById("banner");
  if (banner) banner.hidden = true;
}

// ---- formatting ---------------------------------------------------------------------------------------

export function locale() {
  return getLang() === "zh" ? "zh-CN" : "en-GB";
}

// Unix seconds or ISO string -> local "YYYY-MM-DD HH:MM:SS" (unambiguous in both languages).
export function fmtDate(v) {
  if (v == null || v === "") return "—";
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtTime(d = new Date()) {
  return d.toLocaleTimeString(locale(), { hour12: false });
}

export function fmtClock(s) {
  if (typeof s !== "number" || !Number.isFinite(s) || s < 0) s = 0;
  const total = Math.floor(s);
  const hh = Math.floor(total / 3600);
  const mm = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const ss = String(total % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function fmtNum(v, digits = 2) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
}

export function sevBadge(sev) {
  const s = String(sev || "low").toLowerCase();
  return h("span", { class: `badge sev sev-${s}`, ...enumLabel("sev", s) });
}

// Valence -1..1 -> CSS class used for the wall state and the call header.
export function valenceClass(v) {
  if (typeof v !== "number") return "val-none";
  if (v >= 0.2) return "val-pos";
  if (v > -0.2) return "val-neu";
  if (v > -0.5) return "val-neg";
  return "val-bad";
}

// Stable colour index per speaker/channel label, in order of first appearance (CSS has 6 palette classes).
export function colourIndexer() {
  const seen = new Map();
  return (label) => {
    if (!seen.has(label)) seen.set(label, seen.size % 6);
    return seen.get(label);
  };
}

export function speakerOf(seg, channelNames) {
  if (seg.speaker) return String(seg.speaker);
  const names = channelNames || [];
  if (typeof seg.channel === "number" && names[seg.channel]) return String(names[seg.channel]);
  return `ch${seg.channel ?? "?"}`;
}

export function hasRole(...roles) {
  return !!app.me && roles.includes(app.me.role);
}

// Make a non-button element act like one for keyboard users (rows, list items).
export function activate(el, fn) {
  el.tabIndex = 0;
  el.addEventListener("click", (e) => {
    if (e.target.closest("a, button, input, select, textarea, audio")) return; // their own action wins
    fn(e);
  });
  el.addEventListener("keydown", (e) => {
    if (e.target !== el) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      fn(e);
    }
  });
}

// A labelled form field: <label for=id>text</label><input id=id>.
export function field(labelKey, control) {
  return h("div", { class: "field" }, h("label", { for: control.id, i18n: labelKey }), control);
}

export function emptyState(key, testid) {
  return h("p", { class: "empty", i18n: key, testid });
}

// Ticket status is shown as the server gives it (the contract: "show as given"), coloured by class.
export function statusBadge(status, testid) {
  const s = String(status ?? "");
  return h("span", { class: `badge status status-${s.toLowerCase().replace(/[^a-z0-9_-]/g, "")}`, testid, text: s || "—" });
}
