// Review: search past calls; one call with synchronized audio/transcript, findings, scorecard, forms.
import { t } from "./i18n.js";
import {
  h, clear, enc, qs, fmtDate, fmtClock, fmtNum, showError, hideError, hasRole, activate, field, emptyState, speakerOf,
  colourIndexer, AuthError, STALE,
} from "./util.js";
import { tagChip, eventItem, scorecardBody, formsBody, loadAuditLog } from "./widgets.js";

const criteria = { q: "", agent: "", rule_id: "", date_from: "", date_to: "", min_score: "", max_score: "" };

export async function renderReviewSearch(root, ctx) {
  const f = {
    q: h("input", { id: "search-q", type: "search", value: criteria.q, autocomplete: "off" }),
    agent: h("input", { id: "search-agent", type: "text", value: criteria.agent, autocomplete: "off" }),
    rule_id: h("input", { id: "search-rule", type: "text", value: criteria.rule_id, autocomplete: "off" }),
    date_from: h("input", { id: "search-date-from", type: "date", value: criteria.date_from }),
    date_to: h("input", { id: "search-date-to", type: "date", value: criteria.date_to }),
    min_score: h("input", { id: "search-min-score", type: "number", min: 0, max: 100, step: "any", value: criteria.min_score }),
    max_score: h("input", { id: "search-max-score", type: "number", min: 0, max: 100, step: "any", value: criteria.max_score }),
  };
  const labels = { q: "search.q", agent: "search.agent", rule_id: "search.rule", date_from: "search.date_from", date_to: "search.date_to",
    min_score: "search.min_score", max_score: "search.max_score" };
  const go = h("button", { id: "search-go", type: "submit", class: "btn primary", i18n: "search.go" });
  const form = h("form", { class: "filters", role: "search", i18nAttr: { "aria-label": "search.title" } },
    Object.entries(f).map(([k, el]) => field(labels[k], el)), h("div", { class: "field actions" }, go));
  const count = h("span", { class: "muted" });
  const tbody = h("tbody");
  const table = h("table", { class: "grid", testid: "search-results" },
    h("thead", {}, h("tr", {}, ["search.col.date", "search.col.agent", "search.col.channels", "search.col.duration", "search.col.score",
      "search.col.rules", "search.col.snippet"].map((k) => h("th", { scope: "col", i18n: k })))),
    tbody);
  const empty = emptyState("search.empty", "search-empty");
  table.hidden = empty.hidden = true; // neither "no results" nor an empty table until the answer is in
  root.append(h("div", { class: "view-head" }, h("h1", { i18n: "search.title" }), count), form, table, empty);

  if (hasRole("auditor", "admin")) {
    const box = h("div", {});
    root.append(h("details", { class: "panel", testid: "audit-log" }, h("summary", { i18n: "audit.title" }), box));
    loadAuditLog(ctx, box).catch(showError);
  }

  async function search() {
    for (const k of Object.keys(criteria)) criteria[k] = f[k].value;
    go.disabled = true;
    try {
      const data = await ctx.get(`/v1/search${qs({ ...criteria, limit: 50 })}`);
      const results = (data && data.results) || [];
      clear(tbody).append(...results.map(resultRow));
      table.hidden = !results.length;
      empty.hidden = !!results.length;
      count.textContent = t("search.count", { n: results.length });
      hideError();
    } finally {
      go.disabled = false;
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    search().catch(showError);
  });
  await search();
}

function resultRow(r) {
  const s = r.session || {};
  const score = typeof r.score === "number" ? r.score : null;
  const tr = h("tr", { testid: "search-row", dataset: { sessionId: s.id }, class: "clickable" },
    h("td", { class: "nowrap" }, h("a", { href: `#/review/${enc(s.id)}`, text: fmtDate(s.created_at) }), s.live ? h("span", { class: "badge live", i18n: "search.live" }) : null),
    h("td", { text: s.agent || "—" }),
    h("td", { text: (s.channel_names || []).join(", ") || "—" }),
    h("td", { class: "mono num", text: fmtClock(Number(s.audio_s) || 0) }),
    h("td", { class: "num" }, score == null ? "—" : h("span", { class: `badge score ${score >= 80 ? "ok" : score >= 60 ? "warn" : "bad"}`, text: fmtNum(score, 1) })),
    h("td", {}, (r.rules || []).map((id) => h("code", { class: "chip", text: id }))),
    h("td", { class: "snippet", text: r.snippet || "" }),
  );
  activate(tr, () => { location.hash = `#/review/${enc(s.id)}`; });
  return tr;
}

// ---- one session ----

