"""The nouns of the pipeline: Paper -> Chunk -> Passage -> Citation -> Answer."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


def paper_id_for(title: str) -> str:
    """Stable paper id: `p` + the first 8 hex digits of the SHA-1 of the exact title."""
    return "p" + hashlib.sha1(title.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    text: str  # the abstract, or the full text of a PDF
    source: str  # file the paper was read from
    authors: tuple[str, ...] = ()
    year: int | None = None
    url: str | None = None
    # For PDFs: (page number, character offset where that page starts in `text`), so chunks know their page.
    page_starts: tuple[tuple[int, int], ...] = ()

    def metadata(self) -> dict[str, Any]:
        """JSON-friendly description of the paper, without its text."""
        return {
            "paper_id": self.id,
            "title": self.title,
            "authors": list(self.authors),
            "year": self.year,
            "url": self.url,
            "source": self.source,
        }


@dataclass(frozen=True)
class Chunk:
    id: str  # `{paper_id}:{position}`, stable across re-ingests of the same text
    paper_id: str
    title: str
    position: int  # 0-based index of the chunk within its paper
    text: str
    page: int | None = None
    source: str = ""  # the file the paper was read from


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its score (higher is better)."""

    chunk_id: str
    paper_id: str
    title: str
    text: str
    score: float
    position: int = 0
    page: int | None = None


@dataclass(frozen=True)
class PaperHit:
    """A paper ranked by a search, with the passages that matched it best first."""

    paper_id: str
    title: str
    score: float
    passages: tuple[Passage, ...] = ()
    relevance: float | None = None  # the reranker's P(relevant), when it judged this paper; `score` stays the search's
    # Each retriever's own best-chunk score for the paper (dense: cosine; lexical: BM25), None when that retriever
    # did not return it: fused scores are relative to the other candidates, these are what the question matched.
    dense: float | None = None
    lexical: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "paper_id": self.paper_id,
            "title": self.title,
            "score": round(self.score, 6),
            "relevance": None if self.relevance is None else round(self.relevance, 6),
            "dense": None if self.dense is None else round(self.dense, 6),
            "lexical": None if self.lexical is None else round(self.lexical, 6),
            "passages": [asdict(p) for p in self.passages],
        }


@dataclass(frozen=True)
class Citation:
    number: int  # the [n] shown in the answer text
    paper_id: str
    title: str
    quote: str  # the sentence of the source that best supports the citing sentence(s)
    support: float  # verifier score in [0, 1]


@dataclass(frozen=True)
class PaperRef:
    """A paper named without being cited: the closest papers offered with a refusal."""

    paper_id: str
    title: str


@dataclass
class Answer:
    text: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    refused: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # retrieval_ms, ttft_ms, total_ms, ...
    verification: dict[str, Any] = field(default_factory=dict)
    question: str = ""  # the standalone question actually searched (after follow-up rewriting)
    answerability: float | None = None  # the decision's calibrated P(the collection answers it)
    closest: list[PaperRef] = field(default_factory=list)  # on a refusal: the papers nearest the question

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [asdict(c) for c in self.citations],
            "refused": self.refused,
            "answerability": None if self.answerability is None else round(self.answerability, 4),
            "closest": [asdict(p) for p in self.closest],
            "timings": self.timings,
            "verification": self.verification,
            "question": self.question,
            "passages": [asdict(p) for p in self.passages],
        }


# --- what `ask_stream` yields, in this order: Sources once, Delta many times, Final once ---------


@dataclass(frozen=True)
class Sources:
    """The retrieved passages, sent before the model's first token so the user sees them at once."""

    passages: tuple[Passage, ...]
    question: str  # the standalone question searched


@dataclass(frozen=True)
class Delta:
    """A piece of the model's raw reply as it streams (before verification)."""

    text: str


@dataclass(frozen=True)
class Final:
    """The verified answer: it replaces the streamed text."""

    answer: Answer


StreamEvent = Sources | Delta | Final
