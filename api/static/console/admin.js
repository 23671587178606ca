// Policies (read-only) and the admin page: users, API keys, audit log.
import { t } from "./i18n.js";
import { h, clear, enc, fmtDate, sevBadge, showError, hideError, field, emptyState, AuthError, STALE } from "./util.js";
import { loadAuditLog } from "./widgets.js";

export async function renderPolicies(root, ctx) {
  root.append(h("div", { class: "view-head" }, h("h1", { i18n: "policies.title" })));
  const data = await ctx.get("/v1/policies");
  const packs = (data && data.packs) || [];
  if (!packs.length) root.append(emptyState("policies.empty", "policies-empty"));
  for (const p of packs) {
    const rules = p.rules || [];
    root.append(h("section", { class: "panel pack", testid: "pack", dataset: { packId: p.id } },
      h("h2", {}, h("span", { text: p.name || p.id }), " ", h("code", { class: "muted", text: `${p.id}@${p.version ?? ""}` })),
      p.description && p.description !== p.name ? h("p", { text: p.description }) : null,
      h("dl", { class: "meta" },
        h("dt", { i18n: "policies.language" }), h("dd", { text: p.language || "—" }),
        h("dt", { i18n: "policies.source" }), h("dd", { text: p.source || "—" }),
        h("dt", { i18n: "policies.sha256" }), h("dd", {}, h("code", { class: "hash", title: p.sha256 || "", text: p.sha256 ? `${String(p.sha256).slice(0, 16)}…` : "—" }))),
      h("table", { class: "grid compact" },
        h("thead", {}, h("tr", {}, ["policies.rule", "policies.severity", "policies.kind", "policies.description", "policies.rule_source"].map((k) => h("th", { scope: "col", i18n: k })))),
        h("tbody", {}, rules.map((r) => h("tr", { testid: "rule", dataset: { ruleId: r.id } },
          h("td", {}, h("code", { text: r.id })), h("td", {}, sevBadge(r.severity)), h("td", { text: r.kind || "" }),
          h("td", { text: r.description || "" }), h("td", { class: "small", text: r.source || "" })))))));
  }
}

const ROLES = ["admin", "supervisor", "auditor", "agent"];
const SCOPES = ["ingest", "read", "tickets", "audit", "admin"];

