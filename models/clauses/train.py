"""Training of the clause heads (`harken train clauses`): logistic regression per family on embeddings.

Negatives of a family are its own hard negatives plus the positives of other families, except families whose
meanings overlap (a sales pitch is in every disclosure; a "yes, I'll take it" is both a reply and an agreement),
which would teach a head that its own kind of sentence is a negative. Each head's threshold is chosen on
out-of-fold predictions over train *groups* (batches written in one style), so it is tuned on wording the
fold had not seen, as the test split and real calls will be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.clauses.background import BACKGROUND_FAMILY
from models.clauses.calls import CALL_STYLE
from models.clauses.data import REPLY_FAMILY, REPLY_TYPES, ClauseExample, families
from models.clauses.detector import FEATURE, ClauseModel

# family -> families whose positives are NOT used as its negatives (meanings overlap)
OVERLAPS: dict[str, frozenset[str]] = {
    "sales_context": frozenset({"*"}),
    "agreement": frozenset({REPLY_FAMILY}),
    "guarantee": frozenset({"deposit_like"}),
    "deposit_like": frozenset({"guarantee"}),
    "disclosure_not_deposit": frozenset({"disclosure_can_lose"}),
    "disclosure_can_lose": frozenset({"disclosure_not_deposit"}),
}


@dataclass(frozen=True)
class TrainOptions:
    c: float = 4.0  # inverse regularisation of every head
    folds: int = 5
    min_precision: float = 0.9  # thresholds: the highest recall whose out-of-fold precision reaches this
    seed: int = 0


def binary_targets(examples: Sequence[ClauseExample], family: str) -> tuple[np.ndarray, np.ndarray]:
    """(row indices used, 0/1 targets) for one family's head."""
    skip = OVERLAPS.get(family, frozenset())
    rows, y = [], []
    for i, e in enumerate(examples):
        if e.family == family:
            rows.append(i)
            y.append(1 if e.positive else 0)
        elif e.style == CALL_STYLE:
            # a sentence taken from a scenario call is labelled for its own family only: the call's ground truth
            # says nothing about the other families (a promise may well name the institution)
            continue
        elif e.family == BACKGROUND_FAMILY or (
                "*" not in skip and e.family not in skip and (e.positive or e.family == REPLY_FAMILY)):
            rows.append(i)
            y.append(0)
    return np.array(rows, dtype=int), np.array(y, dtype=int)


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed).fit(x, y)


def choose_threshold(y: np.ndarray, p: np.ndarray, min_precision: float) -> float:
    """The lowest threshold whose precision reaches `min_precision` (most recall); 0.5 if none does."""
    order = np.argsort(-p)
    tp = np.cumsum(y[order])
    precision = tp / np.arange(1, len(y) + 1)
    ok = np.nonzero(precision >= min_precision)[0]
    if ok.size == 0:
        return 0.5
    return float(max(min(p[order][ok[-1]], 0.95), 0.05))


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, opts: TrainOptions) -> np.ndarray:
    """Probabilities for every row from a model that never saw its group."""
    from sklearn.model_selection import GroupKFold

    p = np.zeros(len(y), dtype=np.float64)
    groups = np.asarray(groups)
    n_splits = min(opts.folds, len(set(groups)))
    for tr, te in GroupKFold(n_splits=n_splits).split(x, y, groups):
        if len(set(y[tr])) < 2:
            p[te] = y[tr].mean()
            continue
        p[te] = _fit(x[tr], y[tr], opts.c, opts.seed).predict_proba(x[te])[:, 1]
    return p


def ngram_matrix(texts: Sequence[str], min_df: int = 2, vocab: Sequence[str] | None = None):
    """(CSR [N, V] L2-normalised binary n-gram rows, vocabulary) as models/clauses/ngrams.py computes them."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    from models.clauses.ngrams import ngrams

    if vocab is None:
        vec = CountVectorizer(analyzer=ngrams, binary=True, min_df=min_df)
        x = vec.fit_transform(texts)
        vocab = [g for g, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
    else:
        vec = CountVectorizer(analyzer=ngrams, binary=True, vocabulary={g: i for i, g in enumerate(vocab)})
        x = vec.transform(texts)
    return normalize(x.astype(np.float32)), list(vocab)


def train_clause_model(examples: Sequence[ClauseExample], x, opts: TrainOptions | None = None,
                       version: str = "1", feature: str = FEATURE, vocab: Sequence[str] = ()) -> tuple[ClauseModel, dict]:
    """Fit every head on `examples` (rows of `x`, dense or sparse, are their features); returns the model and a
    training report."""
    opts = opts or TrainOptions()
    groups_all = np.array([e.group for e in examples])
    fams = families(examples)
    weights, biases, thresholds, report = [], [], [], {}
    for fam in fams:
        rows, y = binary_targets(examples, fam)
        oof = out_of_fold(x[rows], y, groups_all[rows], opts)
        thr = choose_threshold(y, oof, opts.min_precision)
        clf = _fit(x[rows], y, opts.c, opts.seed)
        weights.append(np.asarray(clf.coef_[0]).ravel())
        biases.append(clf.intercept_[0])
        thresholds.append(thr)
        hit = oof >= thr
        report[fam] = {"n": int(len(y)), "positives": int(y.sum()), "threshold": round(thr, 4),
                       "oof_precision": round(float(y[hit].mean()) if hit.any() else 0.0, 4),
                       "oof_recall": round(float(hit[y == 1].mean()) if y.any() else 0.0, 4)}
    reply_rows = [i for i, e in enumerate(examples) if e.family == REPLY_FAMILY]
    reply_types: tuple[str, ...] = ()
    rw = np.zeros((0, x.shape[1]), dtype=np.float32)
    rb = np.zeros(0, dtype=np.float32)
    if reply_rows:
        from sklearn.linear_model import LogisticRegression

        labels = [examples[i].label for i in reply_rows]
        reply_types = tuple(t for t in REPLY_TYPES if t in set(labels))
        y = np.array([reply_types.index(lab) for lab in labels])
        clf = LogisticRegression(C=opts.c, class_weight="balanced", max_iter=2000, random_state=opts.seed)
        clf.fit(x[reply_rows], y)
        rw, rb = np.asarray(clf.coef_, dtype=np.float32), clf.intercept_.astype(np.float32)
        if len(reply_types) == 2:  # sklearn's binary model has one row: softmax over [0, z] is its sigmoid
            rw, rb = np.vstack([np.zeros_like(rw), rw]), np.concatenate([np.zeros_like(rb), rb])
        report[REPLY_FAMILY] = {"n": len(reply_rows)}
    model = ClauseModel(
        families=tuple(fams), weight=np.array(weights, dtype=np.float32), bias=np.array(biases, dtype=np.float32),
        threshold=np.array(thresholds, dtype=np.float32), reply_types=reply_types, reply_weight=rw,
        reply_bias=rb, feature=feature, version=version, vocab=tuple(vocab),
    )
    return model, report
