// Ticket list with filters, and the ticket detail with evidence audio and (role-aware) actions.
import { t } from "./i18n.js";
import {
  h, clear, enc, qs, fmtDate, fmtClock, sevBadge, statusBadge, showError, hideError, hasRole, activate, field, emptyState,
  AuthError, STALE,
} from "./util.js";

// Filters survive a round trip to a ticket and back.
const filters = { status: "", severity: "", rule_id: "", agent: "", assignee: "", date_from: "", date_to: "" };

function select(id, value, options) {
  return h("select", { id, name: id, value }, options.map(([v, key]) => h("option", { value: v, i18n: key })));
}

export async function renderTickets(root, ctx) {
  const f = {
    status: select("f-status", filters.status, [["", "filter.any"], ["open", "status.open"], ["assigned", "status.assigned"], ["closed", "status.closed"]]),
    severity: select("f-severity", filters.severity, [["", "filter.any"], ["critical", "sev.critical"], ["high", "sev.high"], ["medium", "sev.medium"], ["low", "sev.low"]]),
    rule_id: h("input", { id: "f-rule", type: "text", value: filters.rule_id, autocomplete: "off" }),
    agent: h("input", { id: "f-agent", type: "text", value: filters.agent, autocomplete: "off" }),
    assignee: h("input", { id: "f-assignee", type: "text", value: filters.assignee, autocomplete: "off" }),
    date_from: h("input", { id: "f-date-from", type: "date", value: filters.date_from }),
    date_to: h("input", { id: "f-date-to", type: "date", value: filters.date_to }),
  };
  const labels = { status: "tickets.f.status", severity: "tickets.f.severity", rule_id: "tickets.f.rule", agent: "tickets.f.agent",
    assignee: "tickets.f.assignee", date_from: "tickets.f.date_from", date_to: "tickets.f.date_to" };
  const apply = h("button", { id: "f-apply", type: "submit", class: "btn primary", i18n: "filter.apply" });
  const reset = h("button", { type: "button", class: "btn", i18n: "filter.reset" });
  const form = h("form", { class: "filters", role: "search", i18nAttr: { "aria-label": "tickets.filters" } },
    Object.entries(f).map(([k, el]) => field(labels[k], el)), h("div", { class: "field actions" }, apply, reset));
  const count = h("span", { class: "muted" });
  const tbody = h("tbody");
  const table = h("table", { class: "grid", testid: "tickets-table" },
    h("thead", {}, h("tr", {}, ["tickets.col.created", "tickets.col.severity", "tickets.col.title", "tickets.col.rule",
      "tickets.col.agent", "tickets.col.status", "tickets.col.assignee", "tickets.col.session"].map((k) => h("th", { scope: "col", i18n: k })))),
    tbody);
  const empty = emptyState("tickets.empty", "tickets-empty");
  table.hidden = empty.hidden = true; // neither "no results" nor an empty table until the answer is in
  root.append(h("div", { class: "view-head" }, h("h1", { i18n: "tickets.title" }), count), form, table, empty);

  async function load() {
    for (const k of Object.keys(filters)) filters[k] = f[k].value;
    apply.disabled = true;
    try {
      const data = await ctx.get(`/v1/tickets${qs(filters)}`);
      const list = Array.isArray(data) ? data : (data && (data.tickets || data.items)) || [];
      clear(tbody).append(...list.map(row));
      table.hidden = !list.length;
      empty.hidden = !!list.length;
      count.textContent = t("tickets.count", { n: list.length });
      hideError();
    } finally {
      apply.disabled = false;
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load().catch(showError);
  });
  reset.addEventListener("click", () => {
    for (const el of Object.values(f)) el.value = "";
    load().catch(showError);
  });
  await load();
}

function row(tk) {
  const tr = h("tr", { testid: "ticket-row", dataset: { ticketId: tk.id, severity: tk.severity, status: tk.status }, class: `clickable sev-row-${tk.severity}` },
    h("td", { class: "nowrap", text: fmtDate(tk.created_at) }),
    h("td", {}, sevBadge(tk.severity)),
    h("td", {}, h("a", { href: `#/ticket/${enc(tk.id)}`, text: tk.title || tk.id })),
    h("td", {}, h("code", { text: tk.rule_id || "" })),
    h("td", { text: tk.agent || "—" }),
    h("td", {}, statusBadge(tk.status)),
    h("td", { text: tk.assignee || "—" }),
    h("td", {}, tk.session_id ? h("a", { href: `#/review/${enc(tk.session_id)}`, class: "mono", text: String(tk.session_id).slice(0, 8), title: tk.session_id }) : "—"),
  );
  activate(tr, () => { location.hash = `#/ticket/${enc(tk.id)}`; });
  return tr;
}

// ---- detail ----

function audioSrc(sessionId, e) {
  // Exactly the contract's window: one second of context either side.
  const start = Math.max(0, Number(e.start_s) - 1);
  const end = Number(e.end_s) + 1;
  return `/v1/sessions/${enc(sessionId)}/audio?start_s=${start}&end_s=${end}`;
}

