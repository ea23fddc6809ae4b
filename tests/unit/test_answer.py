"""The answer stage with a scripted chat model: citation parsing and renumbering, verification, fallback, refusal,
the stream's order, prompt templates and follow-up rewriting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paper_agent.answer import REFUSAL, answer, answer_stream, build_messages
from paper_agent.citations import Claim, json_claims, parse_claims, render_json_reply
from paper_agent.decide import Chosen, Decision, answering_sentences
from paper_agent.followup import needs_context, standalone_question
from paper_agent.lexical import LexicalIndex
from paper_agent.prompts import PromptError, load_prompts, load_template
from paper_agent.service import PaperAgent
from paper_agent.settings import AnswerSettings, Settings
from paper_agent.sources import prepare_sources
from paper_agent.types import Delta, Final, PaperHit, Passage, Sources
from paper_agent.verify import split_sentences
from tests.conftest import HashEmbedder


class ScriptedChatModel:
    """A ChatModel that streams scripted replies (one per call, in order) word by word, and records each call."""

    url, model = "http://scripted/v1", "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    def stream(self, messages: list[dict[str, Any]], **options: Any) -> Iterator[str]:
        reply = self.complete(messages, **options)
        for i, word in enumerate(reply.split(" ")):
            yield word if i == 0 else " " + word

    def complete(self, messages: list[dict[str, Any]], **options: Any) -> str:
        self.calls.append({"messages": messages, **options})
        return self.replies.pop(0)


BLIP = Passage(
    chunk_id="pblip:0",
    paper_id="pblip",
    title="BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image Encoders",
    text=(
        "BLIP-2 bridges the modality gap with a lightweight Querying Transformer. "
        "The transformer is pre-trained in two stages from frozen encoders. "
        "Our model outperforms Flamingo80B by 8.7% on zero-shot VQAv2 with 54x fewer trainable parameters."
    ),
    score=0.8,
)
SPARSE = Passage(
    chunk_id="psparse:0",
    paper_id="psparse",
    title="Sparse Attention Kernels",
    text="We make sparse attention fast on GPUs with block kernels. The kernels are 3x faster than dense attention.",
    score=0.5,
)
QUESTION = "By how much does BLIP-2 beat Flamingo80B on zero-shot VQAv2?"
GOOD = "BLIP-2 outperforms Flamingo80B by 8.7% on zero-shot VQAv2 with 54x fewer trainable parameters"
PROMPTS = load_prompts()


def lenient(**overrides: Any) -> AnswerSettings:
    """Settings that answer whatever the hash embedder scores, so a test isolates one behaviour."""
    return AnswerSettings(**({"min_answerability": 0.0} | overrides))


def decided(*passages: Passage, answerable: bool = True, question: str = QUESTION) -> Decision:
    """A decision choosing `passages` (each with its answering sentence), or refusing with them as the closest."""
    sources = prepare_sources(question, list(passages), HashEmbedder(), 100)
    hits = [PaperHit(p.paper_id, p.title, p.score, (p,)) for p in passages]
    lexical = LexicalIndex.build([BLIP, SPARSE])
    chosen = [
        Chosen(hit, source, found)
        for hit, source in zip(hits, sources)
        if (found := answering_sentences(question, source.sentences, source.sentence_scores, lexical))
    ]
    if not answerable:
        return Decision(False, 0.1, 0.5, "answerability 0.10 is below 0.5", closest=tuple(hits))
    return Decision(True, 0.9, 0.5, "answerable", tuple(chosen), tuple(hits))


def ask(reply: str, decision: Decision | None = None, settings: AnswerSettings | None = None) -> Any:
    model = ScriptedChatModel(reply)
    result = answer(QUESTION, decision or decided(BLIP), model=model, prompts=PROMPTS, settings=settings or lenient())
    return result, model


# --- parsing ---------------------------------------------------------------------------------------


def test_citations_are_parsed_in_every_usual_form_and_taken_out_of_the_text() -> None:
    reply = (
        "Alpha beats beta [1]. Gamma helps delta [1, 2]. Epsilon wins [2][3]. Zeta grows. [Source 2] Eta ends [1-3]."
    )
    assert parse_claims(reply) == [
        Claim("Alpha beats beta.", (1,)),
        Claim("Gamma helps delta.", (1, 2)),
        Claim("Epsilon wins.", (2, 3)),
        Claim("Zeta grows.", (2,)),
        Claim("Eta ends.", (1, 2, 3)),
    ]


def test_list_markers_repeats_and_empty_sentences_are_dropped() -> None:
    reply = "1. Alpha beats beta [1].\n2. Alpha beats beta [1].\n3. [2]\n- Gamma helps delta."
    assert parse_claims(reply) == [Claim("Alpha beats beta.", (1,)), Claim("Gamma helps delta.", ())]


def test_an_unfinished_last_sentence_is_dropped_only_when_the_reply_was_cut_off() -> None:
    reply = "Alpha beats beta [1]. Gamma helps the"
    assert [c.text for c in parse_claims(reply, cut_off=True)] == ["Alpha beats beta."]
    assert len(parse_claims(reply)) == 2


def test_a_structured_reply_streams_as_readable_text_that_only_grows() -> None:
    raw = json.dumps({"sentences": [{"source": 2, "text": 'He said "hi". Then left.'}, {"source": 1, "text": "Ok go"}]})
    shown = ""
    for end in range(1, len(raw) + 1):
        text = render_json_reply(raw[:end])
        assert text.startswith(shown)
        shown = text
    assert shown == 'He said "hi". Then left. [2] Ok go [1]'
    assert json_claims(raw) == [Claim('He said "hi".', (2,)), Claim("Then left.", (2,)), Claim("Ok go", (1,))]
    assert json_claims(raw[:-20], cut_off=True) == json_claims(raw)[:2]


# --- answers ---------------------------------------------------------------------------------------

BLIP_FIGURE = BLIP.text.split(". ")[2]
SPARSE_FIGURE = "The kernels are 3x faster than dense attention."
TWO_STAGES = "The transformer is pre-trained in two stages from frozen encoders."


def quoted(answer: Any, passage: Passage) -> list[str]:
    """The sentences of `passage` that the answer quotes."""
    return [s for s in split_sentences(passage.text) if s in answer.text]


def test_each_chosen_paper_is_named_with_the_sentences_that_answer_and_cited() -> None:
    result, _ = ask("Flamingo80B is beaten by 99% [1].")
    assert not result.refused and result.verification["outcome"] == "extractive"
    assert result.text.startswith(f'{BLIP.title}: "') and result.text.endswith('" [1]')
    assert BLIP_FIGURE in quoted(result, BLIP) and len(quoted(result, BLIP)) == 2  # the figure, and the next best
    assert [(c.number, c.paper_id) for c in result.citations] == [(1, "pblip")]
    assert result.answerability == 0.9 and result.closest == []


def test_model_sentences_that_add_to_the_quotes_are_kept_and_citations_renumbered_in_order_of_use() -> None:
    said = "BLIP-2 bridges the modality gap with a lightweight Querying Transformer"
    added = said if TWO_STAGES in quoted(*ask("", decided(BLIP))[:1], BLIP) else TWO_STAGES[:-1]
    reply = f"{added} [1]. Sparse attention kernels are 3x faster than dense attention on GPUs [2]."
    result, _ = ask(reply, decided(BLIP, SPARSE))
    first, second = result.text.index(BLIP.title), result.text.index(SPARSE.title)
    assert first < second and result.text.endswith(f"{added} [1].")
    assert SPARSE_FIGURE in result.text  # the second model sentence says nothing the quotes do not: dropped
    assert [c.paper_id for c in result.citations] == ["pblip", "psparse"]
    assert result.verification["outcome"] == "model" and result.verification["added"] == 1


def test_citations_to_papers_not_chosen_are_removed_and_the_sentence_goes_to_its_real_source() -> None:
    result, _ = ask("BLIP-2 bridges the modality gap with a lightweight Querying Transformer [7].")
    assert [c.paper_id for c in result.citations] == ["pblip"]
    assert result.verification["invalid_citations_removed"] == 1
    assert result.verification["citations_fixed"] == 1


def test_unsupported_sentences_are_dropped() -> None:
    result, _ = ask("BLIP-2 was trained by a team of 40 people in Paris [1].")
    assert "Paris" not in result.text and BLIP_FIGURE in result.text
    assert [c["status"] for c in result.verification["checked"]] == ["unsupported"]


def test_a_quantity_question_is_answered_with_the_sentence_that_gives_the_figure() -> None:
    result, _ = ask("", decided(SPARSE, BLIP))
    assert "8.7%" in result.text and SPARSE_FIGURE in result.text


def test_a_refusal_asks_no_model_and_offers_the_closest_papers() -> None:
    model = ScriptedChatModel()
    events = list(
        answer_stream(
            QUESTION, decided(SPARSE, BLIP, answerable=False), model=model, prompts=PROMPTS, settings=lenient()
        )
    )
    assert [type(e) for e in events] == [Sources, Final]
    final = events[-1]
    assert isinstance(final, Final) and final.answer.refused and final.answer.text == REFUSAL
    assert final.answer.citations == [] and [p.paper_id for p in final.answer.closest] == ["psparse", "pblip"]
    assert final.answer.answerability == 0.1 and "below" in final.answer.verification["reason"]
    assert model.calls == []


def test_the_stream_gives_sources_then_the_reply_then_the_verified_answer() -> None:
    reply = "BLIP-2 uses a lightweight Querying Transformer [1]."
    events = list(
        answer_stream(
            QUESTION, decided(BLIP, SPARSE), model=ScriptedChatModel(reply), prompts=PROMPTS, settings=lenient()
        )
    )
    assert isinstance(events[0], Sources) and [p.paper_id for p in events[0].passages] == ["pblip", "psparse"]
    deltas = [e for e in events[1:-1] if isinstance(e, Delta)]
    assert len(deltas) == len(events) - 2 and "".join(d.text for d in deltas) == reply
    final = events[-1]
    assert isinstance(final, Final) and final.answer.citations[0].paper_id == "pblip"
    assert {"ttft_ms", "generation_ms", "total_ms"} <= set(final.answer.timings)


def test_only_the_chosen_papers_reach_the_model() -> None:
    decision = decided(BLIP, SPARSE)
    decision = Decision(True, 0.9, 0.5, "answerable", decision.chosen[:1], decision.closest)
    _, model = ask("", decision)
    user = model.calls[0]["messages"][1]["content"]
    assert f"[1] {BLIP.title}" in user and SPARSE.title not in user


def test_a_structured_reply_is_asked_for_with_a_schema_and_verified_like_text() -> None:
    reply = json.dumps({"sentences": [{"source": 1, "text": "BLIP-2 uses a lightweight Querying Transformer."}]})
    result, model = ask(reply, decided(BLIP, SPARSE), lenient(output="json"))
    schema = model.calls[0]["json_schema"]
    assert schema["properties"]["sentences"]["items"]["properties"]["source"]["enum"] == [1, 2]
    assert result.citations[0].paper_id == "pblip" and len(model.calls) == 1


def test_the_prompt_starts_with_the_same_system_message_and_shows_numbered_relevant_sentences() -> None:
    settings = lenient(max_passage_tokens=20)
    sources = prepare_sources(QUESTION, [SPARSE, BLIP], HashEmbedder(), settings.max_passage_tokens)
    first = build_messages(QUESTION, sources, PROMPTS)
    other = build_messages("What are sparse kernels?", sources, PROMPTS)
    assert first[0] == other[0] and first[0]["role"] == "system"
    user = first[1]["content"]
    assert f"[2] {BLIP.title}" in user and "Flamingo80B by 8.7%" in user and user.endswith(QUESTION)
    assert "lightweight Querying Transformer" not in user  # over the budget, and less like the question


# --- prompt templates --------------------------------------------------------------------------------


def test_a_template_with_a_missing_or_unknown_slot_fails_when_loaded(tmp_path: Path) -> None:
    (tmp_path / "answer.txt").write_text("Sources: {sources}")
    with pytest.raises(PromptError, match=r"missing slot\(s\) \{question\}"):
        load_template("answer", tmp_path)
    (tmp_path / "answer.txt").write_text("{sources} {question} {history}")
    with pytest.raises(PromptError, match=r"unknown slot\(s\) \{history\}"):
        load_template("answer", tmp_path)
    with pytest.raises(PromptError, match="cannot read"):
        load_template("system", tmp_path)


def test_the_agent_checks_its_templates_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "system.txt").write_text("Answer about {topic}.")
    with pytest.raises(PromptError, match=r"system\.txt"):
        PaperAgent(Settings(data_dir=tmp_path / "index", answer=AnswerSettings(prompts_dir=tmp_path)))


def test_rendering_with_the_wrong_values_is_an_error() -> None:
    with pytest.raises(ValueError, match="takes"):
        PROMPTS["answer"].render(question="q")


# --- follow-up questions -----------------------------------------------------------------------------

HISTORY = [
    {"role": "user", "content": "Which model bridges a frozen image encoder and a frozen LLM?"},
    {"role": "assistant", "content": "BLIP-2 does [1]."},
]


def test_only_questions_that_lean_on_the_conversation_are_rewritten() -> None:
    assert needs_context("How much does it beat Flamingo80B?")
    assert needs_context("And the dataset?")
    assert not needs_context("Which model bridges a frozen image encoder and a frozen LLM?")
    model = ScriptedChatModel()
    assert standalone_question("What does sparse attention speed up?", HISTORY, model, PROMPTS["rewrite"])
    assert model.calls == []


def test_a_good_rewrite_is_used_and_a_bad_one_falls_back_to_joining_the_questions() -> None:
    good = "How much does the model bridging a frozen image encoder and LLM beat Flamingo80B?"
    chatty = "The answer is:\nHow much does BLIP-2 beat Flamingo80B?"
    model = ScriptedChatModel(good, "Sure! Here is a question.", chatty)
    follow_up = "How much does it beat Flamingo80B?"
    assert standalone_question(follow_up, HISTORY, model, PROMPTS["rewrite"]) == good
    joined = f"{HISTORY[0]['content']} {follow_up}"
    assert standalone_question(follow_up, HISTORY, model, PROMPTS["rewrite"]) == joined
    assert standalone_question(follow_up, HISTORY, model, PROMPTS["rewrite"]) == joined  # two lines: not a question
    assert HISTORY[0]["content"] in model.calls[0]["messages"][0]["content"]


def test_the_agent_rewrites_a_follow_up_before_searching(tmp_path: Path) -> None:
    model = ScriptedChatModel("Not a question at all", f"{GOOD} [1].")
    agent = PaperAgent(
        Settings(data_dir=tmp_path / "index", answer=lenient()), embedder=HashEmbedder(), chat_model=model
    )
    from paper_agent.types import Paper

    papers = [Paper(p.paper_id, p.title, p.text, "unit.jsonl") for p in (BLIP, SPARSE)]
    agent.index.ingest(papers, agent.embedder, progress=False)
    result = agent.ask("How much does it beat Flamingo80B?", history=HISTORY)
    assert result.question == f"{HISTORY[0]['content']} How much does it beat Flamingo80B?"
    assert {"rewrite_ms", "retrieval_ms", "ttft_ms", "total_ms"} <= set(result.timings)
    assert result.citations and {c.paper_id for c in result.citations} <= {"pblip", "psparse"}
