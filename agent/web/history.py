"""Chat history as front ends send it (OpenAI messages, Gradio's chat) -> the agent's plain turns."""

from __future__ import annotations

import re
from typing import Any

REFERENCES_HEADING = "References:"
_REFERENCES = re.compile(r"\n+\s*(?:-{3,}\s*\n+)?\*{0,2}References:?\*{0,2}\s*\n.*\Z", re.DOTALL)


def strip_references(text: str) -> str:
    """An assistant message as the agent answered it, without the references block the app appended."""
    return _REFERENCES.sub("", text).strip()


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or a list of parts (OpenAI and Gradio both use them)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return "\n".join(part for part in (message_text(p) for p in content) if part)
    return ""


def chat_history(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Earlier turns as `{"role", "content"}` with plain text: user and assistant messages only, references cut."""
    history = []
    for message in messages:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        text = message_text(message.get("content"))
        if role == "assistant":
            text = strip_references(text)
        if text.strip():
            history.append({"role": str(role), "content": text})
    return history
