"""Ordinary speech that expresses no clause family: negatives for every head.

The hand-written corpus is all about compliance moments; a head trained only on it has never seen a customer ask
for a balance ("your savings account balance is ...") and fires on the words it shares with its positives. Real
public text gives it that background: Banking77 customer queries (English) and VCSum meeting sentences (Mandarin),
both in ../shared/data with their licences. Used for training only; the test split stays the corpus' own.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from models.clauses.data import ClauseExample

BACKGROUND_FAMILY = "background"
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def background_examples(shared_data: Path = DEFAULT_SHARED_DATA, per_language: int = 1500,
                        seed: int = 0) -> list[ClauseExample]:
    """Up to `per_language` English and Mandarin background sentences (fewer if a source is missing)."""
    rng = random.Random(seed)
    en: list[str] = []
    b77 = shared_data / "intent" / "banking77" / "train.csv"
    if b77.is_file():
        with b77.open(newline="", encoding="utf-8") as f:
            en = [row["text"].strip() for row in csv.DictReader(f) if row.get("text", "").strip()]
    zh: list[str] = []
    vcsum = shared_data / "minutes" / "vcsum-zh" / "short_dev.txt"
    if vcsum.is_file():
        for line in vcsum.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            for paragraph in json.loads(line).get("context", []):
                zh += [s.strip() for s in paragraph if 8 <= len(s.strip()) <= 60]
    out: list[ClauseExample] = []
    for lang, texts in (("en", en), ("zh", zh)):
        picked = rng.sample(texts, min(per_language, len(texts)))
        out += [ClauseExample(t, lang, BACKGROUND_FAMILY, "neg", "background", f"bg-{lang}-{i // 50}", "train")
                for i, t in enumerate(picked)]
    return out
