"""Fit the answerability model on the development set and write it where the package loads it.

`paper-agent calibrate` runs the real search and sentence scoring on every development question (no model server:
the signals need none), fits a logistic regression on the standardised signals (L2, C chosen by grouped
cross-validation, so questions about one paper never sit on both sides of a split), picks the threshold that
maximises utility on the out-of-fold probabilities (+1 an answer citing a gold paper, 0 a refusal, -1 any other
answer: a confident wrong answer is the worst outcome, a refusal the second worst), and writes the coefficients,
the signals' definitions, the threshold and the development set's SHA-256 to agent/answerability.json.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from paper_agent.decide import Calibration, choose, read_signals
from paper_agent.eval.dataset import Question
from paper_agent.service import PaperAgent
from paper_agent.signals import DIRECTION, FEATURES, introduced_absent

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
FOLDS = 5
REPEATS = 5


@dataclass(frozen=True)
class Row:
    """One development question as the decision sees it."""

    question: Question
    signals: dict[str, float]
    gold_first: bool  # the top-ranked paper is a gold paper
    gold_chosen: bool  # a paper the decision would name is a gold paper
    ruled_out: bool = False  # refused by rule whatever the model says (`signals.introduced_absent`)

    @property
    def label(self) -> int:
        return int(self.question.answerable)


def collect(agent: PaperAgent, questions: Sequence[Question], progress: bool = True) -> list[Row]:
    """Search, score and read the signals of every question."""
    rows = []
    settings = agent.settings.answer
    for q in tqdm(questions, desc="signals", unit="q", disable=not progress):
        hits, sources = agent.evidence(q.question)
        values = read_signals(q.question, hits, sources, agent.lexical) if hits else dict.fromkeys(FEATURES, 0.0)
        chosen = {c.hit.paper_id for c in choose(q.question, hits, sources, agent.lexical, settings)} if hits else set()
        gold = set(q.gold_ids)
        ruled_out = bool(introduced_absent(q.question, agent.lexical))
        rows.append(Row(q, values, bool(hits) and hits[0].paper_id in gold, bool(chosen & gold), ruled_out))
    return rows


def matrix(rows: Sequence[Row], features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([[r.signals[f] for f in features] for r in rows]), np.array([r.label for r in rows])


def out_of_fold(rows: Sequence[Row], features: Sequence[str], c: float, seed: int) -> np.ndarray:
    """Each question's probability from a model fitted without its group (grouped k-fold, shuffled by `seed`)."""
    from sklearn.model_selection import GroupKFold

    x, y = matrix(rows, features)
    groups = np.array([r.question.group for r in rows])
    p = np.zeros(len(rows))
    for train, test in GroupKFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(x, y, groups):
        p[test] = _fit(x[train], y[train], c).predict_proba(x[test])[:, 1]
    return p


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(x, y)


def utility(rows: Sequence[Row], p: np.ndarray, threshold: float) -> float:
    """Mean of +1 (answered, citing a gold paper), 0 (refused), -1 (answered otherwise) over the questions."""
    total = 0
    for r, score in zip(rows, p):
        if score < threshold or r.ruled_out:
            continue
        total += 1 if r.gold_chosen else -1
    return total / len(rows)


def best_threshold(rows: Sequence[Row], p: np.ndarray) -> float:
    """The threshold of highest utility; among equals, the middle one (the least sensitive to a shifted score)."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    values = np.array([utility(rows, p, t) for t in grid])
    best = np.flatnonzero(values >= values.max() - 1e-9)
    return float(grid[best[len(best) // 2]])


def calibrate(rows: Sequence[Row], features: Sequence[str] = tuple(FEATURES)) -> tuple[Calibration, dict[str, Any]]:
    """The fitted model and what cross-validation measured of it."""
    from sklearn.metrics import roc_auc_score

    x, y = matrix(rows, features)
    aucs = {c: np.mean([roc_auc_score(y, out_of_fold(rows, features, c, s)) for s in range(REPEATS)]) for c in C_GRID}
    c = max(aucs, key=lambda k: aucs[k])
    p = np.mean([out_of_fold(rows, features, c, s) for s in range(REPEATS)], axis=0)
    threshold = best_threshold(rows, p)
    model = _fit(x, y, c)
    scaler, logistic = model.named_steps["standardscaler"], model.named_steps["logisticregression"]
    report = {
        "c": c,
        "cv_auc_by_c": {str(k): round(float(v), 4) for k, v in aucs.items()},
        "cv_auc": round(float(roc_auc_score(y, p)), 4),
        "single_signal_auc": {f: round(float(roc_auc_score(y, x[:, i])), 4) for i, f in enumerate(features)},
        "threshold": threshold,
        "cv_utility": round(utility(rows, p, threshold), 4),
        "cv_outcomes": outcomes(rows, p, threshold),
        "coefficients": _coefficients(rows, features, c, model.named_steps["logisticregression"].coef_[0]),
    }
    calibration = Calibration(
        tuple(features),
        tuple(float(v) for v in scaler.mean_),
        tuple(float(v) for v in scaler.scale_),
        tuple(float(v) for v in logistic.coef_[0]),
        float(logistic.intercept_[0]),
        threshold,
    )
    return calibration, report


def _coefficients(rows: Sequence[Row], features: Sequence[str], c: float, fitted: np.ndarray) -> dict[str, Any]:
    """Each coefficient, whether it points the way its signal's meaning says (agent.signals.DIRECTION), and whether
    it keeps its sign across the folds' models: one that fails either is fitting noise or a confound."""
    from sklearn.model_selection import GroupKFold

    x, y = matrix(rows, features)
    groups = np.array([r.question.group for r in rows])
    signs = [
        np.sign(_fit(x[train], y[train], c).named_steps["logisticregression"].coef_[0])
        for train, _ in GroupKFold(n_splits=FOLDS, shuffle=True, random_state=0).split(x, y, groups)
    ]
    return {
        f: {
            "value": round(float(fitted[i]), 4),
            "agrees_with_direction": None if DIRECTION[f] == 0 else bool(np.sign(fitted[i]) == DIRECTION[f]),
            "sign_stable_across_folds": bool(len({s[i] for s in signs}) == 1),
        }
        for i, f in enumerate(features)
    }


def outcomes(rows: Sequence[Row], p: Sequence[float], threshold: float) -> dict[str, dict[str, float]]:
    """By question type (and unanswerable kind): how often it is answered right, refused, and answered wrong."""
    by: dict[str, list[str]] = {}
    for r, score in zip(rows, p):
        answered = score >= threshold and not r.ruled_out
        result = "refused" if not answered else "right" if r.gold_chosen else "wrong"
        by.setdefault(r.question.type, []).append(result)
        if r.question.kind:
            by.setdefault(f"unanswerable/{r.question.kind}", []).append(result)
    return {
        k: {"n": len(v), **{o: round(v.count(o) / len(v), 3) for o in ("right", "refused", "wrong")}}
        for k, v in sorted(by.items())
    }


def write_calibration(calibration: Calibration, report: dict[str, Any], questions_path: Path, out: Path) -> None:
    meta = {
        "fitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "dev_set": {"path": questions_path.name, "sha256": hashlib.sha256(questions_path.read_bytes()).hexdigest()},
        "cross_validation": report,
    }
    record = Calibration(**{**calibration.__dict__, "meta": meta}).to_json()
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
