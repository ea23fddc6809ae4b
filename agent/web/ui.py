"""The Gradio chat UI, mounted at `/` of the web app: streamed answers, [n] markers, a sources panel.

It calls the same `PaperAgent.ask_stream` as the HTTP routes and passes the chat so far as history, so a
follow-up question ("and what data did they use?") is answered in context. Each [n] in an answer links to a
card in the sources panel: the cited paper's title and abstract with the supporting quote highlighted.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import gradio as gr
from fastapi import FastAPI

from paper_agent.errors import AgentError, ModelServerUnavailable, Overloaded
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.service import PaperAgent
from paper_agent.types import Answer, Delta, Final, Sources
from paper_agent.web.gate import GenerationGate
from paper_agent.web.history import chat_history
from paper_agent.web.metrics import Metrics
from paper_agent.web.ui_sources import panel, pending_panel, turn_panel
from paper_agent.web.ui_style import CSS, HEAD, THEME
from paper_agent.web.ui_upload import upload_zone
from paper_agent.writer import PaperWriter

EXAMPLES_FILE = DEFAULT_QUESTIONS
_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_META = re.compile(r'<div class="answer-meta">.*?</div>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")

Turn = tuple[str, str, list[str]]  # (chat message, sources panel HTML, finished turns' panels)


def example_questions(n: int) -> list[str]:
    """Up to `n` short, answerable questions from the public question set, for the empty chat."""
    if n == 0 or not EXAMPLES_FILE.is_file():
        return []
    rows = [json.loads(line) for line in EXAMPLES_FILE.read_text().splitlines() if line.strip()]
    picked: list[str] = []
    for kind in ("lookup", "detail", "multi", "lookup", "detail"):  # one of each kind first, then more
        for row in rows:
            q = row["question"]
            if row.get("type") == kind and len(q) <= 130 and q not in picked:
                picked.append(q)
                break
    return picked[:n]


# --- chat messages --------------------------------------------------------------------------------------


def linkify(text: str, turn: int, titles: dict[int, str]) -> str:
    """Escaped text whose [n] markers link to the cards of this turn's sources panel."""

    def link(match: re.Match[str]) -> str:
        numbers = re.split(r"\s*[,;]\s*", match.group(1))
        return "".join(
            f'<a class="cite" href="#src-{turn}-{n}" title="{html.escape(titles.get(int(n), ""))}">[{n}]</a>'
            for n in numbers
        )

    return _MARKER.sub(link, html.escape(text, quote=False))


def answer_message(answer: Answer, turn: int) -> str:
    titles = {c.number: c.title for c in answer.citations}
    body = linkify(answer.text, turn, titles)
    papers = len({c.paper_id for c in answer.citations})
    seconds = answer.timings.get("total_ms", 0) / 1000
    facts = [f"{papers} paper{'s' * (papers != 1)} cited" if papers else "no paper supports an answer"]
    if answer.answerability is not None:
        facts.append(f"answerability {answer.answerability:.0%}")
    if seconds:
        facts.append(f"{seconds:.1f} s")
    return f'{body}\n\n<div class="answer-meta">{" · ".join(facts)}</div>'


def draft_message(text: str, turn: int) -> str:
    status = '<div class="answer-meta checking">draft · checked against its sources when complete</div>'
    return f"{linkify(text, turn, {})}\n\n{status}" if text else '<div class="answer-meta checking">thinking…</div>'


