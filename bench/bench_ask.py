"""`ask` against the raw model server on the same prompt: time to first token and generation speed.

    PAPER_AGENT_DATA_DIR=/tmp/my-index .venv/bin/python bench/bench_ask.py [--url URL] [--questions 8]

Without `--url` it starts a private llama.cpp server on a free port (with `--url`, use a server that has not
seen these questions: llama.cpp keeps earlier prompts in RAM and does not process a repeated one again). Each
public-set question is asked through `PaperAgent.ask_stream` (retrieval, sentence selection, prompt, streaming,
verification), and right after, the exact messages it sent go straight to the server through the `ChatModel`
seam, with the user message's first letter's case flipped so that the server's prompt cache can reuse only the
shared system prompt for it, as it could for `ask`.

- ask TTFT: from calling `ask_stream` to the model's first token (what a user waits for); raw TTFT: from the
  request to the first token. Also: time until the Sources event (before any model work).
- tokens/s: streamed pieces (one token each on llama.cpp and vLLM) after the first, over the time they took.
Medians; ratios ask/raw (goal: TTFT within 1.1x of raw, the same tokens/s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.embed import use_threads
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.llm import ChatModel, resolve_model
from paper_agent.llm_server import LocalServer, free_port
from paper_agent.service import PaperAgent
from paper_agent.settings import Settings
from paper_agent.types import Sources


@dataclass
class Stream:
    """When a streamed reply started, its first and last piece, and how many pieces."""

    started: float
    first: float | None = None
    last: float | None = None
    pieces: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)

    def tokens_per_s(self) -> float | None:
        if self.first is None or self.last is None or self.pieces < 2 or self.last <= self.first:
            return None
        return (self.pieces - 1) / (self.last - self.first)


class TimedModel:
    """A ChatModel that forwards to another and times every streamed reply (the agent's view of the server)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner, self.url, self.model = inner, inner.url, inner.model
        self.streams: list[Stream] = []

    def stream(self, messages: list[dict[str, Any]], **options: Any) -> Iterator[str]:
        record = Stream(started=time.perf_counter(), messages=messages)
        self.streams.append(record)
        for piece in self.inner.stream(messages, **options):
            now = time.perf_counter()
            record.first = record.first or now
            record.last, record.pieces = now, record.pieces + 1
            yield piece

    def complete(self, messages: list[dict[str, Any]], **options: Any) -> str:
        return self.inner.complete(messages, **options)


def ask_once(agent_: PaperAgent, timed: TimedModel, question: str) -> dict[str, Any] | None:
    """Ask one question; TTFT from the call, and when the Sources event came. None if the model was not asked."""
    started = time.perf_counter()
    sources_at = None
    for event in agent_.ask_stream(question):
        if isinstance(event, Sources):
            sources_at = time.perf_counter()
    stream = timed.streams[-1] if timed.streams and timed.streams[-1].started >= started else None
    if stream is None or stream.first is None or sources_at is None:
        return None  # refused before generating: there is no raw counterpart to compare
    return {"messages": stream.messages, "ttft": stream.first - started, "sources": sources_at - started,
            "tps": stream.tokens_per_s()}  # fmt: skip


def uncached(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same messages with the user message's first letter's case flipped: same length, but llama.cpp's prompt
    cache (which keeps earlier prompts in RAM) can reuse only the system prompt, as it could for `ask`."""
    system, user = messages[0], messages[1]
    text = user["content"]
    return [system, {**user, "content": text[:1].swapcase() + text[1:]}, *messages[2:]]


def raw_once(model: ChatModel, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
    """The same prompt straight to the server through the `ChatModel` seam."""
    timed = TimedModel(model)
    for _ in timed.stream(uncached(messages), max_tokens=max_tokens):
        pass
    s = timed.streams[-1]
    return {"ttft": (s.first or s.started) - s.started, "tps": s.tokens_per_s()}


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def report(ask: list[dict[str, Any]], raw: list[dict[str, Any]]) -> None:
    """Medians, the ratio of medians, and the median of per-question ratios (steadier on a busy machine)."""
    print(f"questions compared: {len(ask)}")
    sources = 1000 * (median([r["sources"] for r in ask]) or 0)
    print(f"sources shown after    {sources:7.1f} ms (ask, before any model work)")
    rows = [
        ("time to first token", "ttft", 1000.0, "ms", [a["ttft"] for a in ask]),
        ("  of which the model", "ttft", 1000.0, "ms", [a["ttft"] - a["sources"] for a in ask]),
        ("generation speed", "tps", 1.0, "tok/s", [a["tps"] for a in ask]),
    ]
    for label, key, scale, unit, ours in rows:
        theirs = [r[key] for r in raw]
        a, b = median(ours), median(theirs)
        pairs = median([x / y for x, y in zip(ours, theirs) if x and y])
        ratio = f"ratio {a / b:.2f}x (per question {pairs:.2f}x)" if a and b and pairs else ""
        print(f"{label:<22} {scale * (a or 0):7.1f} {unit} ask {scale * (b or 0):7.1f} {unit} raw   {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an OpenAI-compatible /v1 URL; unset = start a private llama.cpp server")
    parser.add_argument("--questions", type=int, default=8, help="answerable public-set questions to use")
    args = parser.parse_args()
    path = DEFAULT_QUESTIONS
    public = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    questions = [q["question"] for q in public if q["gold_ids"]][: max(4, args.questions)]

    settings = Settings()
    settings = settings.model_copy(update={"answer": settings.answer.model_copy(update={"rewrite_followups": False})})
    server = None
    if args.url:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"base_url": args.url})})
    else:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"port": free_port()})})
        server = LocalServer(settings, log_path=Path(tempfile.mkdtemp(prefix="bench-ask-")) / "llm-server.log")
        server.start()
    try:
        timed = TimedModel(resolve_model(settings))
        agent_ = PaperAgent(settings, chat_model=timed)
        # As `paper-agent serve` does: `serve.embed_threads` for query-time embedding on ONNX Runtime (its threads
        # sleep between runs), one on PyTorch (its OpenMP threads spin against the model server's: ~25x slower).
        use_threads(settings.query_threads, agent_.embedder, agent_.sentence_embedder)
        agent_.ask("warm-up: which paper introduces sparse attention kernels?")  # loads models, fills the cache
        asked, raw = [], []
        for question in questions:  # interleaved, so both sides see the same load on a shared machine
            row = ask_once(agent_, timed, question)
            if row is not None:
                asked.append(row)
                raw.append(raw_once(timed.inner, row["messages"], settings.answer.max_tokens))
        report(asked, raw)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
