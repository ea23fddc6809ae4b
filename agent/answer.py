"""A decision + the model's reply -> an Answer whose every sentence cites a paper that supports it.

The decision (agent/decide.py) has already said whether to answer and with which papers. A refusal is the fixed
`REFUSAL` with the closest papers offered, and no model call. Otherwise only the chosen papers go to the model,
numbered [1]..[k] (citation keys we control), with their sentences closest to the question. Its reply streams;
`[n]` citations are parsed and each sentence is checked against its sources (`agent.verify`). The answer names each
chosen paper with the sentence that answers, adds the model's supported sentences, and renumbers the citations in
order of first use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from paper_agent.citations import Claim, json_claims, parse_claims, render_json_reply
from paper_agent.decide import Chosen, Decision
from paper_agent.prompts import Template
from paper_agent.settings import AnswerSettings
from paper_agent.sources import Source
from paper_agent.types import Answer, Citation, Delta, Final, PaperRef, Sources, StreamEvent
from paper_agent.verify import Checked, check_sentence, content_words

if TYPE_CHECKING:
    from paper_agent.llm import ChatModel

REFUSAL = "The collection does not contain information to answer this."


# --- the prompt ------------------------------------------------------------------------------------


def build_messages(question: str, sources: Sequence[Source], prompts: dict[str, Template]) -> list[dict[str, str]]:
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


def assemble(checked: list[Checked], sources: Sequence[Source]) -> tuple[str, list[Citation]]:
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


def quotes(chosen: Sequence[Chosen], sources: Sequence[Source]) -> list[Claim]:
    """Each chosen paper named, with the sentences of it that answer the question, each quoted and citing it:
    `Title: "first" [n] "second" [n]` (one claim a sentence, so every sentence a reader sees carries its citation)."""
    claims = []
    for c, source in zip(chosen, sources):
        first, *rest = c.sentences
        claims.append(Claim(f'{c.hit.title}: "{first}"', (source.number,)))
        claims.extend(Claim(f'"{sentence}"', (source.number,)) for sentence in rest)
    return claims


def verify_claims(question: str, claims: list[Claim], sources: Sequence[Source], min_support: float) -> list[Checked]:
    """Each claim checked against the sources it cites (failing those, the others it was given)."""
    given = {s.number: (s.passage.title, s.passage.text) for s in sources}
    return [check_sentence(c.text, c.numbers, given, question, min_support) for c in claims]


def adds_to_quotes(checked: Checked, quoted: list[Checked]) -> bool:
    """Whether a model sentence says something the quotes do not (two content words they lack)."""
    said = set().union(*(content_words(q.text) for q in quoted))
    return len(content_words(checked.text) - said) >= 2


def refusal(question: str, decision: Decision, timings: dict[str, float], **verification: object) -> Answer:
    """The fixed "not in the collection" answer: no citations; the closest papers offered, the passages looked at."""
    return Answer(
        REFUSAL,
        [],
        decision.passages,
        True,
        timings,
        {"outcome": "refused", "decision": decision.to_json(), **verification},
        question,
        answerability=decision.score,
        closest=[PaperRef(h.paper_id, h.title) for h in decision.closest],
    )


def finish(
    question: str,
    claims: list[Claim],
    decision: Decision,
    sources: list[Source],
    settings: AnswerSettings,
    timings: dict[str, float],
) -> Answer:
    """The Answer: each chosen paper named with its answering sentence, then the model's sentences that its sources
    support and that add to those quotes. The quotes come first because the decision, not a 135M model, is what
    reliably names the right paper; a capable model's sentences still get through when they are grounded."""
    checked = verify_claims(question, claims, sources, settings.min_support)
    quoted = [c for c in verify_claims(question, quotes(decision.chosen, sources), sources, 0.0) if c.kept]
    added = [c for c in checked if c.kept and adds_to_quotes(c, quoted)]
    summary = {
        "outcome": "model" if added else "extractive",
        "sentences": len(checked),
        "supported": sum(c.kept for c in checked),
        "added": len(added),
        "citations_fixed": sum(c.status in ("reattributed", "attributed") for c in checked),
        "invalid_citations_removed": sum(len(c.invalid) for c in checked),
        "min_support": settings.min_support,
        "checked": [c.to_json() for c in checked],
        "decision": decision.to_json(),
    }
    kept = quoted + added
    if not kept:
        return refusal(question, decision, timings, **summary, reason="no chosen sentence survived verification")
    text, citations = assemble(kept, sources)
    return Answer(text, citations, decision.passages, False, timings, summary, question, answerability=decision.score)


def answer_stream(
    question: str,
    decision: Decision,
    *,
    model: ChatModel,
    prompts: dict[str, Template],
    settings: AnswerSettings,
    timings: dict[str, float] | None = None,
    started: float | None = None,
) -> Iterator[StreamEvent]:
    """Sources, then (when the decision answers) the model's reply as Deltas, then the verified Final answer."""
    started = time.perf_counter() if started is None else started
    timings = dict(timings or {})
    yield Sources(tuple(decision.passages), question)
    if not decision.answerable:
        timings["total_ms"] = _ms(started)
        yield Final(refusal(question, decision, timings, reason=decision.reason))
        return
    # Only the chosen papers go to the model, renumbered [1]..[k]: it cannot cite a paper the decision rejected.
    sources = [replace(c.source, number=n) for n, c in enumerate(decision.chosen, start=1)]
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
    answer = finish(question, claims, decision, sources, settings, timings)
    timings["total_ms"] = _ms(started)  # subtle: the Answer holds this same dict, so it sees total_ms too
    yield Final(answer)


def answer(
    question: str,
    decision: Decision,
    *,
    model: ChatModel,
    prompts: dict[str, Template],
    settings: AnswerSettings,
) -> Answer:
    """The verified Answer (`answer_stream` drained)."""
    return final_answer(answer_stream(question, decision, model=model, prompts=prompts, settings=settings))


def final_answer(events: Iterable[StreamEvent]) -> Answer:
    """Drain a stream of answer events and return its Final answer."""
    for event in events:
        if isinstance(event, Final):
            return event.answer
    raise RuntimeError("the answer stream ended without a Final event")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
