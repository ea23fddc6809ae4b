"""Question files: JSONL, one question a line, validated up front so a bad line is named before any work starts.

Fields (the public set's): `id`, `question`, `type` (lookup | detail | multi | unanswerable), `gold_ids` (paper ids
that answer it; empty = unanswerable), `gold_titles`, `reference_answer`. `type` may be left out and is then
inferred from the number of gold papers; `gold_titles` and `reference_answer` are optional. Optional labels:
`gold_sentences` (the abstract sentences that answer it, verbatim), and for an unanswerable question its `kind`
(named_absent | figure_absent | setting_absent | false_premise | neighbouring_topic) and `seed_ids` (the papers it
was written from).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, cast

from paper_agent.errors import BadFile

QuestionType = Literal["lookup", "detail", "multi", "unanswerable"]
QUESTION_TYPES: tuple[QuestionType, ...] = ("lookup", "detail", "multi", "unanswerable")
DATASETS = Path(str(files("paper_agent.eval"))) / "datasets"  # shipped in the wheel; pip installs unzipped
DEFAULT_QUESTIONS = DATASETS / "public.jsonl"
DEV_QUESTIONS = DATASETS / "dev.jsonl"


class BadQuestionFile(BadFile):
    """A question file, or one line of it, is not a valid question."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    type: QuestionType
    gold_ids: tuple[str, ...] = ()
    gold_titles: tuple[str, ...] = ()
    reference_answer: str = ""
    gold_sentences: tuple[str, ...] = ()
    kind: str = ""  # the kind of an unanswerable question, when labelled
    seed_ids: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.gold_ids)

    @property
    def group(self) -> str:
        """Questions about the same paper share a group, so cross-validation never splits them."""
        return (self.gold_ids or self.seed_ids or (self.id,))[0]


def load_questions(path: Path, limit: int | None = None) -> list[Question]:
    """The questions in a JSONL file, in file order (the first `limit` of them if given)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BadQuestionFile(path, f"cannot read: {err}") from err
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            q = parse_question(line)
        except ValueError as err:
            raise BadQuestionFile(path, str(err), number) from err
        if q.id in seen:
            raise BadQuestionFile(path, f"duplicate id {q.id!r}", number)
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise BadQuestionFile(path, "no questions")
    return questions[:limit] if limit is not None else questions


def parse_question(line: str) -> Question:
    """One JSONL line as a Question; ValueError names the field that is wrong."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from err
    if not isinstance(record, dict):
        raise ValueError("a question must be a JSON object")
    qid = _text(record, "id")
    gold_ids = _strings(record, "gold_ids", required=True)
    qtype = record.get("type") or _infer_type(gold_ids)
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"type: one of {', '.join(QUESTION_TYPES)}, got {qtype!r}")
    if (qtype == "unanswerable") != (not gold_ids):
        raise ValueError(f"question {qid}: gold_ids must be empty exactly when type is unanswerable")
    return Question(
        id=qid,
        question=_text(record, "question"),
        type=cast(QuestionType, qtype),
        gold_ids=gold_ids,
        gold_titles=_strings(record, "gold_titles", required=False),
        reference_answer=_text(record, "reference_answer", required=False),
        gold_sentences=_strings(record, "gold_sentences", required=False),
        kind=_text(record, "kind", required=False),
        seed_ids=_strings(record, "seed_ids", required=False),
    )


def _infer_type(gold_ids: tuple[str, ...]) -> QuestionType:
    return "unanswerable" if not gold_ids else "lookup" if len(gold_ids) == 1 else "multi"


def _text(record: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{key}: a non-empty string is required, got {value!r}")
    return value


def _strings(record: dict[str, Any], key: str, *, required: bool) -> tuple[str, ...]:
    value = record.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key}: a list of non-empty strings is required, got {value!r}")
    return tuple(value)