export async function renderAdmin(root, ctx) {
  const usersBox = h("div", {});
  const keysBox = h("div", {});
  const auditBox = h("div", {});
  root.append(h("div", { class: "view-head" }, h("h1", { i18n: "admin.title" })),
    h("section", { class: "panel", testid: "users" }, h("h2", { i18n: "admin.users" }), userForm(), usersBox),
    h("section", { class: "panel", testid: "keys" }, h("h2", { i18n: "admin.keys" }), keyForm(), keysBox),
    h("section", { class: "panel", testid: "audit-log" }, h("h2", { i18n: "audit.title" }), auditBox));

  async function guarded(btn, fn) {
    if (btn) btn.disabled = true;
    try {
      await fn();
      hideError();
    } catch (e) {
      if (e !== STALE && !(e instanceof AuthError)) showError(e);
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  // ---- users ----
  async function loadUsers() {
    const users = await ctx.get("/v1/users");
    const list = Array.isArray(users) ? users : (users && users.users) || [];
    const tbody = h("tbody", {}, list.map((u) => {
      const dis = h("button", { type: "button", class: "btn small danger", testid: "user-disable", disabled: !!u.disabled, i18n: "admin.disable" });
      dis.setAttribute("aria-label", `${t("admin.disable")} ${u.username}`);
      dis.addEventListener("click", () => {
        if (!window.confirm(t("admin.disable_confirm", { user: u.username }))) return;
        guarded(dis, async () => {
          await ctx.api("POST", `/v1/users/${enc(u.username)}/disable`);
          await loadUsers();
        });
      });
      return h("tr", { testid: "user-row", dataset: { username: u.username } },
        h("td", { text: u.username }), h("td", { i18n: `role.${u.role}` }), h("td", { text: u.agent_id || "—" }),
        h("td", {}, u.disabled ? h("span", { class: "badge bad", i18n: "admin.disabled" }) : h("span", { class: "badge ok", i18n: "admin.active" })),
        h("td", { class: "nowrap", text: fmtDate(u.created_at) }), h("td", {}, dis));
    }));
    clear(usersBox).append(h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, ["admin.username", "admin.role", "admin.agent_id", "admin.state", "admin.created", ""].map((k) => h("th", k ? { scope: "col", i18n: k } : {})))),
      tbody));
  }

  function userForm() {
    const name = h("input", { id: "user-username", type: "text", required: true, autocomplete: "off" });
    const role = h("select", { id: "user-role", value: "supervisor" }, ROLES.map((r) => h("option", { value: r, i18n: `role.${r}` })));
    const agent = h("input", { id: "user-agent-id", type: "text", autocomplete: "off" });
    const pw = h("input", { id: "user-password", type: "password", required: true, minlength: 10, autocomplete: "new-password" });
    const btn = h("button", { id: "user-create", type: "submit", class: "btn primary", i18n: "admin.create_user" });
    const form = h("form", { class: "filters" }, field("admin.username", name), field("admin.role", role), field("admin.agent_id", agent),
      field("admin.password", pw), h("div", { class: "field actions" }, btn));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (pw.value.length < 10) return showError(t("admin.password_short"));
      const body = { username: name.value.trim(), role: role.value, password: pw.value };
      if (agent.value.trim()) body.agent_id = agent.value.trim();
      guarded(btn, async () => {
        await ctx.api("POST", "/v1/users", body);
        name.value = pw.value = agent.value = "";
        await loadUsers();
      });
    });
    return form;
  }

  // ---- API keys ----
  const newKey = h("div", { class: "new-key", testid: "new-key", role: "status", hidden: true });

  async function loadKeys() {
    const keys = await ctx.get("/v1/keys");
    const list = Array.isArray(keys) ? keys : (keys && keys.keys) || [];
    const tbody = h("tbody", {}, list.map((k) => {
      const rev = h("button", { type: "button", class: "btn small danger", testid: "key-revoke", disabled: !!k.revoked, i18n: "admin.revoke" });
      rev.setAttribute("aria-label", `${t("admin.revoke")} ${k.name || k.id}`);
      rev.addEventListener("click", () => {
        if (!window.confirm(t("admin.revoke_confirm", { name: k.name || k.id }))) return;
        guarded(rev, async () => {
          await ctx.api("DELETE", `/v1/keys/${enc(k.id)}`);
          await loadKeys();
        });
      });
      return h("tr", { testid: "key-row", dataset: { keyId: k.id } },
        h("td", {}, h("code", { text: k.id })), h("td", { text: k.name || "" }), h("td", { text: (k.scopes || []).join(", ") }),
        h("td", { class: "nowrap", text: fmtDate(k.created_at) }),
        h("td", {}, k.revoked ? h("span", { class: "badge bad", i18n: "admin.revoked" }) : h("span", { class: "badge ok", i18n: "admin.active" })),
        h("td", {}, rev));
    }));
    clear(keysBox).append(newKey, list.length ? h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, ["admin.key_id", "admin.key_name", "admin.scopes", "admin.created", "admin.state", ""].map((k) => h("th", k ? { scope: "col", i18n: k } : {})))),
      tbody) : emptyState("admin.no_keys"));
  }

  function showNewKey(res) {
    const code = h("code", { class: "secret", testid: "new-key-value", text: res.key || "" });
    const copy = h("button", { type: "button", class: "btn small", i18n: "admin.copy" });
    copy.addEventListener("click", () => {
      const sel = window.getSelection();
      const range = document.createRange();
      range.selectNodeContents(code);
      sel.removeAllRanges();
      sel.addRange(range); // selected even where the clipboard API is refused (plain http)
      if (navigator.clipboard) navigator.clipboard.writeText(res.key || "").catch(() => {});
    });
    const dismiss = h("button", { type: "button", class: "btn small", i18n: "common.dismiss" });
    dismiss.addEventListener("click", () => { clear(newKey).hidden = true; });
    clear(newKey).append(h("p", { class: "warn-text", i18n: "admin.key_once" }), h("div", { class: "secret-row" }, code, copy, dismiss));
    newKey.hidden = false;
  }

  function keyForm() {
    const name = h("input", { id: "key-name", type: "text", required: true, autocomplete: "off" });
    const boxes = SCOPES.map((s) => h("input", { type: "checkbox", id: `key-scope-${s}`, value: s, checked: s === "ingest" || s === "read" }));
    const btn = h("button", { id: "key-create", type: "submit", class: "btn primary", i18n: "admin.create_key" });
    const scopes = h("fieldset", { class: "scopes" }, h("legend", { i18n: "admin.scopes" }),
      boxes.map((b) => h("label", { class: "check", for: b.id }, b, ` ${b.value}`)));
    const form = h("form", { class: "filters" }, field("admin.key_name", name), scopes, h("div", { class: "field actions" }, btn));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const picked = boxes.filter((b) => b.checked).map((b) => b.value);
      if (!picked.length) return showError(t("admin.need_scope"));
      guarded(btn, async () => {
        const res = await ctx.api("POST", "/v1/keys", { name: name.value.trim(), scopes: picked });
        name.value = "";
        await loadKeys();
        showNewKey(res);
      });
    });
    return form;
  }

  // Each section loads on its own; one failing says so in place and leaves the others working.
  const failIn = (box) => (e) => {
    if (e === STALE || e instanceof AuthError) return;
    showError(e);
    if (box !== auditBox) clear(box).append(h("p", { class: "view-error", text: e && e.message }));
  };
  await Promise.all([loadUsers().catch(failIn(usersBox)), loadKeys().catch(failIn(keysBox)), loadAuditLog(ctx, auditBox).catch(failIn(auditBox))]);
}
