"""ragas, and only here: the judge and embedding wrappers, the judge self-test, and per-sample scoring.

The judge is any OpenAI-compatible server, reached through `agent.llm.ChatModel` (the project's one seam to
model servers), wrapped as a ragas `InstructorBaseRagasLLM`: each ragas prompt is sent with its output model's
JSON schema as `response_format`, so llama.cpp and vLLM decode valid JSON by grammar. Embeddings are the local
sentence-transformers model. Both are always passed explicitly, so ragas never reaches for its hosted default.

Every metric call is wrapped: a timeout, an unparseable reply, a server error or a NaN score is a counted failure
of that metric for that question, never a silent gap in an average.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ragas.dataset_schema import SingleTurnSample
from ragas.embeddings.base import BaseRagasEmbedding
from ragas.llms.base import InstructorBaseRagasLLM
from ragas.metrics.collections import (
    AnswerRelevancy,
    ContextPrecisionWithReference,
    ContextRecall,
    Faithfulness,
    NonLLMStringSimilarity,
)

from paper_agent.embed import Embedder
from paper_agent.errors import ModelServerUnavailable
from paper_agent.llm import ChatModel

with warnings.catch_warnings():  # ragas flags these as moving to `collections`, which has no id/non-LLM variants yet
    warnings.simplefilter("ignore", DeprecationWarning)
    from ragas.metrics import (
        IDBasedContextPrecision,
        IDBasedContextRecall,
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
    )

T = TypeVar("T", bound=BaseModel)
JUDGE_METRICS = ("ragas.faithfulness", "ragas.answer_relevancy", "ragas.context_precision", "ragas.context_recall")


class JudgeOutputError(Exception):
    """The judge's reply is not the JSON the ragas prompt asked for."""


class ChatModelJudge(InstructorBaseRagasLLM):
    """A ragas LLM over our `ChatModel`: structured output by JSON schema, parsed and validated here."""

    is_async = True  # read by ragas's legacy prompt path; our agenerate never blocks the event loop

    def __init__(self, model: ChatModel, max_tokens: int) -> None:
        self.model, self.max_tokens = model, max_tokens

    @property
    def name(self) -> str:
        return f"{self.model.model} @ {self.model.url}"

    def generate(self, prompt: str, response_model: type[T]) -> T:
        messages = [{"role": "user", "content": prompt}]
        reply = self.model.complete(
            messages, max_tokens=self.max_tokens, json_schema=response_model.model_json_schema()
        )
        try:
            return response_model.model_validate_json(reply)
        except ValidationError as err:
            raise JudgeOutputError(f"{response_model.__name__}: {err.errors()[0]['msg']} in {reply[:120]!r}") from err

    async def agenerate(self, prompt: str, response_model: type[T]) -> T:
        return await asyncio.to_thread(self.generate, prompt, response_model)


class LocalEmbeddings(BaseRagasEmbedding):
    """ragas embeddings over the project's local embedding model (never a hosted one)."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self.embedder = embedder

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        return self.embed_texts([text])[0]

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return [list(map(float, v)) for v in self.embedder.embed(list(texts))]

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        return await asyncio.to_thread(self.embed_text, text)

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_texts, texts)


# --- scoring one sample ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    value: float | None
    failure: str | None = None  # timeout | unparseable | server | nan | error


@dataclass(frozen=True)
class JudgeSample:
    question: str
    response: str
    contexts: tuple[str, ...]
    reference: str


class Judge:
    """ragas's four LLM metrics, bound to one judge model and the local embeddings."""

    def __init__(self, model: ChatModel, embedder: Embedder, *, max_tokens: int, timeout_s: float) -> None:
        self.llm = ChatModelJudge(model, max_tokens)
        self.timeout_s = timeout_s
        embeddings = LocalEmbeddings(embedder)
        self.metrics: dict[str, Any] = {
            "ragas.faithfulness": Faithfulness(llm=self.llm),
            "ragas.answer_relevancy": AnswerRelevancy(llm=self.llm, embeddings=embeddings),
            "ragas.context_precision": ContextPrecisionWithReference(llm=self.llm),
            "ragas.context_recall": ContextRecall(llm=self.llm),
        }

    @property
    def name(self) -> str:
        return self.llm.name

    async def score(self, metric: str, sample: JudgeSample) -> Outcome:
        """One metric on one sample; any failure is returned as an Outcome, not raised."""
        try:
            result = await asyncio.wait_for(self.metrics[metric].ascore(**_inputs(metric, sample)), self.timeout_s)
        except TimeoutError:
            return Outcome(None, "timeout")
        except JudgeOutputError:
            return Outcome(None, "unparseable")
        except ModelServerUnavailable as err:
            return Outcome(None, "timeout" if "timed out" in err.reason else "server")
        except Exception:  # ragas metrics raise whatever their parsing hits; each is a failure to count
            return Outcome(None, "error")
        return _outcome(result.value)


def _inputs(metric: str, s: JudgeSample) -> dict[str, Any]:
    """The keyword arguments each ragas collections metric's `ascore` takes."""
    contexts = list(s.contexts)
    by_metric: dict[str, dict[str, Any]] = {
        "ragas.faithfulness": {"user_input": s.question, "response": s.response, "retrieved_contexts": contexts},
        "ragas.answer_relevancy": {"user_input": s.question, "response": s.response},
        "ragas.context_precision": {"user_input": s.question, "reference": s.reference, "retrieved_contexts": contexts},
        "ragas.context_recall": {"user_input": s.question, "reference": s.reference, "retrieved_contexts": contexts},
    }
    return by_metric[metric]


