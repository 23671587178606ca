// Live wall (polling) and live call (EventSource) views.
import { t, applyI18n } from "./i18n.js";
import {
  h, svg, clear, enc, fmtClock, fmtDate, fmtTime, fmtNum, enumLabel, sevBadge, valenceClass, colourIndexer, speakerOf,
  showError, hasRole, activate, emptyState, setI18n, api, AuthError, STALE,
} from "./util.js";
import { tagChip, eventItem, scorecardBody, minutesBody } from "./widgets.js";

// ======================================== wall ========================================================

export async function renderWall(root, ctx) {
  const count = h("span", { class: "muted" });
  const updated = h("span", { class: "muted small", testid: "wall-updated" });
  const tbody = h("tbody");
  const cols = ["wall.col.call", "wall.col.agent", "wall.col.channels", "wall.col.language", "wall.col.duration",
    "wall.col.state", "wall.col.emotion", "wall.col.alerts", "wall.col.last_alert"];
  const table = h("table", { class: "grid wall", testid: "wall-table" },
    h("thead", {}, h("tr", {}, cols.map((k) => h("th", { scope: "col", i18n: k })))), tbody);
  const empty = emptyState("wall.empty", "wall-empty");
  empty.hidden = true;
  table.hidden = true;
  root.append(h("div", { class: "view-head" }, h("h1", { i18n: "wall.title" }), count, updated), table, empty);

  const rows = new Map(); // session id -> {tr, cells, s, at}
  let inFlight = false;
  let failing = false;

  function makeRow(s) {
    const cells = {
      call: h("td", {}), agent: h("td", {}), channels: h("td", {}), language: h("td", {}),
      duration: h("td", { class: "mono num" }), state: h("td", {}), emotion: h("td", {}),
      alerts: h("td", { class: "num" }), last: h("td", { class: "last-alert" }),
    };
    const tr = h("tr", { testid: "wall-row", dataset: { sessionId: s.id }, class: "clickable" }, Object.values(cells));
    activate(tr, () => { location.hash = `#/call/${enc(s.id)}`; });
    return { tr, cells };
  }

  function fill(r, s) {
    const c = r.cells;
    clear(c.call).append(h("a", { href: `#/call/${enc(s.id)}`, class: "mono", text: String(s.id).slice(0, 8), title: s.id }),
      h("div", { class: "muted small", text: fmtDate(s.created_at) }));
    c.agent.textContent = s.agent || "—";
    c.channels.textContent = (s.channel_names || []).join(", ") || "—";
    c.language.textContent = [s.language, s.source].filter(Boolean).join(" · ") || "—";
    const st = h("span", { class: `badge state ${valenceClass(s.rolling_valence)}`, ...enumLabel("state", s.state) });
    if (typeof s.rolling_valence === "number") st.title = `${t("wall.valence")} ${fmtNum(s.rolling_valence)}`;
    clear(c.state).append(st);
    c.emotion.textContent = s.emotion || "—";
    const open = Number(s.open_alerts) || 0;
    clear(c.alerts).append(
      h("span", { class: `badge alerts ${open ? "has-open" : "none"}`, testid: "open-alerts", text: String(open), title: t("wall.open_alerts") }),
      h("span", { class: "muted small", text: ` / ${Number(s.alerts_total) || 0}` }));
    c.last.textContent = s.last_alert || "";
    r.tr.classList.toggle("alerting", open > 0);
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const r of rows.values()) r.cells.duration.textContent = fmtClock((Number(r.s.duration_s) || 0) + (now - r.at));
  }

  function update(data) {
    const list = (data && data.sessions) || [];
    const at = Date.now() / 1000;
    const keep = new Set();
    list.sort((a, b) => (b.created_at || 0) - (a.created_at || 0)); // newest first, stable between polls
    for (const s of list) {
      keep.add(s.id);
      let r = rows.get(s.id);
      if (!r) {
        r = makeRow(s);
        rows.set(s.id, r);
      }
      r.s = s;
      r.at = at;
      fill(r, s);
    }
    for (const [id, r] of rows) if (!keep.has(id)) { r.tr.remove(); rows.delete(id); }
    // Re-order only when needed: moving a focused row would drop keyboard focus.
    const want = list.map((s) => rows.get(s.id).tr);
    if (want.some((tr, i) => tbody.children[i] !== tr) || tbody.children.length !== want.length) tbody.replaceChildren(...want);
    tick();
    table.hidden = list.length === 0;
    empty.hidden = list.length !== 0;
    setI18n(count, ["wall.count", { n: list.length }]);
    setI18n(updated, ["wall.updated", { time: fmtTime() }]);
  }

  async function poll() {
    if (inFlight || !ctx.alive) return;
    inFlight = true;
    try {
      update(await ctx.get("/v1/live"));
      failing = false;
      updated.classList.remove("stale");
    } catch (e) {
      if (e === STALE || e instanceof AuthError) return;
      if (!failing) showError(e); // once per outage, not once a second
      failing = true;
      updated.classList.add("stale");
    } finally {
      inFlight = false;
    }
  }
  ctx.interval(poll, 1000);
  ctx.interval(tick, 500); // durations keep ticking between polls and during an outage
  await poll();
}

