"""Question + passages -> an Answer whose every sentence cites a passage that supports it.

The pipeline of one answer: number the passages [1]..[n] (citation keys we control) and show the model only
their sentences closest to the question -> stream the model's reply -> parse `[n]` citations -> check each
sentence against its sources (`agent.verify`) -> renumber the citations in order of first use. When no sentence
survives, the answer quotes the best-matching source sentences if they clearly match, and otherwise says that
the collection does not contain the information (`REFUSAL`), as it does when retrieval finds nothing relevant.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agent.citations import Claim, json_claims, parse_claims, render_json_reply
from agent.embed import Embedder
from agent.prompts import Template
from agent.settings import AnswerSettings
from agent.types import Answer, Citation, Delta, Final, Passage, Sources, StreamEvent
from agent.verify import Checked, asks_for_figure, check_sentence, content_words, figures, split_sentences

if TYPE_CHECKING:
    from agent.llm import ChatModel

REFUSAL = "The collection does not contain information to answer this."


@dataclass(frozen=True)
class Source:
    """A passage as the model sees it: its number, and its sentences ranked against the question."""

    number: int
    passage: Passage
    sentences: tuple[str, ...]
    sentence_scores: tuple[float, ...]  # cosine of each sentence to the question
    relevance: float  # the best cosine of the question to the passage's title or one of its sentences
    shown: tuple[str, ...]  # the sentences put in the prompt, in passage order


# --- the prompt ------------------------------------------------------------------------------------


def prepare_sources(question: str, passages: list[Passage], embedder: Embedder, budget_tokens: int) -> list[Source]:
    """Number the passages and pick, for each, the sentences closest to the question within `budget_tokens`."""
    splits = [split_sentences(p.text) or [p.text] for p in passages]
    # Sentences and titles, not whole passages: a passage's best sentence (or its title, for "which paper introduces
    # X?") separates answerable from unanswerable questions better on the public set, and is half the embedding
    # work. The retriever's own scores are no help here: in hybrid mode they are fused ranks, not cosines.
    texts = [question] + [p.title for p in passages] + [s for ss in splits for s in ss]
    vectors = embedder.embed(texts)
    cosines = vectors[1:] @ vectors[0]
    titles, sentence_cosines = cosines[: len(passages)], cosines[len(passages) :]
    sources, offset = [], 0
    for number, (passage, sentences) in enumerate(zip(passages, splits), start=1):
        scores = tuple(float(x) for x in sentence_cosines[offset : offset + len(sentences)])
        offset += len(sentences)
        shown = _within_budget(sentences, scores, budget_tokens)
        relevance = max(float(titles[number - 1]), *scores)
        sources.append(Source(number, passage, tuple(sentences), scores, relevance, shown))
    return sources


def _within_budget(sentences: list[str], scores: tuple[float, ...], budget_tokens: int) -> tuple[str, ...]:
    """The best-scoring sentences that fit the budget (always at least one), back in passage order."""
    chosen: list[int] = []
    used = 0
    for i in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        cost = approx_tokens(sentences[i])
        if chosen and used + cost > budget_tokens:
            continue
        chosen.append(i)
        used += cost
    return tuple(sentences[i] for i in sorted(chosen))


def approx_tokens(text: str) -> int:
    """Tokens the model's tokenizer makes of English text, estimated (~4 characters a token)."""
    return max(1, len(text) // 4)


def build_messages(question: str, sources: list[Source], prompts: dict[str, Template]) -> list[dict[str, str]]:
    """System prompt (fixed, so the server reuses its cached evaluation) then sources and question."""
    blocks = [prompts["source"].render(number=s.number, title=s.passage.title, text=" ".join(s.shown)) for s in sources]
    user = prompts["answer"].render(sources="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": prompts["system"].render()}, {"role": "user", "content": user}]


def reply_schema(n_sources: int, settings: AnswerSettings) -> dict[str, object]:
    """JSON schema for a structured reply: 1..max_sentences items, each a source number then a short text."""
    item = {
        "type": "object",
        "properties": {
            "source": {"type": "integer", "enum": list(range(1, n_sources + 1))},
            "text": {"type": "string", "minLength": 8, "maxLength": settings.max_sentence_chars},
        },
        "required": ["source", "text"],
    }
    return {
        "type": "object",
        "properties": {
            "sentences": {"type": "array", "items": item, "minItems": 1, "maxItems": settings.max_sentences}
        },
        "required": ["sentences"],
    }


