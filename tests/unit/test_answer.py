"""The answer stage with a scripted chat model: citation parsing and renumbering, verification, fallback, refusal,
the stream's order, prompt templates and follow-up rewriting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.answer import REFUSAL, answer, answer_stream, build_messages, prepare_sources
from agent.citations import Claim, json_claims, parse_claims, render_json_reply
from agent.followup import needs_context, standalone_question
from agent.prompts import PromptError, load_prompts, load_template
from agent.service import PaperAgent
from agent.settings import AnswerSettings, Settings
from agent.types import Delta, Final, Passage, Sources
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
    """Settings whose relevance bars the hash embedder always clears, so a test isolates one behaviour."""
    return AnswerSettings(**({"min_relevance": 0.0, "min_evidence": 0.0} | overrides))


def ask(reply: str, settings: AnswerSettings | None = None, passages: tuple[Passage, ...] = (SPARSE, BLIP)) -> Any:
    model = ScriptedChatModel(reply)
    result = answer(
        QUESTION, list(passages), model=model, embedder=HashEmbedder(), prompts=PROMPTS, settings=settings or lenient()
    )
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


def test_a_supported_reply_keeps_its_sentences_and_citations_renumbered_in_order_of_use() -> None:
    result, _ = ask(f"{GOOD} [2]. Sparse attention kernels are 3x faster than dense attention [1].")
    assert not result.refused
    assert result.text == (
        f"{GOOD} [1]. Sparse attention kernels are 3x faster than dense attention [2]."
    )  # passage 2 is cited first, so it becomes [1]
    assert [(c.number, c.paper_id) for c in result.citations] == [(1, "pblip"), (2, "psparse")]
    assert result.citations[0].quote.startswith("Our model outperforms Flamingo80B by 8.7%")
    assert result.citations[0].support == 1.0
    assert result.verification["outcome"] == "model"


def test_citations_to_passages_not_given_are_removed_and_the_sentence_goes_to_its_real_source() -> None:
    result, _ = ask(f"{GOOD} [7].")
    assert result.text == f"{GOOD} [1]."
    assert [c.paper_id for c in result.citations] == ["pblip"]
    assert result.verification["invalid_citations_removed"] == 1
    assert result.verification["citations_fixed"] == 1


def test_unsupported_sentences_are_dropped() -> None:
    result, _ = ask(f"{GOOD} [2]. BLIP-2 was trained by a team of 40 people in Paris [2].")
    assert result.text == f"{GOOD} [1]."
    assert [c["status"] for c in result.verification["checked"]] == ["supported", "unsupported"]
    assert result.verification["supported"] == 1 and result.verification["sentences"] == 2


def test_when_the_reply_fails_the_best_matching_source_sentence_is_quoted() -> None:
    result, _ = ask("Flamingo80B is beaten by 99% [1].", lenient(fallback_sentences=1))
    assert not result.refused and result.verification["outcome"] == "extractive"
    assert result.text == f'{BLIP.title}: "{BLIP.text.split(". ")[1]}" [1]'
    assert [c.paper_id for c in result.citations] == ["pblip"]


def test_a_quantity_question_answered_without_a_new_figure_falls_back_to_a_quote_that_has_one() -> None:
    result, _ = ask("BLIP-2 bridges the modality gap with a lightweight Querying Transformer [2].")
    assert result.verification["outcome"] == "extractive"
    assert "8.7%" in result.text


def test_with_nothing_supported_and_no_clear_evidence_the_answer_refuses() -> None:
    result, _ = ask("Flamingo80B is beaten by 99% [1].", lenient(min_evidence=1.0))
    assert result.refused and result.text == REFUSAL and result.citations == []
    assert result.verification["outcome"] == "refused"


def test_irrelevant_passages_refuse_without_asking_the_model() -> None:
    model = ScriptedChatModel()
    events = list(
        answer_stream(
            QUESTION, [SPARSE], model=model, embedder=HashEmbedder(), prompts=PROMPTS, settings=lenient(min_relevance=1)
        )
    )
    assert [type(e) for e in events] == [Sources, Final]
    final = events[-1]
    assert isinstance(final, Final) and final.answer.refused and final.answer.text == REFUSAL
    assert model.calls == []


def test_no_passages_at_all_is_a_refusal() -> None:
    result, model = ask("anything", AnswerSettings(), passages=())
    assert result.refused and result.passages == [] and model.calls == []


def test_the_stream_gives_sources_then_the_reply_then_the_verified_answer() -> None:
    reply = f"{GOOD} [2]."
    events = list(
        answer_stream(
            QUESTION, [SPARSE, BLIP], model=ScriptedChatModel(reply), embedder=HashEmbedder(), prompts=PROMPTS,
            settings=lenient(),
        )
    )  # fmt: skip
    assert isinstance(events[0], Sources) and [p.paper_id for p in events[0].passages] == ["psparse", "pblip"]
    deltas = [e for e in events[1:-1] if isinstance(e, Delta)]
    assert len(deltas) == len(events) - 2 and "".join(d.text for d in deltas) == reply
    final = events[-1]
    assert isinstance(final, Final) and final.answer.citations[0].paper_id == "pblip"
    assert {"select_ms", "ttft_ms", "generation_ms", "total_ms"} <= set(final.answer.timings)


def test_a_structured_reply_is_asked_for_with_a_schema_and_verified_like_text() -> None:
    reply = json.dumps({"sentences": [{"source": 2, "text": GOOD + "."}]})
    result, model = ask(reply, lenient(output="json"))
    schema = model.calls[0]["json_schema"]
    assert schema["properties"]["sentences"]["items"]["properties"]["source"]["enum"] == [1, 2]
    assert result.text == f"{GOOD} [1]." and result.citations[0].paper_id == "pblip"


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
    from agent.types import Paper

    papers = [Paper(p.paper_id, p.title, p.text, "unit.jsonl") for p in (BLIP, SPARSE)]
    agent.index.ingest(papers, agent.embedder, progress=False)
    result = agent.ask("How much does it beat Flamingo80B?", history=HISTORY)
    assert result.question == f"{HISTORY[0]['content']} How much does it beat Flamingo80B?"
    assert {"rewrite_ms", "retrieval_ms", "ttft_ms", "total_ms"} <= set(result.timings)
    assert result.citations and {c.paper_id for c in result.citations} <= {"pblip", "psparse"}