def plain_history(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat as the agent wants it: text only, no links, no status lines."""
    cleaned = []
    for message in chat_history(history):
        text = html.unescape(_TAG.sub("", _META.sub("", message["content"]))).strip()
        if text:
            cleaned.append({"role": message["role"], "content": text})
    return cleaned


# --- the app --------------------------------------------------------------------------------------------


class ChatTurns:
    """The chat function: streams one question's answer into the chat and its sources into the panel."""

    def __init__(self, agent: PaperAgent, gate: GenerationGate, metrics: Metrics) -> None:
        self.agent = agent
        self.gate = gate
        self.metrics = metrics
        self.max_chars = agent.settings.serve.max_question_chars

    def respond(self, message: str, history: list[dict[str, Any]], finished: list[str]) -> Iterator[Turn]:
        question = (message or "").strip()
        if not question or len(question) > self.max_chars:
            raise gr.Error(f"A question is 1 to {self.max_chars} characters.")
        turn = 1 + sum(1 for m in history if m.get("role") == "user")
        try:
            with self.gate.admit():
                yield from self._answer(question, turn, plain_history(history), finished or [])
        except Overloaded as error:
            raise gr.Error(f"Too many questions at once; please retry in {error.retry_after_s} s.") from error
        except ModelServerUnavailable as error:
            raise gr.Error(f"The model server is not answering ({error.reason}). Search still works.") from error
        except AgentError as error:
            raise gr.Error(str(error)) from error

    def _answer(self, question: str, turn: int, history: list[dict[str, str]], finished: list[str]) -> Iterator[Turn]:
        draft, current = "", ""
        started = time.perf_counter()
        yield draft_message("", turn), panel("", finished), finished
        for event in self.agent.ask_stream(question, history=history):
            if isinstance(event, Sources):
                current = pending_panel(event, turn, question)
                yield draft_message("", turn), panel(current, finished), finished
            elif isinstance(event, Delta):
                if not draft:
                    self.metrics.ttft.labels("ui").observe(time.perf_counter() - started)
                draft += event.text
                yield draft_message(draft, turn), panel(current, finished), finished
            elif isinstance(event, Final):
                papers = self.agent.index.get_papers(c.paper_id for c in event.answer.citations)
                block = turn_panel(event.answer, turn, question, papers)
                yield answer_message(event.answer, turn), panel(block, finished), [block, *finished]


def header_html(agent: PaperAgent) -> str:
    """The page's title bar, with the collection's size as it is now."""
    try:
        size = f"{agent.index.stats()['papers']} research papers"
    except AgentError:
        size = "the paper collection"
    return (
        f'<header class="pa-header"><div><h1>Paper Agent</h1><p>Ask about {size}. Every claim cites its '
        "source; when the collection does not say, the agent says so.</p></div>"
        '<nav><a href="/docs" target="_blank">HTTP API</a><span>OpenAI-compatible at <code>/v1</code></span>'
        "</nav></header>"
    )


def build_ui(agent: PaperAgent, gate: GenerationGate, metrics: Metrics, writer: PaperWriter | None = None) -> gr.Blocks:
    """The chat page: conversation on the left, sources on the right (under a drop zone for papers, given a writer)."""
    examples = example_questions(agent.settings.serve.examples)
    with gr.Blocks(title="Paper Agent", fill_height=True) as blocks:
        header = gr.HTML(header_html(agent))
        # read again on every page load, so papers added since the app started are counted
        blocks.load(partial(header_html, agent), outputs=[header], show_progress="hidden", api_visibility="private")
        finished = gr.State([])
        sources = gr.HTML(panel("", []), elem_id="sources", render=False)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                gr.ChatInterface(
                    ChatTurns(agent, gate, metrics).respond,  # a bound generator: Gradio then streams it
                    chatbot=gr.Chatbot(
                        elem_id="chat",
                        show_label=False,
                        height="66vh",
                        buttons=["copy"],
                        feedback_options=None,
                        placeholder="<b>Ask a question about the papers</b><br>or start from an example:",
                    ),
                    textbox=gr.Textbox(
                        placeholder="e.g. Which papers pre-train specifically for ad-hoc retrieval?",
                        elem_id="question",
                        max_lines=6,
                        submit_btn=True,
                        stop_btn=True,
                    ),
                    examples=[[q, None] for q in examples] or None,
                    additional_inputs=[finished],
                    additional_outputs=[sources, finished],
                    api_name="chat",
                    concurrency_limit=agent.settings.serve.max_queue,
                    flagging_mode="never",
                    fill_height=True,
                )
            with gr.Column(scale=2, elem_classes="src-column"):
                if writer is not None:
                    upload_zone(writer)
                sources.render()
    return blocks


def mount_ui(
    app: FastAPI, agent: PaperAgent, gate: GenerationGate, metrics: Metrics, writer: PaperWriter | None = None
) -> None:
    """Mount the chat page at `/`; with an API key set, the page asks for it (any user name)."""
    key = agent.settings.serve.api_key
    gr.mount_gradio_app(
        app,
        build_ui(agent, gate, metrics, writer),
        max_file_size=agent.settings.serve.max_upload_bytes,
        path="/",
        auth=(lambda _user, password: secrets.compare_digest(password.encode(), key.encode())) if key else None,
        auth_message="Sign in with any user name and the app's API key as the password." if key else None,
        footer_links=["api"],
        theme=THEME,
        css=CSS,
        head=HEAD,
    )
