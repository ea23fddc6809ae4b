"""The chat UI's rendering and its chat function, with the fake agent of test_app (no browser here)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from paper_agent.types import Answer, PaperRef
from paper_agent.web.gate import GenerationGate
from paper_agent.web.metrics import Metrics
from paper_agent.web.ui import ChatTurns, example_questions, linkify, plain_history
from paper_agent.web.ui_sources import highlight, panel, turn_panel
from tests.unit.test_app import PROP, QUOTE, FakeAgent, make_agent


def test_markers_link_to_this_turns_source_cards() -> None:
    html = linkify("Fast [1]. Both <b> [1, 2].", turn=3, titles={1: "A & B"})
    assert html == (
        'Fast <a class="cite" href="#src-3-1" title="A &amp; B">[1]</a>. Both &lt;b&gt; '
        '<a class="cite" href="#src-3-1" title="A &amp; B">[1]</a><a class="cite" href="#src-3-2" title="">[2]</a>.'
    )


def test_quote_is_highlighted_across_whitespace_and_case() -> None:
    got = highlight("Intro. It  predicts\nrepresentative words. End.", "it predicts representative words.")
    assert got == "<p>Intro. <mark>It  predicts\nrepresentative words.</mark> End.</p>"


def test_an_abstract_shows_an_excerpt_then_the_whole_text_on_demand() -> None:
    text = "lead " * 200 + "THE QUOTE HERE." + " tail" * 200
    excerpt, full = highlight(text, "the quote here.").split('<details class="src-full">')
    assert excerpt.startswith("<p>… lead") and excerpt.endswith("tail …</p>") and len(excerpt) < 700
    assert "<mark>THE QUOTE HERE.</mark>" in excerpt and "<mark>THE QUOTE HERE.</mark>" in full
    assert full.count("lead") == 200, "the whole abstract, on demand"


def test_a_long_text_shows_only_the_part_around_the_quote() -> None:
    text = "a " * 3000 + "THE QUOTE HERE." + " b" * 3000
    got = highlight(text, "the quote here.")
    assert "<mark>THE QUOTE HERE.</mark>" in got and "<details" not in got and len(got) < 700


def test_a_quote_not_in_the_text_is_shown_on_its_own() -> None:
    got = highlight("An abstract about something else.", "A sentence from page 7.")
    assert got == (
        '<blockquote class="src-quote"><mark>A sentence from page 7.</mark></blockquote>'
        "<p>An abstract about something else.</p>"
    )


def test_history_for_the_agent_is_plain_text() -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is PROP?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text",
                    "text": 'PROP is &lt;new&gt; <a class="cite" href="#src-1-1">[1]</a>.\n\n'
                    '<div class="answer-meta">1 paper cited · 2.0 s</div>',
                }
            ],
        },
    ]
    assert plain_history(history) == [
        {"role": "user", "content": "What is PROP?"},
        {"role": "assistant", "content": "PROP is <new> [1]."},
    ]


def test_examples_come_from_the_public_questions() -> None:
    examples = example_questions(4)
    assert len(examples) == 4 and len(set(examples)) == 4 and all(len(q) <= 130 for q in examples)
    assert example_questions(0) == []


def test_a_refusal_lists_the_closest_papers_instead_of_sources() -> None:
    closest = [PaperRef("p1", "Rotary Position Embeddings")]
    block = turn_panel(Answer("The collection does not say.", refused=True, closest=closest), 1, "Who won?", {})
    assert "Closest in the collection (not citations)" in block and "src-card" not in block
    assert "Rotary Position Embeddings" in block
    assert "Sources" in panel("", [])


@pytest.fixture
def chat(tmp_path: Path) -> tuple[ChatTurns, FakeAgent]:
    agent = make_agent(tmp_path)
    return ChatTurns(agent, GenerationGate(1, 3), Metrics()), agent


def test_chat_streams_the_draft_then_the_cited_answer_and_its_sources(chat: tuple[ChatTurns, FakeAgent]) -> None:
    turns, _ = chat
    updates = list(turns.respond("What does PROP pre-train for?", [], []))
    drafts = [message for message, _, _ in updates[:-1]]
    assert any("PROP pre-trains for retrieval" in d and "checking" in d for d in drafts)
    message, sources, finished = updates[-1]
    assert 'href="#src-1-1"' in message and "checking" not in message
    assert 'id="src-1-1"' in sources and PROP.title.split(":")[0] in sources and f"<mark>{QUOTE}</mark>" in sources
    assert finished == [finished[0]] and 'id="turn-1"' in finished[0]
    assert turns.gate.in_flight == 0


def test_a_follow_up_gets_the_history_and_its_own_turn(chat: tuple[ChatTurns, FakeAgent]) -> None:
    turns, agent = chat
    *_, (first, _, finished) = turns.respond("What does PROP pre-train for?", [], [])
    history = [{"role": "user", "content": "What does PROP pre-train for?"}, {"role": "assistant", "content": first}]
    *_, (message, sources, finished) = turns.respond("And how?", history, finished)
    _, sent_history, _ = agent.questions[-1]
    assert sent_history[0]["content"] == "What does PROP pre-train for?" and "<a" not in sent_history[1]["content"]
    assert 'href="#src-2-1"' in message and sources.index('id="turn-2"') < sources.index('id="turn-1"')
    assert len(finished) == 2


def test_chat_errors_are_shown_not_raised_as_500s(chat: tuple[ChatTurns, FakeAgent]) -> None:
    turns, _ = chat
    with pytest.raises(gr.Error, match="1 to 200 characters"):
        list(turns.respond("  ", [], []))
    turns.gate.acquire()
    with pytest.raises(gr.Error, match="retry in 3 s"):
        list(turns.respond("What is PROP?", [], []))
