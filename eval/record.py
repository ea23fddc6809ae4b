"""One question's result: what the pipeline did and how it scored. One line of `results.jsonl`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Record:
    id: str
    type: str
    question: str
    gold_ids: list[str]
    mode: str
    reference_answer: str = ""
    kind: str = ""  # the kind of an unanswerable question, when labelled
    gold_sentences: list[str] = field(default_factory=list)
    retrieved_ids: list[str] = field(default_factory=list)  # the top 10 papers, best first
    retrieved: list[dict[str, Any]] = field(default_factory=list)  # the top retrieve.top_k: id, title, best passage
    answer: str | None = None  # None: retrieval-only run, or `ask` failed (see `error`)
    refused: bool | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    answerability: float | None = None  # the decision's calibrated score
    decision: str | None = None  # why the decision answered or refused
    answer_contexts: list[dict[str, Any]] = field(default_factory=list)  # the passages the model was shown
    timings: dict[str, float] = field(default_factory=dict)  # retrieval_ms, answer_ms, and the answer's own
    scores: dict[str, float] = field(default_factory=dict)  # metric -> value, only metrics that apply
    failures: dict[str, str] = field(default_factory=dict)  # metric -> why no value (timeout, unparseable, ...)
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