# --- the answer ------------------------------------------------------------------------------------


def assemble(checked: list[Checked], sources: list[Source]) -> tuple[str, list[Citation]]:
    """Text of the kept sentences with citations renumbered 1..k in order of first use, and those citations."""
    by_number = {s.number: s for s in sources}
    renumber: dict[int, int] = {}
    best: dict[int, tuple[float, str]] = {}
    lines = []
    for c in checked:
        for n in c.cited:
            renumber.setdefault(n, len(renumber) + 1)
            if c.support > best.get(n, (-1.0, ""))[0]:
                best[n] = (c.support, c.quotes[n])
        marks = ", ".join(str(renumber[n]) for n in c.cited)
        body = c.text if c.text.endswith((".", "!", "?", '"')) else c.text + "."
        lines.append(f"{body[:-1]} [{marks}]{body[-1]}" if body[-1] in ".!?" else f"{body} [{marks}]")
    citations = [
        Citation(
            new, by_number[old].passage.paper_id, by_number[old].passage.title, best[old][1], round(best[old][0], 3)
        )
        for old, new in renumber.items()
    ]
    return " ".join(lines), citations


def extractive(question: str, sources: list[Source], settings: AnswerSettings) -> list[Claim]:
    """Quotes from the sources that clearly match the question (best sentence reaches `min_evidence`): the sentence
    most like the question, or for a question asking for a quantity, the most alike one that gives a new figure
    (the figure often sits in a later, less similar sentence of a clearly matching abstract)."""
    need_figure = asks_for_figure(question)
    picks = []
    for source in sources:
        if source.relevance < settings.min_evidence:
            continue
        for score, sentence in sorted(zip(source.sentence_scores, source.sentences), reverse=True):
            if not need_figure or gives_new_figure(sentence, question):
                picks.append((score, Claim(f'{source.passage.title}: "{sentence}"', (source.number,))))
                break
    picks.sort(key=lambda p: -p[0])
    return [claim for _, claim in picks[: settings.fallback_sentences]]


def verify_claims(
    question: str, claims: list[Claim], sources: list[Source], settings: AnswerSettings, embedder: Embedder | None
) -> list[Checked]:
    """Each claim checked against the sources it cites (failing those, the others). With an `embedder` (the model's
    claims), a supported claim must also be on the question, by the bar a quote must clear (`min_evidence`): its
    own cosine to the question, and the relevance of the source it rests on. A small model happily copies a true
    sentence from the wrong paper."""
    given = {s.number: (s.passage.title, s.passage.text) for s in sources}
    relevance = {s.number: s.relevance for s in sources}
    checked = [check_sentence(c.text, c.numbers, given, question, settings.min_support) for c in claims]
    kept = [i for i, c in enumerate(checked) if c.kept]
    if embedder is not None and kept:
        vectors = embedder.embed([question] + [checked[i].text for i in kept])
        for i, cosine in zip(kept, vectors[1:] @ vectors[0]):
            if min(cosine, max(relevance[n] for n in checked[i].cited)) < settings.min_evidence:
                checked[i] = replace(checked[i], status="off the question", cited=())
    return checked


def answers_question(question: str, kept: list[Checked]) -> bool:
    """A question asking for a quantity is answered only if a kept sentence gives a figure it does not contain."""
    return not asks_for_figure(question) or any(gives_new_figure(c.text, question) for c in kept)


def gives_new_figure(text: str, question: str) -> bool:
    """Whether `text` states a figure (number) that the question does not already contain."""
    return bool(figures(content_words(text)) - figures(content_words(question)))


def refusal(question: str, sources: list[Source], timings: dict[str, float], **verification: object) -> Answer:
    """The fixed "not in the collection" answer: no citations, the passages that were looked at."""
    return Answer(
        REFUSAL, [], [s.passage for s in sources], True, timings, {"outcome": "refused", **verification}, question
    )


