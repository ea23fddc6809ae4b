"""Is a sentence of an answer backed by the passage it cites? Lexical support, with figures checked exactly.

A sentence's support is the share of its content words (stop-words removed, light stemming) that occur in the
cited passage (title + text). Any figure in the sentence that the passage does not contain sets the support
to 0: a made-up number is the most harmful thing a small model writes, and overlap alone would hide it.
`bench/calibrate_support.py` measures this score on the public set (reference-answer sentences against
their gold paper vs. against the best-ranked other paper) and picks `answer.min_support` from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Sentence ends: ., ! or ? then space and something that starts a sentence. "e.g. the" / "et al. (2020)"
# stay whole because the next word must start with a capital, a digit, a quote or a bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "vs.", "Fig.", "Eq.", "cf.", "approx.", "resp.")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)*[a-z]*")

STOP_WORDS = frozenset(
    """a about above after again against all also an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else few for from further had
    has have having he her here hers him his how however i if in into is it its itself just may me might more
    most much must my neither no nor not now of off on once only or other our ours out over own per same she
    should so some such than that the their theirs them then there these they this those through thus to too
    under until up upon us very via was we were what when where whether which while who whom whose why will
    with within without would yet you your based using use used uses given show shows shown paper papers work
    works study studies propose proposes proposed approach method methods new answer question source sources
    provided according collection""".split()  # noqa: SIM905  (a word list reads better as prose)
)


@dataclass(frozen=True)
class Support:
    """How well one source backs one sentence."""

    score: float  # in [0, 1]
    quote: str  # the source sentence that best matches the citing sentence
    missing_figures: tuple[str, ...] = ()  # figures in the sentence that the source lacks


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace-normalised."""
    flat = " ".join(text.split())
    pieces = [p.strip() for p in _SENTENCE_END.split(flat) if p.strip()]
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(_ABBREVIATIONS):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def _stem(word: str) -> str:
    """Plural and third-person `s` off, so "models" meets "model"; digits untouched."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) and word.isalpha():
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words of `text` that carry meaning (no stop-words, no single letters)."""
    words = _TOKEN.findall(_THOUSANDS.sub("", text.lower()))
    return {_stem(w) for w in words if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())}


def figures(words: set[str]) -> set[str]:
    """The numbers among `words`, unit letters dropped: "77" -> "77", "3.5x" -> "3.5", "43b" -> "43"; "f1" is a name."""
    return {w.rstrip("abcdefghijklmnopqrstuvwxyz") for w in words if w[0].isdigit()}


def overlap(words: set[str], reference: set[str]) -> float:
    """Share of `words` found in `reference` (containment); 0 for an empty `words`."""
    return len(words & reference) / len(words) if words else 0.0


def best_sentence(sentence: str, candidates: list[str]) -> tuple[str, float]:
    """The candidate sentence sharing the most content words with `sentence`, and that share."""
    words = content_words(sentence)
    scored = [(overlap(words, content_words(c)), -i, c) for i, c in enumerate(candidates)]
    if not scored:
        return "", 0.0
    share, _, quote = max(scored)
    return quote, share


def support(sentence: str, title: str, text: str) -> Support:
    """How well the source (`title` + `text`) backs `sentence` (citation markers already removed)."""
    words = content_words(sentence)
    source_words = content_words(f"{title} {text}")
    quote, _ = best_sentence(sentence, split_sentences(text))
    missing = tuple(sorted(figures(words) - figures(source_words)))
    score = 0.0 if missing else overlap(words, source_words)
    return Support(score=score, quote=quote, missing_figures=missing)


def adds_to(sentence: str, question: str, least_new: int = 2) -> bool:
    """Whether `sentence` says something beyond restating `question` (at least `least_new` new content words)."""
    return len(content_words(sentence) - content_words(question)) >= least_new


# Questions that ask for a quantity ("how many", "what accuracy", "by what factor"): only a sentence that gives a
# figure the question does not already contain answers them. On the public set this matches every detail question
# that wants a number and no lookup; an answer-type check like this is what keeps a supported but off-target
# sentence ("GottBERT is a German RoBERTa model [1]") from passing for "what batch size did GottBERT use?".
_FIGURE_QUESTION = re.compile(
    r"\bhow (?:much|many|large|long|fast|big|often)\b|\bby (?:how much|how many|what factor)\b"
    r"|\bwhat (?:[\w-]+ ){0,3}?(?:accuracy|score|auc|f1|map|bleu|rate|size|percentage|speed-?up|improvement|gain"
    r"|error|factor|number)\b",
    re.IGNORECASE,
)


def asks_for_figure(question: str) -> bool:
    """Whether the question asks for a quantity, so that its answer must contain a figure."""
    return bool(_FIGURE_QUESTION.search(question))


def gives_new_figure(text: str, question: str) -> bool:
    """Whether `text` states a figure (number) that the question does not already contain."""
    return bool(figures(content_words(text)) - figures(content_words(question)))


@dataclass(frozen=True)
class Checked:
    """The verdict on one sentence of a reply."""

    text: str
    status: str  # supported | reattributed | attributed | unsupported | restates the question
    cited: tuple[int, ...]  # source numbers that support it (empty unless kept)
    support: float  # best support among `cited` (or among all sources when not kept)
    quotes: dict[int, str]  # source number -> the sentence of that source that best matches this one
    invalid: tuple[int, ...] = ()  # cited numbers that were not among the sources given

    @property
    def kept(self) -> bool:
        return bool(self.cited)

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "status": self.status, "cited": list(self.cited), "support": round(self.support, 3)}


def check_sentence(
    text: str, numbers: tuple[int, ...], sources: dict[int, tuple[str, str]], question: str, min_support: float
) -> Checked:
    """Check `text` against the sources it cites (`numbers`); a sentence they do not support but another source
    does is attributed to that one instead, so a weak model's wrong or missing citation does not lose a true
    sentence. `sources` maps each given number to (title, text)."""
    invalid = tuple(n for n in numbers if n not in sources)
    valid = [n for n in numbers if n in sources]
    scored = {n: support(text, title, body) for n, (title, body) in sources.items()}
    quotes = {n: s.quote for n, s in scored.items()}
    best = max(scored, key=lambda n: scored[n].score, default=None)
    top = scored[best].score if best is not None else 0.0
    if not adds_to(text, question):
        return Checked(text, "restates the question", (), top, quotes, invalid)
    backing = tuple(n for n in valid if scored[n].score >= min_support)
    if backing:
        return Checked(text, "supported", backing, max(scored[n].score for n in backing), quotes, invalid)
    if best is not None and top >= min_support:
        status = "reattributed" if valid else "attributed"
        return Checked(text, status, (best,), top, quotes, invalid)
    return Checked(text, "unsupported", (), top, quotes, invalid)
