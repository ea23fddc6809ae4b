"""Per-question metrics that need no model: retrieval by paper id, ALCE-style citation quality, latency percentiles.

Every function is pure and takes plain values, so each has known-answer unit tests (tests/unit/test_eval_metrics.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Entails = Callable[[str, str], bool]
"""`entails(premise, hypothesis)`: does the premise support the hypothesis?"""

# --- retrieval, by paper id ----------------------------------------------------------------------------


def hit_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """1.0 if any gold id is among the first `k` ranked ids, else 0.0."""
    return 1.0 if set(ranked[:k]) & set(gold) else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str], k: int = 10) -> float:
    """1/rank of the first gold id within the first `k` (0.0 if none): one term of MRR@k."""
    for rank, paper_id in enumerate(ranked[:k], start=1):
        if paper_id in gold:
            return 1.0 / rank
    return 0.0


def recall_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of the gold ids found among the first `k` ranked ids."""
    if not gold:
        raise ValueError("recall needs at least one gold id")
    return len(set(ranked[:k]) & set(gold)) / len(set(gold))


def retrieval_scores(ranked: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """hit@1, hit@5 and mrr@10 for single-gold questions; recall@10 for multi-gold; nothing for unanswerable."""
    if len(gold) == 1:
        return {
            "hit@1": hit_at(ranked, gold, 1),
            "hit@5": hit_at(ranked, gold, 5),
            "mrr@10": reciprocal_rank(ranked, gold),
        }
    if len(gold) > 1:
        return {"recall@10": recall_at(ranked, gold, 10)}
    return {}


# --- citations, in the sense of ALCE (Gao et al., 2023) ------------------------------------------------

# A sentence ends at . ! or ? (then any closing quote or bracket: answers quote their sources), then its citation
# markers, then space before the next sentence's first character.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?(?:\s*\[\d+(?:\s*,\s*\d+)*\])*\s+(?=[A-Z0-9\"'(])")
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*" + _MARKER.pattern)


def split_sentences(text: str) -> list[str]:
    """The answer's sentences; citation markers right after a full stop stay with the sentence before."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(0).rstrip())
        sentences.append(text[start:end].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def cited_numbers(sentence: str) -> list[int]:
    """The citation numbers in a sentence, in order of first appearance (`[1]`, `[2, 3]`, `[1][4]`)."""
    numbers: list[int] = []
    for group in _MARKER.findall(sentence):
        for part in group.split(","):
            n = int(part)
            if n not in numbers:
                numbers.append(n)
    return numbers


def strip_markers(text: str) -> str:
    """The text without its citation markers (and the space before each)."""
    return _MARKER_WITH_SPACE.sub("", text).strip()


@dataclass(frozen=True)
class CitationScores:
    recall: float  # share of sentences that cite, and are supported by what they cite jointly
    precision: float | None  # share of citations that are needed (None: the answer cites nothing)
    sentences: int
    citations: int


def citation_scores(text: str, sources: dict[int, str], entails: Entails) -> CitationScores:
    """ALCE citation recall and precision of an answer whose sentences cite `[n]`, with `sources[n]` the cited text.

    Recall: a sentence counts if it cites something and the concatenation of its cited sources entails it.
    Precision: a citation counts if its sentence is supported jointly and the citation is not redundant, i.e.
    it supports the sentence alone, or the other citations without it do not.
    """
    sentences = split_sentences(text)
    supported = relevant = total = 0
    for sentence in sentences:
        cited = [n for n in cited_numbers(sentence) if n in sources]
        claim = strip_markers(sentence)
        total += len(cited)
        if not cited or not entails(_joined(sources, cited), claim):
            continue
        supported += 1
        if len(cited) == 1:
            relevant += 1
            continue
        for n in cited:
            others = [m for m in cited if m != n]
            if entails(sources[n], claim) or not entails(_joined(sources, others), claim):
                relevant += 1
    return CitationScores(
        recall=supported / len(sentences) if sentences else 0.0,
        precision=relevant / total if total else None,
        sentences=len(sentences),
        citations=total,
    )


def _joined(sources: dict[int, str], numbers: Sequence[int]) -> str:
    return "\n".join(sources[n] for n in numbers)


# --- latency ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