export async function renderReviewSession(root, ctx, id) {
  const base = `/v1/sessions/${enc(id)}`;
  const meta = h("dl", { class: "meta" });
  const audioUrl = `${base}/audio`;
  const audio = h("audio", { controls: true, preload: "auto", testid: "review-audio", src: audioUrl, class: "review-audio", i18nAttr: { "aria-label": "review.audio" } });
  const dl = (testid, href, key, name) => h("a", { href, testid, class: "btn small", download: name ?? true, i18n: key });
  const downloads = h("div", { class: "downloads" },
    dl("download-report", `${base}/report`, "review.dl.report"),
    dl("download-vtt", `${base}/transcript?format=vtt`, "review.dl.vtt", `${id}.vtt`),
    dl("download-srt", `${base}/transcript?format=srt`, "review.dl.srt", `${id}.srt`),
    dl("download-json", `${base}/transcript?format=json`, "review.dl.json", `${id}.json`),
    dl("download-minutes", `${base}/minutes?format=html`, "review.dl.minutes", `${id}-minutes.html`));
  const transcript = h("div", { class: "transcript", testid: "transcript" }, h("p", { class: "loading", i18n: "common.loading" }));
  const findings = h("ul", { class: "ev-list", testid: "findings" });
  const findingsBox = h("div", {}, findings);
  const scorecard = h("div", { testid: "scorecard" }, h("p", { class: "loading", i18n: "common.loading" }));
  const forms = h("div", { testid: "forms" }, h("p", { class: "loading", i18n: "common.loading" }));

  root.append(
    h("div", { class: "view-head" }, h("a", { href: "#/review", class: "back", i18n: "review.back" }),
      h("h1", {}, h("span", { i18n: "review.title" }), " ", h("span", { class: "mono muted", text: id.slice(0, 8), title: id }))),
    meta, downloads, h("div", { class: "player" }, audio),
    h("div", { class: "call-grid" },
      h("section", { class: "panel" }, h("h2", { i18n: "review.transcript" }), transcript),
      h("div", { class: "side" },
        h("section", { class: "panel" }, h("h2", { i18n: "review.findings" }), findingsBox),
        h("section", { class: "panel" }, h("h2", { i18n: "review.scorecard" }), scorecard),
        h("section", { class: "panel" }, h("h2", { i18n: "review.forms" }), forms))),
  );

  // A live call has no recording yet (409) and some deployments keep none (404): say so, once.
  const audioNote = h("p", { class: "muted small", testid: "review-audio-unavailable", i18n: "review.audio_unavailable", hidden: true });
  audio.after(audioNote);
  audio.addEventListener("error", () => { audioNote.hidden = false; });

  const segEls = new Map(); // segment_id -> element
  let ordered = []; // [{start, end, el}] sorted by start
  let evidence = new Set();
  const colour = colourIndexer();

  // Seeking needs a server that answers byte ranges; a plain 200 WAV leaves Chrome with nothing seekable.
  // Then the recording is fetched once as a blob (CSP allows media-src blob:), which is always seekable.
  let pendingSeek = null;
  let blobUrl = null;
  let swapping = false;
  ctx.onCleanup(() => { if (blobUrl) URL.revokeObjectURL(blobUrl); });
  function seekable(s) {
    const r = audio.seekable;
    for (let i = 0; i < r.length; i++) if (r.start(i) <= s && s <= r.end(i) && r.end(i) > 0) return true;
    return false;
  }
  async function swapToBlob() {
    if (swapping || blobUrl) return;
    swapping = true;
    try {
      const res = await fetch(audioUrl, { credentials: "same-origin" });
      if (!res.ok || !ctx.alive) return;
      const blob = await res.blob();
      if (!ctx.alive) return;
      blobUrl = URL.createObjectURL(blob);
      audio.src = blobUrl;
    } catch (e) {
      /* the player keeps the original source */
    } finally {
      swapping = false;
    }
  }
  function trySeek() {
    if (pendingSeek == null) return;
    if (!seekable(pendingSeek)) {
      if (audio.readyState >= 1 && !blobUrl) swapToBlob();
      return;
    }
    audio.currentTime = pendingSeek;
    pendingSeek = null;
    audio.play().catch(() => {}); // autoplay policy may refuse; the position is set anyway
  }
  for (const ev of ["loadedmetadata", "progress", "canplay", "canplaythrough"]) audio.addEventListener(ev, trySeek);
  function seek(s) {
    if (!Number.isFinite(s)) return;
    pendingSeek = s;
    trySeek();
  }

  // ---- synchronization: the segment being spoken gets .playing ----
  let playing = null;
  audio.addEventListener("timeupdate", () => {
    const now = audio.currentTime;
    let lo = 0, hi = ordered.length - 1, found = null;
    while (lo <= hi) { // last segment starting at or before now
      const mid = (lo + hi) >> 1;
      if (ordered[mid].start <= now + 0.05) { found = ordered[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    const cur = found && now <= found.end + 0.05 ? found.el : null;
    if (cur === playing) return;
    if (playing) playing.classList.remove("playing");
    playing = cur;
    if (cur) {
      cur.classList.add("playing");
      if (!audio.paused) cur.scrollIntoView({ block: "nearest" });
    }
  });

  function markEvidence() {
    for (const [sid, el] of segEls) {
      const on = evidence.has(sid);
      el.classList.toggle("evidence", on);
      if (on) el.dataset.evidence = "1";
    }
  }

  function pick(ids) {
    const el = ids.map((i) => segEls.get(String(i))).find(Boolean);
    if (!el) return;
    el.scrollIntoView({ block: "center", behavior: "smooth" });
    seek(Number(el.dataset.startS));
  }

  const loaders = [
    ctx.get(`${base}/transcript?format=json`).then((data) => {
      const s = data.session || {};
      const names = s.channel_names || [];
      const rows = [["call.meta.agent", s.agent || (s.metadata && s.metadata.agent) || "—"], ["call.meta.channels", names.join(", ") || "—"],
        ["call.meta.language", s.language || "—"], ["call.meta.source", s.source || "—"], ["call.meta.started", fmtDate(s.created_at)],
        ["call.meta.ended", s.ended_at ? fmtDate(s.ended_at) : "—"], ["call.meta.duration", fmtClock(Number(s.audio_s) || 0)]];
      clear(meta).append(...rows.flatMap(([k, v]) => [h("dt", { i18n: k }), h("dd", { text: v })]));
      const tagsBy = new Map();
      for (const a of data.annotations || []) {
        const sid = String(a.segment_id);
        if (!tagsBy.has(sid)) tagsBy.set(sid, new Map());
        tagsBy.get(sid).set(String(a.task), a);
      }
      const segs = (data.segments || []).slice().sort((a, b) => (a.start_s || 0) - (b.start_s || 0));
      clear(transcript);
      if (!segs.length) transcript.append(emptyState("review.no_transcript"));
      ordered = segs.map((g) => {
        const sid = String(g.segment_id);
        const speaker = speakerOf(g, names);
        const el = h("div", { class: `segment spk-${colour(speaker)}`, testid: "review-segment",
          dataset: { segmentId: sid, startS: g.start_s, endS: g.end_s, channel: g.channel } },
          h("span", { class: "cap-time mono", text: fmtClock(g.start_s) }),
          h("span", { class: "cap-spk", text: speaker }),
          h("span", { class: "cap-text", text: g.text || "" }),
          h("span", { class: "cap-tags" }, [...(tagsBy.get(sid) || new Map()).values()].map(tagChip)));
        el.setAttribute("aria-label", `${fmtClock(g.start_s)} ${speaker}: ${t("review.seek")}`);
        activate(el, () => seek(Number(g.start_s)));
        segEls.set(sid, el);
        transcript.append(el);
        return { start: Number(g.start_s) || 0, end: Number(g.end_s) || 0, el };
      });
      markEvidence();
    }).catch((e) => fail(transcript, e)),

    ctx.get(`${base}/events?type=finding,alert`).then((data) => {
      const evs = Array.isArray(data) ? data : (data && data.events) || [];
      evidence = new Set();
      for (const ev of evs) {
        for (const e of ev.evidence || []) evidence.add(String(e.segment_id));
        for (const sid of (ev.data && ev.data.segment_ids) || []) evidence.add(String(sid));
        findings.append(eventItem(ev, pick));
      }
      if (!evs.length) findingsBox.append(emptyState("review.no_findings"));
      markEvidence();
    }).catch((e) => fail(findingsBox, e)),

    ctx.get(`${base}/events?type=scorecard`).then((data) => {
      const evs = Array.isArray(data) ? data : (data && data.events) || [];
      const card = evs[evs.length - 1];
      clear(scorecard).append(...(card ? scorecardBody(card) : [emptyState("review.not_scored")]));
    }).catch((e) => fail(scorecard, e)),

    ctx.get(`${base}/forms`).then((data) => {
      clear(forms).append(...formsBody(data));
    }).catch((e) => {
      if (e && e.status === 404 && e.code !== "not_found") clear(forms).append(emptyState("review.not_scored"));
      else fail(forms, e);
    }),
  ];
  await Promise.all(loaders);
}

// A section that failed says so in place; the banner carries the message too.
function fail(box, e) {
  if (e === STALE || e instanceof AuthError) return;
  showError(e);
  clear(box).append(h("p", { class: "view-error", text: e && e.message ? e.message : String(e) }));
}
