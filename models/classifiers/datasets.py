"""Readers for the public text data sets the classifiers are trained and measured on, and their fixed splits.

Pure Python (no torch), so `harken eval` and `harken train` share one definition of every split. Splits are
decided by a hash of each example's text and label, not by row order, so they are the same on every machine and
for every copy of the file, and a held-out example can never drift into training.

Split names used across the project:
  train    what the shipped weights were fitted on
  val      used for early stopping and for tuning thresholds (never reported as a final number)
  holdout  never touched while training or tuning: the honest report split
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SplitName = Literal["train", "val", "holdout", "all"]

# Banking77: 8% validation, 8% holdout, the rest training (by hash bucket out of 100).
_BANKING_VAL_BUCKETS = range(0, 8)
_BANKING_HOLDOUT_BUCKETS = range(8, 16)
# GoEmotions: its own dev.tsv is the validation set; 10% of train.tsv is held out for reporting.
_GOEMOTIONS_HOLDOUT_BUCKETS = range(0, 10)

OUT_OF_SCOPE = "out_of_scope"

# CLINC150 intents of its "banking" and "credit_cards" domains, plus a few from other domains that a bank's
# customer could reasonably raise with a bank (exchange rates, travel notices, direct deposit). These are never
# used as out-of-scope training negatives, and the CLINC evaluation counts them as in scope for a bank.
CLINC_BANKING_INTENTS: frozenset[str] = frozenset(
    {
        # banking domain
        "account_blocked", "balance", "bill_balance", "bill_due", "freeze_account", "interest_rate",
        "min_payment", "order_checks", "pay_bill", "pin_change", "report_fraud", "routing",
        "spending_history", "transactions", "transfer",
        # credit_cards domain
        "application_status", "apr", "card_declined", "credit_limit", "credit_limit_change", "credit_score",
        "damaged_card", "expiration_date", "improve_credit_score", "international_fees", "new_card",
        "redeem_rewards", "replacement_card_duration", "report_lost_card", "rewards_balance",
        # other domains, but banking business
        "exchange_rate", "travel_notification", "direct_deposit",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One single-label example."""

    text: str
    label: str


@dataclass(frozen=True, slots=True)
class MultiLabelText:
    """One multi-label example (GoEmotions): label indices into the file's labels.txt."""

    text: str
    labels: tuple[int, ...]
    example_id: str


def hash_bucket(key: str, buckets: int = 100) -> int:
    """A stable bucket in [0, buckets) for a string: the basis of every split here."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def banking77_split_of(example: LabelledText) -> SplitName:
    """Which fixed split a Banking77 training-file example belongs to."""
    bucket = hash_bucket(f"{example.label}|{example.text}")
    if bucket in _BANKING_VAL_BUCKETS:
        return "val"
    if bucket in _BANKING_HOLDOUT_BUCKETS:
        return "holdout"
    return "train"


def read_banking77(path: Path, split: SplitName = "all") -> list[LabelledText]:
    """Read a Banking77 CSV (`text,category`). `split` selects one of the fixed splits of the training file;
    use "all" for a file that is itself a test set."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [LabelledText(r["text"], r["category"]) for r in csv.DictReader(fh)]
    if split == "all":
        return rows
    return [r for r in rows if banking77_split_of(r) == split]


def read_clinc150(path: Path, keys: Iterable[str] | None = None) -> dict[str, list[LabelledText]]:
    """Read CLINC150 in its published JSON layout ({"train": [[text, intent], ...], "oos_val": ...}).

    Returns the selected keys (all when `keys` is None). CLINC's own out-of-scope label "oos" is kept as is.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    wanted = list(data) if keys is None else [k for k in keys if k in data]
    return {k: [LabelledText(str(t), str(i)) for t, i in data[k]] for k in wanted}


def read_goemotions_labels(path: Path) -> list[str]:
    """labels.txt: one label a line, in index order."""
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def goemotions_split_of(example: MultiLabelText) -> SplitName:
    """Which fixed split an example of GoEmotions' train.tsv belongs to (train or holdout)."""
    return "holdout" if hash_bucket(example.example_id) in _GOEMOTIONS_HOLDOUT_BUCKETS else "train"


def read_goemotions(path: Path, split: SplitName = "all") -> list[MultiLabelText]:
    """Read a GoEmotions TSV (`text<TAB>comma-separated label ids<TAB>comment id`).

    `split` applies only to the training file (train or holdout); a dev or test file is read whole with "all".
    """
    out: list[MultiLabelText] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[1]:
                continue
            labels = tuple(sorted({int(x) for x in parts[1].split(",") if x.strip()}))
            ex = MultiLabelText(parts[0], labels, parts[2] if len(parts) > 2 else parts[0])
            if split == "all" or goemotions_split_of(ex) == split:
                out.append(ex)
    return out