// ======================================== live call ===================================================

const EVENT_TYPES = ["transcript", "annotation", "mood", "finding", "alert", "redaction", "speaker_update",
  "diarization", "scorecard", "ticket", "minutes", "session_end"];

export async function renderCall(root, ctx, id) {
  // ---- layout ----
  const status = h("span", { class: "call-status", testid: "call-status", i18n: "call.status.connecting", dataset: { state: "connecting" } });
  const meta = h("dl", { class: "meta" });
  const duration = h("span", { class: "mono", testid: "call-duration", text: "00:00" });
  const captions = h("div", { class: "captions", id: "captions", testid: "captions", role: "log", "aria-live": "off", tabindex: "0", i18nAttr: { "aria-label": "call.captions" } });
  const captionsEmpty = emptyState("call.captions.empty");
  const jump = h("button", { type: "button", class: "btn small jump", hidden: true, i18n: "call.jump_latest" });
  const chart = svg("svg", { class: "mood-chart", "data-testid": "mood-chart", viewBox: "0 0 560 230", role: "img", preserveAspectRatio: "xMidYMid meet" });
  chart.setAttribute("data-i18n-aria-label", "call.mood");
  const alertsList = h("ul", { class: "ev-list", testid: "alerts" });
  const alertsEmpty = emptyState("call.alerts.empty");
  const alertCount = h("span", { class: "badge count", text: "0" });
  const scoreBox = h("div", { testid: "scorecard" }, emptyState("call.score.pending"));
  const ticketList = h("ul", { class: "plain", testid: "call-tickets" });
  const minutesBox = h("div", { testid: "minutes" }, emptyState("minutes.none"));
  const reviewLink = h("a", { href: `#/review/${enc(id)}`, class: "btn small", i18n: "call.open_review", hidden: true });

  root.append(
    h("div", { class: "view-head" },
      h("a", { href: "#/wall", class: "back", i18n: "call.back" }),
      h("h1", {}, h("span", { i18n: "call.title" }), " ", h("span", { class: "mono muted", text: id.slice(0, 8), title: id })),
      status, duration, reviewLink),
    meta,
    h("div", { class: "call-grid" },
      h("section", { class: "panel captions-panel", "aria-labelledby": "cap-h" },
        h("div", { class: "panel-head" }, h("h2", { id: "cap-h", i18n: "call.captions" }), jump),
        captions),
      h("div", { class: "side" },
        h("section", { class: "panel" }, h("h2", { i18n: "call.mood" }), chart),
        h("section", { class: "panel" }, h("h2", {}, h("span", { i18n: "call.alerts" }), " ", alertCount), alertsEmpty, alertsList),
        h("section", { class: "panel" }, h("h2", { i18n: "call.tickets" }), ticketList),
        h("section", { class: "panel" }, h("h2", { i18n: "call.scorecard" }), scoreBox),
        h("details", { class: "panel" }, h("summary", { i18n: "call.minutes" }), minutesBox))),
  );
  captions.append(captionsEmpty);
  applyI18n(chart.parentNode);

  // ---- state ----
  let channelNames = [];
  let ended = false;
  let summaryLive = null;
  let clock = { base: 0, at: Date.now() / 1000, running: false };
  const segs = new Map(); // segment_id -> caption record
  const redacted = new Map(); // segment_id -> redacted text (wins over any later text)
  const speakerFix = new Map(); // segment_id -> revised speaker label
  const tags = new Map(); // segment_id -> Map(task -> annotation)
  const evidence = new Set();
  const seenSeq = new Set();
  const seenKeys = new Set();
  const colour = colourIndexer();
  const mood = new Map(); // speaker -> [{at_s, valence, rolling, emotion, state}]

  function setStatus(state) {
    status.dataset.state = state;
    status.className = `call-status st-${state}`;
    setI18n(status, `call.status.${state}`);
  }

  ctx.interval(() => {
    if (clock.running) duration.textContent = fmtClock(clock.base + (Date.now() / 1000 - clock.at));
  }, 500);

  // ---- summary (in parallel with the stream) ----
  ctx.get(`/v1/sessions/${enc(id)}`).then((s) => {
    channelNames = s.channel_names || [];
    summaryLive = !!s.live;
    const rows = [
      ["call.meta.agent", s.agent || (s.metadata && s.metadata.agent) || "—"],
      ["call.meta.channels", channelNames.join(", ") || "—"],
      ["call.meta.language", s.language || "—"],
      ["call.meta.source", s.source || "—"],
      ["call.meta.started", fmtDate(s.created_at)],
      ["call.meta.ended", s.ended_at ? fmtDate(s.ended_at) : "—"],
    ];
    clear(meta).append(...rows.flatMap(([k, v]) => [h("dt", { i18n: k }), h("dd", { text: v })]));
    clock = { base: Number(s.audio_s) || 0, at: Date.now() / 1000, running: !!s.live && !ended };
    duration.textContent = fmtClock(clock.base);
    // Not live: the stream still replays the stored history; it is closed by session_end (or its end).
    if (!s.live) showEnded();
    else if (!ended) setStatus("live");
  }).catch((e) => {
    if (e === STALE || e instanceof AuthError) return;
    showError(e);
    if (e.status === 404) {
      clear(meta).append(h("p", { class: "view-error", role: "alert", text: e.message }));
      closeStream();
      setStatus("notfound");
    }
  });

  // ---- captions ----
  let stick = true;
  let scrollQueued = false;
  captions.addEventListener("scroll", () => {
    stick = captions.scrollTop + captions.clientHeight >= captions.scrollHeight - 40;
    jump.hidden = stick;
  });
  jump.addEventListener("click", () => {
    stick = true;
    jump.hidden = true;
    captions.scrollTop = captions.scrollHeight;
  });
  function followBottom() {
    if (!stick) {
      jump.hidden = false;
      return;
    }
    if (scrollQueued) return;
    scrollQueued = true; // one layout per frame even when the history replay delivers hundreds of events
    requestAnimationFrame(() => {
      scrollQueued = false;
      if (stick) captions.scrollTop = captions.scrollHeight;
    });
  }

  function insertSorted(rec) {
    const start = rec.start;
    let before = null;
    // Walk back from the end: new captions almost always belong at the bottom.
    for (let el = captions.lastElementChild; el; el = el.previousElementSibling) {
      if (!el.dataset.segmentId) continue;
      if (Number(el.dataset.startS) <= start) break;
      before = el;
    }
    captions.insertBefore(rec.row, before);
  }

  function setSpeaker(rec, label) {
    rec.speaker = label;
    rec.spk.textContent = label;
    rec.row.className = rec.row.className.replace(/\bspk-\d\b/g, "").trim();
    rec.row.classList.add(`spk-${colour(label)}`);
  }

  function renderTags(rec, sid) {
    const m = tags.get(sid);
    clear(rec.tags);
    if (m) for (const ann of m.values()) rec.tags.append(tagChip(ann));
  }

  function onTranscript(ev) {
    const sid = String(ev.segment_id);
    const kind = ev.kind === "final" ? "final" : "partial";
    let rec = segs.get(sid);
    if (rec && rec.kind === "final" && kind === "partial") return; // a late partial never undoes a final
    if (!rec) {
      const time = h("span", { class: "cap-time mono" });
      const spk = h("span", { class: "cap-spk" });
      const text = h("span", { class: "cap-text" });
      const tagBox = h("span", { class: "cap-tags" });
      const row = h("div", { class: "caption", testid: "caption", dataset: { segmentId: sid, channel: ev.channel } }, time, spk, text, tagBox);
      rec = { row, time, spk, text, tags: tagBox, kind, start: NaN, speaker: "" };
      segs.set(sid, rec);
      captionsEmpty.remove();
    }
    const start = Number(ev.start_s) || 0;
    rec.kind = kind;
    rec.row.dataset.kind = kind;
    rec.row.classList.toggle("partial", kind === "partial");
    rec.text.textContent = redacted.has(sid) ? redacted.get(sid) : ev.text || "";
    setSpeaker(rec, speakerFix.get(sid) || speakerOf(ev, channelNames));
    if (evidence.has(sid)) markRow(rec);
    if (start !== rec.start) {
      rec.start = start;
      rec.row.dataset.startS = String(start);
      rec.time.textContent = fmtClock(start);
      insertSorted(rec);
    }
    renderTags(rec, sid);
    followBottom();
  }

  function markRow(rec) {
    rec.row.classList.add("evidence");
    rec.row.dataset.evidence = "1";
  }

  function markEvidence(ids) {
    for (const id of ids || []) {
      const sid = String(id);
      evidence.add(sid);
      const rec = segs.get(sid);
      if (rec) markRow(rec);
    }
  }

  function pick(ids) {
    const rec = ids.map((i) => segs.get(String(i))).find(Boolean);
    if (!rec) return;
    stick = false;
    rec.row.tabIndex = -1;
    rec.row.scrollIntoView({ block: "center", behavior: "smooth" });
    rec.row.focus({ preventScroll: true });
    rec.row.classList.add("flash");
    ctx.timeout(() => rec.row.classList.remove("flash"), 1600);
  }

  // ---- mood chart (redrawn at most every 250 ms) ----
  let chartTimer = 0;
  let lastDraw = 0;
  ctx.onCleanup(() => clearTimeout(chartTimer));
  function scheduleChart() {
    if (chartTimer) return;
    chartTimer = setTimeout(() => {
      chartTimer = 0;
      lastDraw = performance.now();
      if (ctx.alive) drawMoodChart(chart, mood, colour);
    }, Math.max(0, 250 - (performance.now() - lastDraw)));
  }
  drawMoodChart(chart, mood, colour);

  function onMood(ev) {
    const speaker = String(ev.speaker || speakerOf(ev, channelNames));
    const key = `m|${speaker}|${ev.segment_id}|${ev.at_s}`;
    if (seenKeys.has(key)) return;
    seenKeys.add(key);
    if (!mood.has(speaker)) mood.set(speaker, []);
    const pts = mood.get(speaker);
    pts.push({ at: Number(ev.at_s) || 0, v: clamp(ev.valence), rolling: ev.rolling_valence, emotion: ev.emotion, state: ev.state });
    if (pts.length > 1 && pts[pts.length - 2].at > pts[pts.length - 1].at) pts.sort((a, b) => a.at - b.at);
    colour(speaker);
    scheduleChart();
  }

  // ---- alerts / findings / tickets / scorecard / minutes ----
  function addEvent(ev, key) {
    if (seenKeys.has(key)) return;
    seenKeys.add(key);
    alertsEmpty.remove();
    alertsList.prepend(eventItem(ev, pick)); // newest on top
    alertCount.textContent = String(alertsList.children.length);
  }

  function onTicket(ev) {
    if (seenKeys.has(`t|${ev.id}`)) return;
    seenKeys.add(`t|${ev.id}`);
    const canOpen = hasRole("admin", "supervisor", "auditor");
    ticketList.append(h("li", { dataset: { ticketId: ev.id } }, sevBadge(ev.severity), " ",
      canOpen ? h("a", { href: `#/ticket/${enc(ev.id)}`, text: ev.title || ev.id }) : h("span", { text: ev.title || ev.id })));
  }

  function onDiarization(ev) {
    for (const [sid, label] of Object.entries(ev.relabel || {})) {
      speakerFix.set(sid, String(label));
      const rec = segs.get(sid);
      if (rec) setSpeaker(rec, String(label));
    }
  }

  function markEnded(ev) {
    ended = true;
    closeStream();
    showEnded(ev);
  }

  function showEnded(ev) {
    setStatus("ended");
    reviewLink.hidden = false;
    const audio = ev && typeof ev.audio_s === "number" ? ev.audio_s : null;
    clock.running = false;
    if (audio != null) duration.textContent = fmtClock(audio);
  }

  const handlers = {
    transcript: onTranscript,
    annotation(ev) {
      const sid = String(ev.segment_id);
      if (!tags.has(sid)) tags.set(sid, new Map());
      tags.get(sid).set(String(ev.task), ev); // one chip per task: a replay or revision replaces it
      const rec = segs.get(sid);
      if (rec) renderTags(rec, sid);
    },
    mood: onMood,
    finding(ev) {
      markEvidence((ev.evidence || []).map((e) => e.segment_id));
      addEvent(ev, ev.seq != null ? `f|${ev.seq}` : `f|${ev.rule_id}|${ev.at_s}`);
    },
    alert(ev) {
      markEvidence(ev.data && ev.data.segment_ids);
      addEvent(ev, ev.seq != null ? `a|${ev.seq}` : `a|${ev.at_s}|${ev.message}`);
    },
    redaction(ev) {
      const sid = String(ev.segment_id);
      redacted.set(sid, ev.text || "");
      const rec = segs.get(sid);
      if (rec) {
        rec.text.textContent = ev.text || "";
        rec.row.classList.add("redacted");
      }
    },
    speaker_update(ev) {
      const sid = String(ev.segment_id);
      speakerFix.set(sid, String(ev.speaker));
      const rec = segs.get(sid);
      if (rec) setSpeaker(rec, String(ev.speaker));
    },
    diarization: onDiarization,
    scorecard(ev) {
      clear(scoreBox).append(...scorecardBody(ev));
    },
    ticket: onTicket,
    minutes(ev) {
      clear(minutesBox).append(...minutesBody(ev));
    },
    session_end: markEnded,
  };

  // ---- stream ----
  let es = null;
  let retries = 0;
  // Latency probe for the browser test: keep exactly as the contract says.
  window.harkenLatency = [];
  const subscribedAt = Date.now() / 1000;

  function onMessage(type, msg) {
    let ev;
    try {
      ev = JSON.parse(msg.data);
    } catch (e) {
      return;
    }
    if (!ev || typeof ev !== "object") return;
    if (typeof ev.seq === "number") {
      if (seenSeq.has(ev.seq)) return; // a reconnect replays history: handle each stored event once
      seenSeq.add(ev.seq);
    }
    if (typeof ev.emitted_at === "number" && ev.emitted_at > subscribedAt) {
      window.harkenLatency.push(Date.now() / 1000 - ev.emitted_at);
    }
    if (!ended && status.dataset.state !== "live" && type !== "session_end" && summaryLive !== false) setStatus("live");
    try {
      handlers[type](ev);
    } catch (e) {
      console.error("harken: bad", type, "event", e); // one odd event must not stop the captions
    }
  }

  function closeStream() {
    if (es) {
      es.close();
      es = null;
    }
  }

  function subscribe() {
    closeStream();
    es = new EventSource(`/v1/sessions/${enc(id)}/stream`);
    const mine = es;
    es.addEventListener("open", () => {
      retries = 0;
      if (!ended && summaryLive !== false) setStatus("live");
    });
    for (const type of EVENT_TYPES) es.addEventListener(type, (m) => onMessage(type, m));
    es.addEventListener("error", (m) => {
      if (mine !== es) return;
      if (m && typeof m.data === "string" && m.data) { // an `event: error` sent by the server
        let d = {};
        try {
          d = JSON.parse(m.data);
        } catch (e) { /* keep {} */ }
        showError(`${t("call.stream_error")}: ${d.message || d.code || m.data}`);
        return;
      }
      if (ended) return closeStream();
      if (summaryLive === false) return markEnded(); // stored history fully replayed; nothing more will come
      if (es.readyState === EventSource.CLOSED) {
        // The server refused (401/404/5xx). Find out whether we were signed out, else retry a few times.
        setStatus("disconnected");
        closeStream();
        api("GET", "/v1/auth/me").then(() => {
          if (!ctx.alive || ended) return;
          if (retries++ < 5) ctx.timeout(subscribe, 2000 * retries);
          else showError(t("call.stream_lost"));
        }).catch((e) => { if (!(e instanceof AuthError)) showError(e); });
      } else {
        setStatus("reconnecting"); // the browser retries on its own
      }
    });
  }

  window.addEventListener("pagehide", closeStream);
  ctx.onCleanup(() => {
    closeStream();
    window.removeEventListener("pagehide", closeStream);
  });
  subscribe();
}

