// Pieces shared by the live call, review, ticket and admin views.
import { h, sevBadge, fmtClock, fmtDate, fmtNum, enumLabel, activate, clear, emptyState } from "./util.js";
import { t } from "./i18n.js";

// Annotation chip: task + label, score in the tooltip.
export function tagChip(ann) {
  const task = String(ann.task || "");
  const score = typeof ann.score === "number" ? ann.score.toFixed(2) : "";
  return h("span", {
    class: `tag tag-${task.replace(/[^a-z0-9_-]/gi, "")}`,
    testid: "tag",
    dataset: { task, label: ann.label },
    title: [task, ann.label, score, ann.model].filter(Boolean).join(" · "),
  }, h("span", { class: "tag-task", ...enumLabel("task", task) }), h("span", { class: "tag-sep", text: ": " }), h("span", { class: "tag-label", text: ann.label ?? "" }));
}

// One alert or finding as a list item. `onPick(segmentIds)` jumps to its evidence.
export function eventItem(ev, onPick) {
  const isFinding = ev.type === "finding" || (Array.isArray(ev.evidence) && ev.rule_id && ev.type !== "alert");
  const ids = isFinding ? (ev.evidence || []).map((e) => String(e.segment_id)) : ((ev.data && ev.data.segment_ids) || []).map(String);
  const li = h("li", {
    class: `ev-item ${isFinding ? "finding" : "alert"} sev-${String(ev.severity || "low").toLowerCase()}`,
    testid: isFinding ? "finding" : "alert",
    dataset: { severity: ev.severity, ruleId: ev.rule_id || (ev.data && ev.data.rule_id), segmentIds: ids.join(" ") },
  });
  const head = h("div", { class: "ev-head" },
    sevBadge(ev.severity),
    h("span", { class: "ev-kind", i18n: isFinding ? "ev.finding" : "ev.alert" }),
    typeof ev.at_s === "number" ? h("span", { class: "ev-time mono", text: fmtClock(ev.at_s) }) : null,
    ev.rule_id || (ev.data && ev.data.rule_id) ? h("code", { class: "ev-rule", text: ev.rule_id || ev.data.rule_id }) : null,
  );
  li.append(head, h("div", { class: "ev-msg", text: ev.message || "" }));
  if (isFinding && ev.evidence && ev.evidence.length) {
    const ul = h("ul", { class: "ev-evidence" });
    for (const e of ev.evidence) {
      ul.append(h("li", {}, h("span", { class: "mono", text: `${fmtClock(e.start_s)}–${fmtClock(e.end_s)} ` }), h("q", { text: e.text || "" })));
    }
    li.append(ul);
  }
  if (onPick && ids.length) {
    li.classList.add("clickable");
    li.setAttribute("aria-label", `${ev.message || ""} — ${t("ev.jump")}`);
    activate(li, () => onPick(ids));
  }
  return li;
}

// Scorecard: score/total when the server gives them, else the weighted pass share.
export function scorecardBody(card) {
  const items = Array.isArray(card.items) ? card.items : [];
  let score = typeof card.score === "number" ? card.score : null;
  if (score == null && items.length) {
    const total = items.reduce((a, i) => a + (Number(i.weight) || 0), 0);
    const got = items.reduce((a, i) => a + (i.passed ? Number(i.weight) || 0 : 0), 0);
    score = total > 0 ? (100 * got) / total : null;
  }
  const outOf = typeof card.total === "number" ? card.total : 100;
  const criticalFail = items.some((i) => i.critical && !i.passed);
  const passed = typeof card.passed === "boolean" ? card.passed : null;
  const summary = h("div", { class: "score-summary" },
    h("span", { class: "score-big", text: score == null ? "—" : `${fmtNum(score, 1)} / ${outOf}` }),
    passed == null ? null : h("span", { class: `badge ${passed ? "ok" : "bad"}`, i18n: passed ? "score.pass" : "score.fail" }),
    typeof card.pass_mark === "number" ? h("span", { class: "muted", i18n: ["score.passmark", { n: card.pass_mark }] }) : null,
    criticalFail ? h("span", { class: "badge bad", i18n: "score.critical_failed" }) : null,
  );
  const tbody = h("tbody");
  for (const it of items) {
    tbody.append(h("tr", { class: it.passed ? "pass" : "fail", dataset: { itemId: it.item_id } },
      h("td", { class: "result" }, h("span", { class: `badge ${it.passed ? "ok" : "bad"}`, i18n: it.passed ? "score.item_pass" : "score.item_fail" })),
      h("td", { text: it.label || it.item_id || "" }),
      h("td", {}, it.critical ? h("span", { class: "badge crit", i18n: "score.critical" }) : null),
      h("td", { class: "num", text: it.weight ?? "" }),
    ));
  }
  const table = h("table", { class: "grid compact" },
    h("thead", {}, h("tr", {}, h("th", { i18n: "score.col.result" }), h("th", { i18n: "score.col.item" }), h("th", { i18n: "score.col.critical" }), h("th", { class: "num", i18n: "score.col.weight" }))),
    tbody);
  return [summary, items.length ? table : emptyState("score.noitems")];
}