def finish(
    question: str,
    claims: list[Claim],
    sources: list[Source],
    settings: AnswerSettings,
    embedder: Embedder,
    timings: dict[str, float],
) -> Answer:
    """The verified Answer for the claims of a complete model reply (or quotes, or the refusal)."""
    checked = verify_claims(question, claims, sources, settings, embedder)
    kept = [c for c in checked if c.kept]
    outcome = "model"
    if not kept or not answers_question(question, kept):
        quotes = extractive(question, sources, settings)  # on the question by construction: no embedder check
        kept = [c for c in verify_claims(question, quotes, sources, settings, None) if c.kept]
        outcome = "extractive" if kept else "refused"
    summary = {
        "outcome": outcome,
        "sentences": len(checked),
        "supported": sum(c.kept for c in checked),
        "citations_fixed": sum(c.status in ("reattributed", "attributed") for c in checked),
        "invalid_citations_removed": sum(len(c.invalid) for c in checked),
        "min_support": settings.min_support,
        "relevance": round(max((s.relevance for s in sources), default=0.0), 3),
        "checked": [c.to_json() for c in checked],
    }
    if not kept:
        return refusal(question, sources, timings, **summary, reason="no supported sentence answers the question")
    text, citations = assemble(kept, sources)
    return Answer(text, citations, [s.passage for s in sources], False, timings, summary, question)


def answer_stream(
    question: str,
    passages: list[Passage],
    *,
    model: ChatModel,
    embedder: Embedder,
    prompts: dict[str, Template],
    settings: AnswerSettings,
    timings: dict[str, float] | None = None,
    started: float | None = None,
) -> Iterator[StreamEvent]:
    """Sources, then the model's reply as Deltas, then the verified Final answer."""
    started = time.perf_counter() if started is None else started
    timings = dict(timings or {})
    clock = time.perf_counter()
    sources = prepare_sources(question, passages, embedder, settings.max_passage_tokens)
    timings["select_ms"] = _ms(clock)
    yield Sources(tuple(s.passage for s in sources), question)
    if max((s.relevance for s in sources), default=0.0) < settings.min_relevance:
        timings["total_ms"] = _ms(started)
        reason = f"no passage reaches min_relevance {settings.min_relevance}"
        yield Final(refusal(question, sources, timings, reason=reason))
        return
    structured = settings.output == "json"
    schema = reply_schema(len(sources), settings) if structured else None
    messages = build_messages(question, sources, prompts)
    raw, shown, pieces = "", "", 0
    for piece in model.stream(messages, max_tokens=settings.max_tokens, json_schema=schema):
        timings.setdefault("ttft_ms", _ms(started))
        raw, pieces = raw + piece, pieces + 1
        text = render_json_reply(raw) if structured else raw  # the reader sees text, never JSON
        if len(text) > len(shown) and text.startswith(shown):
            yield Delta(text[len(shown) :])
            shown = text
    timings["generation_ms"] = round(_ms(started) - timings.get("ttft_ms", _ms(started)), 1)
    cut_off = pieces >= settings.max_tokens  # llama.cpp and vLLM stream one token per piece
    claims = json_claims(raw, cut_off=cut_off) if structured else parse_claims(raw, cut_off=cut_off)
    answer = finish(question, claims, sources, settings, embedder, timings)
    timings["total_ms"] = _ms(started)  # subtle: the Answer holds this same dict, so it sees total_ms too
    yield Final(answer)


def answer(
    question: str,
    passages: list[Passage],
    *,
    model: ChatModel,
    embedder: Embedder,
    prompts: dict[str, Template],
    settings: AnswerSettings,
) -> Answer:
    """The verified Answer (`answer_stream` drained)."""
    return final_answer(
        answer_stream(question, passages, model=model, embedder=embedder, prompts=prompts, settings=settings)
    )


def final_answer(events: Iterable[StreamEvent]) -> Answer:
    """Drain a stream of answer events and return its Final answer."""
    for event in events:
        if isinstance(event, Final):
            return event.answer
    raise RuntimeError("the answer stream ended without a Final event")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
