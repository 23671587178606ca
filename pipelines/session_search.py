"""Search past sessions of one tenant: full text over final captions, agent, date range, rule and score.

Event payloads may be encrypted at rest, so matching happens here, on decrypted events, over at most
`scan_limit` of the newest sessions that pass the row filters (tenant, dates, agent). Blocking: call off the
event loop.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

SNIPPET_CHARS = 60


@dataclass(frozen=True)
class SearchQuery:
    tenant_id: str
    text: str = ""
    agent: str | None = None
    rule_id: str | None = None
    created_from: float | None = None  # unix seconds, inclusive
    created_to: float | None = None  # unix seconds, exclusive
    min_score: float | None = None
    max_score: float | None = None
    limit: int = 50
    scan_limit: int = 1000
    only_agent: str | None = None  # an agent principal: their own calls only


@dataclass(frozen=True)
class SearchHit:
    session: Any  # pipelines.store.SessionRow
    score: float | None
    rules: list[str]
    snippet: str | None


def _fold(text: str) -> str:
    """Case- and width-insensitive form for matching (full-width Latin and digits fold to ASCII)."""
    return unicodedata.normalize("NFKC", text).casefold()


def _snippet(text: str, at: int, length: int) -> str:
    start = max(0, at - SNIPPET_CHARS)
    end = min(len(text), at + length + SNIPPET_CHARS)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def search_sessions(store: Any, q: SearchQuery) -> list[SearchHit]:
    rows = store.list_sessions(q.scan_limit, 0, None, q.tenant_id, q.created_from, q.created_to)
    needle = _fold(q.text.strip())
    hits: list[SearchHit] = []
    for row in rows:
        if q.only_agent is not None and row.agent != q.only_agent:
            continue
        if q.agent and (row.agent or "").casefold() != q.agent.casefold():
            continue
        events = store.events(row.id, ("transcript", "finding", "scorecard"))
        cards = [e for e in events if e.get("type") == "scorecard"]
        score = float(cards[-1]["score"]) if cards and cards[-1].get("score") is not None else None
        if q.min_score is not None and (score is None or score < q.min_score):
            continue
        if q.max_score is not None and (score is None or score > q.max_score):
            continue
        rules = sorted({str(e.get("rule_id")) for e in events if e.get("type") == "finding"})
        if q.rule_id and q.rule_id not in rules:
            continue
        snippet = None
        if needle:
            for e in events:
                if e.get("type") != "transcript" or e.get("kind") != "final":
                    continue
                text = e.get("text") or ""
                at = _fold(text).find(needle)
                if at >= 0:
                    snippet = _snippet(text, at, len(needle))
                    break
            if snippet is None:
                continue
        hits.append(SearchHit(row, score, rules, snippet))
        if len(hits) >= q.limit:
            break
    return hits
