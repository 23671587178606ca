// harken console entry point: auth, layout, hash router, language toggle.
import { t, getLang, setLang, applyI18n } from "./i18n.js";
import { app, api, h, clear, showError, hideError, AuthError, ApiError, STALE } from "./util.js";
import { renderWall, renderCall } from "./live.js";
import { renderTickets, renderTicket } from "./tickets.js";
import { renderReviewSearch, renderReviewSession } from "./review.js";
import { renderPolicies, renderAdmin } from "./admin.js";

const ALL = ["admin", "supervisor", "auditor", "agent"];
// Who may open each view. Nav visibility follows the contract; auditors may also open a ticket read-only
// (it is linked from review), so the ticket routes admit them although the Tickets nav entry is hidden.
const NAV = {
  wall: ["admin", "supervisor"],
  tickets: ["admin", "supervisor"],
  review: ALL,
  policies: ALL,
  admin: ["admin"],
};
const ROUTES = [
  { re: /^#\/wall$/, nav: "wall", roles: NAV.wall, render: renderWall },
  { re: /^#\/call\/([^/?]+)$/, nav: "wall", roles: NAV.wall, render: renderCall },
  { re: /^#\/tickets$/, nav: "tickets", roles: ["admin", "supervisor", "auditor"], render: renderTickets },
  { re: /^#\/ticket\/([^/?]+)$/, nav: "tickets", roles: ["admin", "supervisor", "auditor"], render: renderTicket },
  { re: /^#\/review$/, nav: "review", roles: NAV.review, render: renderReviewSearch },
  { re: /^#\/review\/([^/?]+)$/, nav: "review", roles: NAV.review, render: renderReviewSession },
  { re: /^#\/policies$/, nav: "policies", roles: NAV.policies, render: renderPolicies },
  { re: /^#\/admin$/, nav: "admin", roles: NAV.admin, render: renderAdmin },
];

const $ = (id) => document.getElementById(id);

function defaultRoute() {
  const role = app.me && app.me.role;
  return role === "admin" || role === "supervisor" ? "#/wall" : "#/review";
}

// ---- view lifecycle -----------------------------------------------------------------------------------

let current = null;

function teardown() {
  if (!current) return;
  current.alive = false;
  for (const fn of current.cleanups.splice(0)) {
    try {
      fn();
    } catch (e) {
      /* a failing cleanup must not block the next view */
    }
  }
  current = null;
}

function makeCtx() {
  const ctx = {
    alive: true,
    cleanups: [],
    onCleanup(fn) {
      ctx.cleanups.push(fn);
    },
    // GET/POST that refuse to deliver into a view the user has already left.
    async api(method, path, body) {
      const r = await api(method, path, body);
      if (!ctx.alive) throw STALE;
      return r;
    },
    get(path) {
      return ctx.api("GET", path);
    },
    interval(fn, ms) {
      const id = setInterval(fn, ms);
      ctx.onCleanup(() => clearInterval(id));
      return id;
    },
    timeout(fn, ms) {
      const id = setTimeout(fn, ms);
      ctx.onCleanup(() => clearTimeout(id));
      return id;
    },
  };
  return ctx;
}

async function route() {
  teardown();
  if (!app.me) return;
  let hash = location.hash;
  if (!hash || hash === "#" || hash === "#/") {
    location.replace(defaultRoute());
    return; // hashchange re-enters
  }
  const view = $("view");
  const ctx = (current = makeCtx());
  const root = h("div", { class: "view-root" });
  clear(view).append(root);
  const match = ROUTES.map((r) => [r, hash.match(r.re)]).find(([, m]) => m);
  markNav(match ? match[0].nav : null);
  if (!match) {
    root.append(h("h1", { i18n: "err.notfound.title" }), h("p", {}, h("a", { href: defaultRoute(), i18n: "nav.home" })));
    return;
  }
  const [r, m] = match;
  if (!r.roles.includes(app.me.role)) {
    root.append(h("h1", { i18n: "err.forbidden.title" }), h("p", { i18n: "err.forbidden.body" }),
      h("p", {}, h("a", { href: defaultRoute(), i18n: "nav.home" })));
    return;
  }
  try {
    await r.render(root, ctx, ...m.slice(1).map(decodeURIComponent));
  } catch (e) {
    if (e === STALE || e instanceof AuthError) return;
    // Never leave a blank page: the view shows what failed, the banner too.
    showError(e);
    if (ctx.alive) root.append(h("p", { class: "view-error", role: "alert", text: e && e.message ? e.message : String(e) }));
  }
}

function markNav(key) {
  for (const a of document.querySelectorAll("#nav a[data-nav]")) {
    if (a.dataset.nav === key) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// ---- auth / layout ------------------------------------------------------------------------------------

function showLogin(message) {
  teardown();
  app.me = null;
  $("app-shell").classList.add("signed-out");
  $("nav").hidden = true;
  $("whoami").textContent = "";
  $("logout").hidden = true;
  clear($("view"));
  $("login").hidden = false;
  const err = $("login-error");
  if (message) err.textContent = message;
  err.hidden = !message;
  $("login-password").value = "";
  $("login-username").focus();
}

function showApp(me) {
  app.me = me;
  $("app-shell").classList.remove("signed-out");
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  for (const a of document.querySelectorAll("#nav a[data-nav]")) a.hidden = !(NAV[a.dataset.nav] || []).includes(me.role);
  const who = $("whoami");
  clear(who).append(
    h("span", { class: "who-user", text: me.username }),
    h("span", { class: "who-sep", text: " · " }),
    h("span", { class: "who-tenant", text: me.tenant }),
    h("span", { class: "who-sep", text: " · " }),
    h("span", { class: `who-role role-${me.role}`, i18n: `role.${me.role}` }),
  );
  const hash = location.hash;
  const r = ROUTES.find((x) => x.re.test(hash));
  if (!r || !r.roles.includes(me.role)) {
    if (location.hash !== defaultRoute()) {
      location.hash = defaultRoute(); // hashchange routes
      return;
    }
  }
  route();
}

app.onUnauthorized = () => {
  // Several requests may fail at once: show the form once, with "expired" only if we were signed in.
  if (app.me) showLogin(t("login.expired"));
  else if ($("login").hidden) showLogin();
};

async function onLogin(e) {
  e.preventDefault();
  const btn = $("login-submit");
  const err = $("login-error");
  err.hidden = true;
  btn.disabled = true;
  try {
    const me = await api("POST", "/v1/auth/login", { username: $("login-username").value.trim(), password: $("login-password").value });
    hideError();
    showApp(me);
  } catch (ex) {
    let msg = ex.message;
    if (ex instanceof ApiError && ex.status === 401) msg = t("login.bad");
    if (ex instanceof ApiError && ex.status === 429) msg = ex.message || t("login.throttled");
    err.textContent = msg;
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
}

async function onLogout() {
  try {
    await api("POST", "/v1/auth/logout");
  } catch (e) {
    if (!(e instanceof AuthError)) showError(e);
  }
  // The next person to sign in starts at their own default page, not at the last one's.
  history.replaceState(null, "", location.pathname + location.search);
  showLogin();
}

async function boot() {
  const view = $("view");
  clear(view).append(h("p", { class: "loading", i18n: "common.loading" }));
  try {
    const me = await api("GET", "/v1/auth/me");
    showApp(me);
  } catch (e) {
    if (e instanceof AuthError) return; // onUnauthorized already showed the form
    if (e instanceof ApiError && e.status === 401) return showLogin();
    showError(e);
    const retry = h("button", { type: "button", class: "btn", i18n: "common.retry", on: { click: boot } });
    clear(view).append(h("div", { class: "view-root" }, h("p", { class: "view-error", role: "alert", text: e.message }), retry));
  }
}

function updateLangButton() {
  const btn = $("lang-toggle");
  // The button names the language it switches to, in that language.
  btn.textContent = getLang() === "zh" ? "English" : "中文";
  btn.setAttribute("aria-label", t("lang.switch"));
}

function init() {
  setLang(getLang());
  applyI18n(document);
  updateLangButton();
  $("lang-toggle").addEventListener("click", () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    applyI18n(document);
    updateLangButton();
  });
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("banner-close").addEventListener("click", hideError);
  $("skip-link").addEventListener("click", () => $("view").focus());
  window.addEventListener("hashchange", () => {
    hideError();
    route();
  });
  // Last-resort net: an unexpected rejection becomes a banner, not a silently dead page.
  window.addEventListener("unhandledrejection", (e) => {
    if (e.reason === STALE || e.reason instanceof AuthError) return e.preventDefault();
    showError(e.reason || t("err.unknown"));
  });
  boot();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
