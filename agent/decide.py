"""The answerability decision: is the question answered by the collection, by which papers, with which sentences?

One stage with one typed result (`Decision`) that the answer stage, the API and the evaluation all read. It runs
after retrieval and before the model, so a refusal never waits for a model and a quote never comes from a paper the
decision rejected:

1. A question asking for the paper that introduces a name no paper mentions ("which paper proposes Medusa") is
   refused by rule. Otherwise the signals (agent/signals.py) go through a logistic model fitted on the development
   set by `paper-agent calibrate` (agent/answerability.json); below `answer.min_answerability`: refuse, saying why
   (which named terms, if any, no paper mentions, or the closest paper does not).
2. Otherwise the top paper is chosen, with every other paper within `answer.close_margin` of it (a question about
   several papers, or two papers too close to call, names them all, ranked), each with the sentences that answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from paper_agent.errors import AgentError
from paper_agent.lexical import LexicalIndex
from paper_agent.settings import AnswerSettings
from paper_agent.signals import (
    FEATURES,
    Evidence,
    absent_names,
    asks_for_paper,
    introduced_absent,
    names_lacking,
    signals,
    term_coverage,
)
from paper_agent.sources import Source
from paper_agent.types import PaperHit, Passage
from paper_agent.verify import asks_for_figure, gives_new_figure

CALIBRATION = "answerability.json"
QUOTED = 2  # sentences quoted from each chosen paper: on the development set (scored by cosine alone, best chunk
# only) the best sentence was a labelled answering one for 48% of questions and the best two for 69%

# A sentence stating the paper's own contribution: "we propose/present/introduce/develop/design ...", "this paper
# presents ...", "in this work, we ...", "here we ...". An abstract names what it contributes in such a sentence
# (the cue phrases of argumentative zoning's "own contribution" move), and a question asking *for* a paper is asking
# for exactly that; a sentence that is merely *about* the question's topic (motivation, background, the problem)
# is closer to it by cosine and terms, so the ranking alone quotes the problem and misses the answer.
_CONTRIBUTION = re.compile(
    r"\b(?:we|this (?:paper|work|study|article)|our (?:paper|work|method|approach))\b(?:\s+\w+){0,3}?\s+"
    r"(?:propose|present|introduce|develop|design|devise|call|term|dub)\w*\b"
    r"|\b(?:in this (?:paper|work|study)|here)\s*,?\s*we\b",
    re.IGNORECASE,
)

# "Which papers ...", "what works ...", "how do they differ": a question that asks for several papers.
_SEVERAL = re.compile(
    r"\b(?:papers|works|studies|approaches|methods|articles|publications)\b|\bhow do (?:they|these|the two) differ\b"
    r"|\bcompare\b|\bwhich (?:two|three|several)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Calibration:
    """A logistic model over standardised signals: p = sigmoid(intercept + coef . (x - mean) / scale)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # the threshold chosen with it on the development set (the settings' default)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def probability(self, values: dict[str, float]) -> float:
        z = self.intercept + sum(
            c * (values[f] - m) / s for f, m, s, c in zip(self.features, self.mean, self.scale, self.coef)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "definitions": {f: FEATURES[f] for f in self.features},
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "threshold": self.threshold,
            **self.meta,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Calibration:
        features = tuple(record["features"])
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown signals {unknown}: this code computes {sorted(FEATURES)}")
        keys = ("features", "definitions", "mean", "scale", "coef", "intercept", "threshold")
        return cls(
            features,
            tuple(map(float, record["mean"])),
            tuple(map(float, record["scale"])),
            tuple(map(float, record["coef"])),
            float(record["intercept"]),
            float(record["threshold"]),
            {k: v for k, v in record.items() if k not in keys},
        )


@lru_cache(maxsize=4)
def load_calibration(path: Path | None = None) -> Calibration:
    """The calibrated model at `path`, or the one the package ships (agent/answerability.json)."""
    try:
        text = (
            path.read_text("utf-8") if path else resources.files("paper_agent").joinpath(CALIBRATION).read_text("utf-8")
        )
        return Calibration.from_json(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AgentError(f"answerability calibration {path or CALIBRATION}: {err}") from err


@dataclass(frozen=True)
class Chosen:
    """A paper the answer may cite, with the sentences of it that best answer the question."""

    hit: PaperHit
    source: Source
    sentences: tuple[str, ...]  # in passage order


@dataclass(frozen=True)
class Decision:
    answerable: bool
    score: float  # P(answerable) from the calibrated model; 0 when nothing was found or a rule refused the question
    threshold: float
    reason: str
    chosen: tuple[Chosen, ...] = ()  # the papers the answer may cite, best first; empty when refused
    closest: tuple[PaperHit, ...] = ()  # the top papers, offered on a refusal as "closest in the collection"
    signals: dict[str, float] = field(default_factory=dict)

    @property
    def passages(self) -> list[Passage]:
        """The best passage of each closest paper: what the answer shows as looked at."""
        return [h.passages[0] for h in self.closest if h.passages]

    def to_json(self) -> dict[str, Any]:
        return {
            "answerable": self.answerable,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "reason": self.reason,
            "chosen": [
                {"paper_id": c.hit.paper_id, "title": c.hit.title, "sentences": c.sentences} for c in self.chosen
            ],
            "closest": [{"paper_id": h.paper_id, "title": h.title} for h in self.closest],
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
        }


def asks_for_several(question: str) -> bool:
    """Whether the question asks about several papers ("which papers ...", "how do they differ")."""
    return bool(_SEVERAL.search(question))


def states_contribution(sentence: str) -> bool:
    """Whether the sentence states the paper's own contribution ("we propose ...", "in this work, we ...")."""
    return bool(_CONTRIBUTION.search(sentence))


def answering_sentences(
    question: str, sentences: Sequence[str], scores: Sequence[float], lexical: LexicalIndex
) -> tuple[str, ...] | None:
    """The QUOTED sentences that best answer the question, in passage order; for a quantity question the best must
    give a new figure (None when none does). A sentence scores its cosine to the
    question plus the IDF-weighted share of the question's terms it contains: the cosine alone prefers a sentence
    that is about the same thing, the terms one that says the thing asked. A question that asks for a paper is
    answered by what the paper contributes: when none of the picks states it, the best-scoring sentence that does
    takes the last place."""
    ranked = sorted(
        (
            (cosine + term_coverage(question, sentence, lexical), i)
            for i, (sentence, cosine) in enumerate(zip(sentences, scores))
        ),
        reverse=True,
    )
    need_figure = asks_for_figure(question)
    best = next((r for r in ranked if not need_figure or gives_new_figure(sentences[r[1]], question)), None)
    if best is None:
        return None
    picked = [best[1], *(i for _, i in ranked if i != best[1])][:QUOTED]
    if asks_for_paper(question) and not any(states_contribution(sentences[i]) for i in picked):
        contribution = next((i for _, i in ranked if states_contribution(sentences[i])), None)
        if contribution is not None:
            picked[-1] = contribution
    return tuple(sentences[i] for i in sorted(picked))


def decide(
    question: str,
    hits: Sequence[PaperHit],
    sources: Sequence[Source],
    lexical: LexicalIndex,
    calibration: Calibration,
    settings: AnswerSettings,
) -> Decision:
    """Answer or refuse, and with which papers and sentences. `hits` is the search's ranking, best first;
    `sources[i]` holds the sentences of `hits[i]`'s matched chunks, scored against the question."""
    threshold = calibration.threshold if settings.min_answerability is None else settings.min_answerability
    closest = tuple(hits[: settings.max_passages])
    if not hits or not sources:
        return Decision(False, 0.0, threshold, "the search found no paper")
    evidence = top_evidence(hits, sources)
    values = signals(question, evidence, lexical)
    score = calibration.probability(values)
    introduced = introduced_absent(question, lexical)
    if introduced:  # a rule, not a weight: the paper that introduces a name writes it, and no paper here does
        reason = (
            f"the question asks for the paper that introduces {', '.join(introduced)}, which no paper mentions "
            f"(the model alone: answerability {score:.2f})"
        )
        return Decision(False, 0.0, threshold, reason, closest=closest, signals=values)
    if score < threshold:
        missing = absent_names(question, lexical)
        reason = f"answerability {score:.2f} is below {threshold}"
        if missing:
            reason += f"; no paper in the collection mentions {', '.join(missing)}"
        lacking = names_lacking(question, evidence.top_text, lexical)
        if lacking:
            reason += f"; the closest paper does not mention {', '.join(lacking)}"
        return Decision(False, score, threshold, reason, closest=closest, signals=values)
    chosen = choose(question, hits, sources, lexical, settings)
    if not chosen:
        reason = "the question asks for a figure that the matching papers do not give"
        return Decision(False, score, threshold, reason, closest=closest, signals=values)
    return Decision(True, score, threshold, "answerable", tuple(chosen), closest, values)


def read_signals(
    question: str, hits: Sequence[PaperHit], sources: Sequence[Source], lexical: LexicalIndex
) -> dict[str, float]:
    """The signals of agent/signals.py for the top paper (`hits` and `sources` as `decide` takes them)."""
    return signals(question, top_evidence(hits, sources), lexical)


def top_evidence(hits: Sequence[PaperHit], sources: Sequence[Source]) -> Evidence:
    """What the signals read of the top paper: its title and matched text, and its sentences scored."""
    top, first = hits[0], sources[0]
    return Evidence(top, f"{top.title} {first.passage.text}", first.sentences, first.sentence_scores)


def choose(
    question: str, hits: Sequence[PaperHit], sources: Sequence[Source], lexical: LexicalIndex, settings: AnswerSettings
) -> list[Chosen]:
    """The top paper and every other paper within `close_margin` of its hybrid score, each with its answering
    sentences (`several_margin` for a question about several papers)."""
    margin = settings.several_margin if asks_for_several(question) else settings.close_margin
    chosen = []
    for hit, source in zip(hits, sources):
        if hits[0].score - hit.score > margin:
            break
        found = answering_sentences(question, source.sentences, source.sentence_scores, lexical)
        if found is not None:
            chosen.append(Chosen(hit, source, found))
    return chosen