function answerText(a) {
  if (a == null) return { i18n: "forms.unanswered" };
  if (typeof a === "boolean") return { i18n: a ? "answer.yes" : "answer.no" };
  if (typeof a === "object") return { text: JSON.stringify(a) };
  return enumLabel("answer", String(a));
}

// Evaluation forms are rendered generically: question text, answer, evidence quotes, rationale.
export function formsBody(data) {
  const forms = Array.isArray(data) ? data : (data && data.forms) || [];
  if (!forms.length) return [emptyState("forms.none")];
  return forms.map((f) => {
    const qs = f.questions || f.answers || [];
    const ul = h("ul", { class: "form-qs" });
    for (const q of qs) {
      const evid = Array.isArray(q.evidence) ? q.evidence : q.evidence ? [q.evidence] : [];
      ul.append(h("li", { class: "form-q", dataset: { questionId: q.question_id || q.id } },
        h("div", { class: "q-text", text: q.text || q.label || q.question || q.question_id || q.id || "" }),
        h("div", { class: "q-answer" }, h("span", { class: "muted", i18n: "forms.answer" }), " ",
          h("strong", { class: `answer answer-${String(q.answer)}`, ...answerText(q.answer) }),
          typeof q.time_s === "number" ? h("span", { class: "mono muted", text: ` @ ${fmtClock(q.time_s)}` }) : null,
          q.critical ? h("span", { class: "badge crit", i18n: "score.critical" }) : null),
        evid.map((e) => h("blockquote", { class: "q-evidence", text: typeof e === "string" ? e : e.text || e.quote || JSON.stringify(e) })),
        q.rationale || q.reason ? h("div", { class: "q-why muted", text: q.rationale || q.reason }) : null,
      ));
    }
    const unanswered = Array.isArray(f.unanswered) && f.unanswered.length
      ? h("p", { class: "muted" }, h("span", { i18n: "forms.unanswered_list" }), " ", f.unanswered.join(", ")) : null;
    return h("section", { class: "form", dataset: { formId: f.form_id || f.id } },
      h("h3", { text: `${f.title || f.form_id || ""}${f.version ? ` (v${f.version})` : ""}` }),
      h("div", { class: "score-summary" },
        typeof f.score === "number" ? h("span", { class: "score-big", text: `${fmtNum(f.score, 1)} / 100` }) : null,
        typeof f.passed === "boolean" ? h("span", { class: `badge ${f.passed ? "ok" : "bad"}`, i18n: f.passed ? "score.pass" : "score.fail" }) : null),
      ul, unanswered);
  });
}

// Audit log table with the chain verification result; loads itself into `box`.
export async function loadAuditLog(ctx, box) {
  clear(box).append(h("p", { class: "loading", i18n: "common.loading" }));
  let data;
  try {
    data = await ctx.get("/v1/audit?limit=100");
  } catch (e) {
    clear(box).append(h("p", { class: "view-error", text: e && e.message }));
    throw e;
  }
  const recs = (data && data.records) || [];
  const tbody = h("tbody");
  for (const r of recs) {
    const payload = r.payload == null ? "" : typeof r.payload === "string" ? r.payload : JSON.stringify(r.payload);
    tbody.append(h("tr", { dataset: { seq: r.seq } },
      h("td", { class: "num mono", text: r.seq ?? "" }),
      h("td", { class: "nowrap", text: fmtDate(r.timestamp) }),
      h("td", { text: r.actor ?? "" }),
      h("td", {}, h("code", { text: r.action ?? "" })),
      h("td", { class: "payload" }, h("code", { title: payload, text: payload.length > 160 ? `${payload.slice(0, 160)}…` : payload })),
    ));
  }
  clear(box).append(
    h("p", {}, h("span", { class: `badge ${data && data.verified ? "ok" : "bad"}`, testid: "audit-verified", i18n: data && data.verified ? "audit.verified" : "audit.broken" })),
    recs.length ? h("table", { class: "grid compact" },
      h("thead", {}, h("tr", {}, ...["audit.seq", "audit.time", "audit.actor", "audit.action", "audit.payload"].map((k) => h("th", { i18n: k })))),
      tbody) : emptyState("audit.empty"),
  );
}

// Minutes: summary sentences and action items of the latest `minutes` event.
export function minutesBody(m) {
  const min = (m && m.minutes) || m || {};
  const out = [];
  const summary = min.summary || [];
  if (summary.length) {
    out.push(h("h3", { i18n: "minutes.summary" }), h("ul", { class: "minutes" },
      summary.map((s) => h("li", {}, h("span", { class: "mono muted", text: `${fmtClock(s.start_s)} ` }), s.speaker ? h("strong", { text: `${s.speaker}: ` }) : null, s.text || ""))));
  }
  const actions = min.action_items || [];
  if (actions.length) {
    out.push(h("h3", { i18n: "minutes.actions" }), h("ul", { class: "minutes" },
      actions.map((a) => h("li", {}, h("span", { text: a.what || "" }), a.owner ? h("span", { class: "muted", text: ` — ${a.owner}` }) : null))));
  }
  return out.length ? out : [emptyState("minutes.none")];
}