function clamp(v) {
  const n = Number(v);
  return Number.isFinite(n) ? Math.max(-1, Math.min(1, n)) : 0;
}

// ======================================== mood chart ==================================================

const W = 560, H = 230, M = { l: 40, r: 12, t: 28, b: 30 };

function niceStep(span) {
  for (const s of [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) if (span / s <= 7) return s;
  return 7200;
}

function svgText(attrs, key) {
  const el = svg("text", attrs);
  el.setAttribute("data-i18n", key);
  el.textContent = t(key);
  return el;
}

// Rebuilds the chart inside the same <svg> (tests and screen readers keep their reference).
export function drawMoodChart(chart, mood, colour) {
  let maxAt = 0;
  for (const pts of mood.values()) for (const p of pts) maxAt = Math.max(maxAt, p.at);
  const xMax = Math.max(30, maxAt * 1.05);
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const x = (s) => M.l + (s / xMax) * pw;
  const y = (v) => M.t + ((1 - v) / 2) * ph;
  const parts = [];

  for (const v of [-1, -0.5, 0, 0.5, 1]) {
    parts.push(svg("line", { class: v === 0 ? "zero" : "gridline", x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }));
    parts.push(svg("text", { class: "tick", x: M.l - 6, y: y(v) + 3, "text-anchor": "end", text: v.toFixed(1) }));
  }
  const step = niceStep(xMax);
  for (let s = 0; s <= xMax; s += step) {
    parts.push(svg("line", { class: "tickmark", x1: x(s), x2: x(s), y1: H - M.b, y2: H - M.b + 4 }));
    const anchor = x(s) > W - M.r - 16 ? "end" : "middle"; // keep the last label inside the box
    parts.push(svg("text", { class: "tick", x: x(s), y: H - M.b + 15, "text-anchor": anchor, text: fmtClock(s) }));
  }
  parts.push(svg("line", { class: "axis", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }));
  parts.push(svg("line", { class: "axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
  parts.push(svgText({ class: "axis-title", x: W - M.r, y: H - 2, "text-anchor": "end" }, "chart.time"));
  parts.push(svgText({ class: "axis-title", x: 4, y: M.t - 10 }, "chart.valence"));

  let lx = M.l + 70;
  for (const [speaker, pts] of mood) {
    const ci = colour(speaker);
    const g = svg("g", { class: `series spk-${ci}`, "data-speaker": speaker });
    const line = svg("polyline", { class: "line", points: pts.map((p) => `${x(p.at).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ") });
    line.setAttribute("data-speaker", speaker);
    g.append(line);
    for (const p of pts) {
      const dot = svg("circle", { class: "dot", cx: x(p.at).toFixed(1), cy: y(p.v).toFixed(1), r: 3 });
      dot.append(svg("title", { text: `${speaker} ${fmtClock(p.at)} · ${p.emotion || "—"} · ${fmtNum(p.v)}${p.state ? ` · ${p.state}` : ""}` }));
      g.append(dot);
    }
    parts.push(g);
    // Legend entry: swatch + speaker + latest state.
    const last = pts[pts.length - 1];
    const label = `${speaker}${last && last.state ? ` · ${last.state}` : ""}`;
    parts.push(svg("g", { class: `legend spk-${ci}` },
      svg("rect", { class: "swatch", x: lx, y: 6, width: 12, height: 4 }),
      svg("text", { class: "legend-text", x: lx + 16, y: 12, text: label })));
    lx += 24 + label.length * 6.5;
  }
  if (!mood.size) parts.push(svgText({ class: "chart-empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "chart.empty"));
  chart.replaceChildren(...parts);
}
