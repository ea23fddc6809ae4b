"""Signals that the collection answers a question, read off one search and the top paper's sentences.

Each is a plain function of what retrieval already computed (no model call), so the answerability decision costs
microseconds on top of the search. Why these: one cosine between the question and one sentence decided before,
and it failed both ways. Paraphrased lookups match a whole contribution, not one sentence (`dense_top`).
Out-of-collection near-misses match a neighbouring topic but miss its rare or named terms (`unseen_terms`,
`unseen_names`), and dense encoders blur exactly those terms. A question about a paper that is there but asking
what it does not cover names a setting or attribute the paper lacks (`missing_idf`), which a lookup, paraphrasing
away from its paper's words, must not be held to (`asks_for_paper`). A paraphrase can replace words but not names:
a dataset, model or benchmark that the collection knows but the top paper never mentions says the question is about
another paper or a setting this one does not cover, whichever way the question is asked (`names_missing`). A figure
question whose paper gives no figure is a known miss of its own (`figure_missing`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from paper_agent.lexical import LexicalIndex
from paper_agent.types import PaperHit
from paper_agent.verify import asks_for_figure, gives_new_figure

# The model's inputs, in order; `agent/answerability.json` stores a coefficient for each.
# Each signal's direction is part of its meaning: `paper-agent calibrate` checks every fitted coefficient against it.
# Tried on the development set and not used: the margin between the first two papers and whether dense and lexical
# search agree on the first (coefficients against their meaning once dense_top was in: they restate it); the best
# sentence's cosine and the IDF-weighted term coverage (coefficients near 0 beside dense_top and missing_idf).
DIRECTION = {  # +1: a higher value means more likely answerable; -1: less; 0: no direction (a question's form)
    "dense_top": 1,
    "missing_idf": -1,
    "unseen_terms": -1,
    "unseen_names": -1,
    "names_missing": -1,
    "asks_for_paper": 0,
    "figure_missing": -1,
}
FEATURES: dict[str, str] = {
    "dense_top": "search-model cosine of the question to the top paper's best chunk",
    "missing_idf": "IDF of the two rarest question terms that the collection has but the top paper lacks, summed "
    "(0 for a question asking for a paper)",
    "unseen_terms": "IDF-weighted share of the question's terms that no chunk of the collection contains",
    "unseen_names": "named terms of the question (acronyms, CamelCase, letters+digits, capitalised words after the "
    "first) that no chunk contains",
    "names_missing": "IDF of the question's named terms that the collection has but the top paper lacks, summed "
    "(each name by its rarest missing term)",
    "asks_for_paper": "1 when the question asks for a paper (which method..., is there..., how can one...), else 0",
    "figure_missing": "1 when the question asks for a quantity and none of the top paper's closest sentences gives one",
}

# A named term: a word with an inner capital (LoRA, DINOv2, ViT), letters and digits together (GPT-4, T5, A100), an
# all-capital acronym, or a capitalised word after the first (Medusa, Hyena). Capitalised English words ("Transformer",
# "Chinese") are in the collection anyway, so only a name the collection never mentions counts against a question.
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-./+]*[A-Za-z0-9+]|[A-Za-z0-9]")
_NAME = re.compile(r"[a-z0-9].*[A-Z]|[A-Z]{2,}|^[A-Z]|(?=.*[A-Za-z])(?=.*\d)")
# "proposes Medusa", "introduced SwAV's", "a method called Hyena": the name a paper gives what it contributes.
_INTRODUCES = re.compile(
    r"\b(?:propos|introduc|present|describ|releas|call|nam|dub|coin)\w*\s+(?:the\s+|a\s+|an\s+)?([A-Z][\w\-.+]*)"
)
FIGURE_SENTENCES = 3  # how many of the top paper's closest sentences may give the figure a question asks for
MISSING_TERMS = 2  # the rarest missing terms `missing_idf` sums: a swapped setting or attribute is one or two words

# A question that asks for a paper rather than about one: "Which <few words> method/model/...", "Is there ...",
# "Has anyone ...", "How can one ...". A near-miss about a paper that is in the collection (a figure its abstract
# does not give, a setting it does not cover, a false premise) asks about one; the decision weighs lexical misses
# differently for the two, since a lookup paraphrases away from the paper's words and a detail question does not.
_PAPER_NOUN = (
    r"(?:papers?|works?|stud(?:y|ies)|methods?|models?|approach(?:es)?|techniques?|frameworks?|systems?|algorithms?"
    r"|optimizers?|detectors?|architectures?|benchmarks?|datasets?|librar(?:y|ies)|toolkits?|recipes?|schemes?"
    r"|variants?|write-ups?|articles?|publications?|entr(?:y|ies)|objectives?|encoders?|generators?|transformers?"
    r"|networks?|estimators?|procedures?|strateg(?:y|ies)|platforms?|pipelines?|famil(?:y|ies)|follow-ups?)"
)
_ASKS_FOR_PAPER = re.compile(
    r"^(?:which|what)\s+(?:[\w'/-]+\s+){0,5}?" + _PAPER_NOUN + r"\b"
    r"|^(?:is|are) there\b|^(?:has|have) (?:anyone|anybody|someone|a|any)\b"
    r"|^(?:where can|i'm looking|i am looking|looking for|i need|i want|i recall|i half|find)\b"
    r"|^(?:papers?|study|work|research)\b|^how (?:can|could|do|does|would|should) (?:one|i|we|you)\b"
    r"|^(?:can|could|do|does|did) \w+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Evidence:
    """What the signals read: the top paper, its text, and its sentences scored."""

    top: PaperHit
    top_text: str  # title and text of the top paper
    sentences: Sequence[str]  # the top paper's sentences shown to the answer stage
    sentence_scores: Sequence[float]  # their cosines to the question


def named_terms(question: str) -> list[str]:
    """The question's named terms, as written (`LoRA`, `GPT-4`, `Medusa`); its first word is not a name."""
    return [w for w in _WORD.findall(question)[1:] if _NAME.search(w)]