def _outcome(value: Any) -> Outcome:
    if value is None or not isinstance(value, int | float) or math.isnan(value):
        return Outcome(None, "nan")
    return Outcome(float(value))


# --- the judge self-test -----------------------------------------------------------------------------------

# Known-answer faithfulness cases: half supported by their context, half contradicted. A judge that cannot tell
# these apart (or always says "faithful") gets at most half right, and its scores on real answers mean nothing.
SELF_TEST: tuple[tuple[str, str, str, bool], ...] = (
    (
        "When was the Eiffel Tower completed?",
        "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
        "The Eiffel Tower was completed in 1889.",
        True,
    ),
    (
        "At what temperature does water boil at sea level?",
        "At sea level, pure water boils at 100 degrees Celsius.",
        "Water boils at 50 degrees Celsius at sea level.",
        False,
    ),
    (
        "How does BLIP-2 connect the image encoder to the language model?",
        "BLIP-2 bridges a frozen image encoder and a frozen large language model with a lightweight Querying "
        "Transformer.",
        "BLIP-2 uses a lightweight Querying Transformer between a frozen image encoder and a frozen language model.",
        True,
    ),
    (
        "What data was the model trained on?",
        "The models were trained only on English news articles published between 2010 and 2015.",
        "The model was trained on Chinese medical records.",
        False,
    ),
    (
        "How many parameters does the model have?",
        "Our largest model has 7 billion parameters and was trained on 2 trillion tokens.",
        "The largest model has 7 billion parameters.",
        True,
    ),
    (
        "Who proposed the method?",
        "The method was proposed by researchers at the University of Tokyo in 2021.",
        "The method was proposed by Google in 2015.",
        False,
    ),
)


@dataclass(frozen=True)
class SelfTest:
    correct: int
    total: int
    tried: int  # the test stops early once the pass mark is out of reach
    failure_kinds: dict[str, int]  # cases where the judge produced no score at all, by why

    @property
    def rate(self) -> float:
        return self.correct / self.total

    @property
    def unavailable(self) -> bool:
        """Every case failed on the server itself: the judge was never reached, so it is not judged weak."""
        return self.failure_kinds.get("server", 0) == self.tried

    def describe(self) -> str:
        failed = ", ".join(f"{n} {kind}" for kind, n in sorted(self.failure_kinds.items())) or "none"
        return (
            f"self-test: {self.correct} of {self.total} known-answer faithfulness cases right "
            f"({self.tried} tried); failures: {failed}"
        )


async def self_test(judge: Judge, min_rate: float, concurrency: int = 2) -> SelfTest:
    """Score the known-answer cases with ragas faithfulness; right = >= 0.5 for supported, < 0.5 for not.

    Cases run `concurrency` at a time and stop once `min_rate` is out of reach, so a weak judge costs a few
    calls, not the whole test.
    """
    allowed_wrong = len(SELF_TEST) - math.ceil(min_rate * len(SELF_TEST))
    right, done = 0, 0
    kinds: dict[str, int] = {}
    for start in range(0, len(SELF_TEST), concurrency):
        batch = SELF_TEST[start : start + concurrency]
        outcomes = await asyncio.gather(
            *(judge.score("ragas.faithfulness", JudgeSample(q, r, (c,), "")) for q, c, r, _ in batch)
        )
        for outcome, (*_, faithful) in zip(outcomes, batch):
            right += outcome.value is not None and (outcome.value >= 0.5) == faithful
            if outcome.failure:
                kinds[outcome.failure] = kinds.get(outcome.failure, 0) + 1
        done += len(batch)
        if done - right > allowed_wrong:
            break
    return SelfTest(correct=right, total=len(SELF_TEST), tried=done, failure_kinds=kinds)


# --- ragas's metrics that need no model ----------------------------------------------------------------------

_ID_PRECISION, _ID_RECALL = IDBasedContextPrecision(), IDBasedContextRecall()
_TEXT_PRECISION, _TEXT_RECALL = NonLLMContextPrecisionWithReference(), NonLLMContextRecall()
_STRING_SIMILARITY = NonLLMStringSimilarity()


async def non_llm_scores(
    retrieved_ids: Sequence[str],
    gold_ids: Sequence[str],
    contexts: Sequence[str],
    gold_texts: Sequence[str],
    response: str | None,
    reference: str,
) -> dict[str, float]:
    """ragas's id-based and string-based context precision/recall, and answer-to-reference string similarity."""
    scores: dict[str, float] = {}
    if gold_ids and retrieved_ids:
        ids = SingleTurnSample(retrieved_context_ids=list(retrieved_ids), reference_context_ids=list(gold_ids))
        scores["ragas.id_context_precision"] = await _ID_PRECISION.single_turn_ascore(ids)
        scores["ragas.id_context_recall"] = await _ID_RECALL.single_turn_ascore(ids)
    if gold_texts and contexts:
        texts = SingleTurnSample(retrieved_contexts=list(contexts), reference_contexts=list(gold_texts))
        scores["ragas.text_context_precision"] = await _TEXT_PRECISION.single_turn_ascore(texts)
        scores["ragas.text_context_recall"] = await _TEXT_RECALL.single_turn_ascore(texts)
    if response and reference:
        result = await _STRING_SIMILARITY.ascore(reference=reference, response=response)
        scores["ragas.string_similarity"] = float(result.value)
    return {k: float(v) for k, v in scores.items()}
