"""The web layer's shared parts: the generation gate, chat-history cleanup."""

from __future__ import annotations

import pytest

from paper_agent.errors import Overloaded
from paper_agent.web.gate import GenerationGate
from paper_agent.web.history import chat_history, strip_references


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
