"""The web layer's shared parts: the generation gate, batched query embedding, chat-history cleanup."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agent.errors import Overloaded
from agent.serving import BatchingEmbedder, GenerationGate, chat_history, strip_references
from tests.conftest import HashEmbedder


class CountingEmbedder(HashEmbedder):
    """The hash embedder, recording the size of each call; can be told to fail or to wait."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        self.gate.wait(5)
        self.calls.append(len(texts))
        if self.fail:
            raise RuntimeError("model broke")
        return super().embed(texts)


def test_gate_refuses_past_its_limit_and_reopens() -> None:
    rejected: list[int] = []
    gate = GenerationGate(2, 9, on_reject=lambda: rejected.append(1))
    gate.acquire()
    with gate.admit():
        with pytest.raises(Overloaded) as refused:
            gate.acquire()
        assert refused.value.retry_after_s == 9 and rejected == [1]
    gate.release()
    assert gate.in_flight == 0
    with gate.admit():
        assert gate.in_flight == 1


def test_batching_embedder_gives_each_caller_its_own_vector() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner)
    texts = [f"query number {i} about topic {i % 3}" for i in range(12)]
    inner.gate.clear()  # hold the model so that the queries pile up and go as batches
    results: dict[str, np.ndarray] = {}
    threads = [threading.Thread(target=lambda t=t: results.update({t: batching.embed([t])})) for t in texts]
    for thread in threads:
        thread.start()
    inner.gate.set()
    for thread in threads:
        thread.join(5)
    expected = HashEmbedder().embed(texts)
    for text, vector in zip(texts, expected):
        assert results[text].shape == (1, HashEmbedder.dim)
        np.testing.assert_allclose(results[text][0], vector)
    assert sum(inner.calls) == 12 and len(inner.calls) < 12, "waiting queries share model calls"


def test_batching_embedder_passes_batches_through_and_reports_errors() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner)
    assert batching.embed(["a", "b", "c"]).shape == (3, HashEmbedder.dim) and inner.calls == [3]
    inner.fail = True
    with pytest.raises(RuntimeError, match="model broke"):
        batching.embed(["a"])
    inner.fail = False
    assert batching.embed(["a"]).shape == (1, HashEmbedder.dim), "the worker survives an error"
    assert batching.name == inner.name


def test_history_keeps_the_verified_answer_without_references() -> None:
    assert strip_references('Verified [1].\n\nReferences:\n[1] T (p1): "q"\n[2] U (p2): "r"') == "Verified [1]."
    assert strip_references("Plain answer.") == "Plain answer."
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Q1"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": 'A1 [1].\n\nReferences:\n[1] T (p1): "q"'},
        {"role": "tool", "content": "ignored"},
    ]
    assert chat_history(messages) == [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1 [1]."}]