def idf(df: int, n: int) -> float:
    """BM25's (Lucene's) inverse document frequency of a term in `df` of `n` chunks."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def term_coverage(question: str, paper_text: str, lexical: LexicalIndex) -> float:
    """IDF-weighted share of the question's indexed terms (analysed as BM25 does) that `paper_text` contains."""
    n = len(lexical)
    weights = {t: idf(df, n) for t in set(lexical.analyze(question)) if (df := lexical.document_frequency(t))}
    total = sum(weights.values())
    if total == 0:
        return 0.0
    present = set(lexical.analyze(paper_text))
    return sum(w for t, w in weights.items() if t in present) / total


def missing_idf(question: str, paper_text: str, lexical: LexicalIndex) -> float:
    """IDF of the rarest question terms that occur in the collection but not in `paper_text`, summed (at most
    MISSING_TERMS of them): a benchmark, setting or attribute the question asks about that this paper never names."""
    n = len(lexical)
    present = set(lexical.analyze(paper_text))
    weights = sorted(
        (
            idf(df, n)
            for t in set(lexical.analyze(question))
            if t not in present and (df := lexical.document_frequency(t))
        ),
        reverse=True,
    )
    return sum(weights[:MISSING_TERMS])


def asks_for_paper(question: str) -> bool:
    """Whether the question asks which paper does something, rather than about a paper it identifies."""
    return bool(_ASKS_FOR_PAPER.search(question.strip()))


def unseen_terms(question: str, lexical: LexicalIndex) -> float:
    """IDF-weighted share of the question's analysed terms that no chunk contains (a word the collection never
    uses weighs most): one unseen word of a four-word question matters more than one of fifteen."""
    n = len(lexical)
    weights = {t: idf(lexical.document_frequency(t), n) for t in set(lexical.analyze(question))}
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if lexical.document_frequency(t) == 0) / total if total else 0.0


def absent_names(question: str, lexical: LexicalIndex) -> list[str]:
    """The question's named terms that the collection never mentions (one of their analysed terms is in no chunk)."""
    return [t for t in named_terms(question) if any(lexical.document_frequency(w) == 0 for w in lexical.analyze(t))]


def names_lacking(question: str, paper_text: str, lexical: LexicalIndex) -> dict[str, float]:
    """The question's named terms that the collection mentions but `paper_text` does not, each with the IDF of its
    rarest term the paper lacks (a name the whole collection lacks is `absent_names`'s, not this)."""
    n = len(lexical)
    present = set(lexical.analyze(paper_text))
    lacking = {}
    for name in named_terms(question):
        terms = lexical.analyze(name)
        missing = [t for t in terms if t not in present]
        if missing and all(lexical.document_frequency(t) for t in terms):
            lacking[name] = max(idf(lexical.document_frequency(t), n) for t in missing)
    return lacking


def introduced_absent(question: str, lexical: LexicalIndex) -> list[str]:
    """Names the question asks about as what a paper proposes, introduces or calls something ("which paper
    introduced ControlNet"), when the collection never mentions them: a paper that introduces a name writes it,
    so the paper asked for is not in the collection."""
    absent = set(absent_names(question, lexical))
    return [name for name in _INTRODUCES.findall(question) if name in absent]


def figure_missing(question: str, sentences: Sequence[str], scores: Sequence[float]) -> bool:
    """A quantity question whose closest sentences give no figure beyond those the question states."""
    if not asks_for_figure(question):
        return False
    closest = sorted(zip(scores, sentences), reverse=True)[:FIGURE_SENTENCES]
    return not any(gives_new_figure(s, question) for _, s in closest)


def signals(question: str, evidence: Evidence, lexical: LexicalIndex) -> dict[str, float]:
    """Every signal in FEATURES, for the top paper."""
    top = evidence.top
    # A lookup paraphrases away from its paper's words, so words the paper lacks say nothing against it; a question
    # about a paper uses the paper's words, and the ones it lacks are often the point (a setting it never covers).
    about_a_paper = not asks_for_paper(question)
    return {
        "dense_top": top.dense or 0.0,
        "missing_idf": missing_idf(question, evidence.top_text, lexical) if about_a_paper else 0.0,
        "unseen_terms": unseen_terms(question, lexical),
        "unseen_names": float(len(absent_names(question, lexical))),
        "names_missing": sum(names_lacking(question, evidence.top_text, lexical).values()),
        "asks_for_paper": float(not about_a_paper),
        "figure_missing": float(figure_missing(question, evidence.sentences, evidence.sentence_scores)),
    }