export async function renderTicket(root, ctx, id) {
  const box = h("div", { class: "ticket", testid: "ticket-detail", dataset: { ticketId: id } });
  root.append(h("a", { href: "#/tickets", class: "back", i18n: "ticket.back" }), box);
  const tk = await ctx.get(`/v1/tickets/${enc(id)}`);
  render(tk);

  function render(tk) {
    const canAct = hasRole("admin", "supervisor");
    const closed = String(tk.status).toLowerCase() === "closed";
    const finding = tk.finding || {};
    const meta = [
      ["ticket.severity", sevBadge(tk.severity)],
      ["ticket.status", statusBadge(tk.status, "ticket-status")],
      ["ticket.rule", h("code", { text: tk.rule_id || "" })],
      ["ticket.pack", tk.pack || "—"],
      ["ticket.agent", tk.agent || "—"],
      ["ticket.session", tk.session_id ? h("a", { href: `#/review/${enc(tk.session_id)}`, class: "mono", testid: "ticket-session-link", text: tk.session_id }) : "—"],
      ["ticket.assignee", h("span", { testid: "ticket-assignee-value", text: tk.assignee || "—" })],
      ["ticket.created_by", tk.created_by || "—"],
      ["ticket.created", fmtDate(tk.created_at)],
      ["ticket.updated", fmtDate(tk.updated_at)],
    ];
    if (tk.closed_at) meta.push(["ticket.closed_at", fmtDate(tk.closed_at)]);
    if (tk.resolution) meta.push(["ticket.resolution", h("span", { testid: "ticket-resolution-value", text: tk.resolution })]);

    const evidence = Array.isArray(finding.evidence) ? finding.evidence : [];
    const evList = h("ul", { class: "evidence-list", testid: "ticket-evidence" }, evidence.map((e) => h("li", { class: "evidence-item", dataset: { segmentId: e.segment_id } },
      h("div", { class: "muted mono small" }, `${fmtClock(e.start_s)}–${fmtClock(e.end_s)}`, e.channel != null ? h("span", {}, " · ", h("span", { i18n: "ticket.channel" }), ` ${e.channel}`) : null),
      h("p", { class: "evidence-text", testid: "evidence-text", text: e.text || "" }),
      h("audio", { controls: true, preload: "metadata", testid: "evidence-audio", src: audioSrc(tk.session_id, e), i18nAttr: { "aria-label": "ticket.evidence_audio" } }),
    )));

    const comments = Array.isArray(tk.comments) ? tk.comments : [];
    const commentList = h("ul", { class: "comments", testid: "ticket-comments" }, comments.map((c) => h("li", { class: "comment", testid: "comment" },
      h("div", { class: "comment-head" }, h("strong", { text: c.author || "—" }), " ", h("span", { class: "muted small", text: fmtDate(c.at) })),
      h("div", { class: "comment-text", text: c.text || "" }))));

    clear(box).append(
      h("h1", { class: "ticket-title", text: tk.title || tk.id }),
      h("dl", { class: "meta" }, meta.map(([k, v]) => [h("dt", { i18n: k }), h("dd", {}, v)])),
      h("section", { class: "panel" }, h("h2", { i18n: "ticket.finding" }), h("p", { text: finding.message || tk.title || "" })),
      h("section", { class: "panel" }, h("h2", { i18n: "ticket.evidence" }), evidence.length ? evList : emptyState("ticket.no_evidence")),
      h("section", { class: "panel" }, h("h2", { i18n: "ticket.comments" }), commentList, comments.length ? null : emptyState("ticket.no_comments")),
      canAct ? actions(tk, closed) : h("p", { class: "readonly muted", testid: "ticket-readonly", i18n: "ticket.readonly" }),
    );
  }

  // Each action posts, then re-renders from the ticket the server returns.
  async function act(btn, path, body) {
    btn.disabled = true;
    try {
      const tk = await ctx.api("POST", `/v1/tickets/${enc(id)}/${path}`, body);
      render(tk);
      hideError();
    } catch (e) {
      if (e === STALE || e instanceof AuthError) return;
      showError(e);
      if (e.status === 409) ctx.get(`/v1/tickets/${enc(id)}`).then(render).catch(showError); // someone else changed it
    } finally {
      btn.disabled = false;
    }
  }

  function actions(tk, closed) {
    const assignee = h("input", { id: "ticket-assignee", type: "text", value: tk.assignee || "", required: true, autocomplete: "off" });
    const assignBtn = h("button", { id: "ticket-assign", type: "submit", class: "btn", i18n: "ticket.assign" });
    const assignForm = h("form", { class: "inline-form" }, field("ticket.assignee", assignee), assignBtn);
    assignForm.addEventListener("submit", (e) => {
      e.preventDefault();
      if (assignee.value.trim()) act(assignBtn, "assign", { assignee: assignee.value.trim() });
    });

    const comment = h("textarea", { id: "ticket-comment", rows: 3, required: true });
    const commentBtn = h("button", { id: "ticket-comment-add", type: "submit", class: "btn", i18n: "ticket.comment_add" });
    const commentForm = h("form", { class: "stack-form" }, field("ticket.comment", comment), commentBtn);
    commentForm.addEventListener("submit", (e) => {
      e.preventDefault();
      if (comment.value.trim()) act(commentBtn, "comments", { text: comment.value.trim() });
    });

    const parts = [assignForm, commentForm];
    if (!closed) {
      const resolution = h("input", { id: "ticket-resolution", type: "text", required: true, autocomplete: "off" });
      const closeBtn = h("button", { id: "ticket-close", type: "submit", class: "btn danger", i18n: "ticket.close" });
      const closeForm = h("form", { class: "inline-form" }, field("ticket.resolution", resolution), closeBtn);
      closeForm.addEventListener("submit", (e) => {
        e.preventDefault();
        if (resolution.value.trim()) act(closeBtn, "close", { resolution: resolution.value.trim() });
      });
      parts.push(closeForm);
    } else {
      const reopen = h("button", { id: "ticket-reopen", type: "button", class: "btn", i18n: "ticket.reopen" });
      reopen.addEventListener("click", () => act(reopen, "reopen", { reason: "" }));
      parts.push(h("div", { class: "inline-form" }, reopen));
    }
    return h("section", { class: "panel actions-panel", testid: "ticket-actions" }, h("h2", { i18n: "ticket.actions" }), parts);
  }
}
