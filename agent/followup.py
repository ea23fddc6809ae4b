"""Follow-up questions -> standalone questions, so retrieval sees what "it" refers to.

Only a question that leans on the conversation (a pronoun like "it"/"they", "the paper", or hardly any content
words of its own) is rewritten. The model rewrites it; a small model's rewrite is accepted only if it is one
short question that keeps the follow-up's own content words and brings in some of the earlier question's, else
the earlier question and the follow-up are joined, which retrieval handles well.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from paper_agent.prompts import Template
from paper_agent.verify import content_words

if TYPE_CHECKING:
    from paper_agent.llm import ChatModel

_LEANS_ON_CONTEXT = re.compile(
    r"\b(?:it|its|this|that|these|those|they|them|their|he|she|his|her|former|latter|same|above"
    r"|the (?:paper|work|method|model|approach|study|authors?|technique|system|benchmark|dataset))\b",
    re.IGNORECASE,
)
_MAX_CHARS = 400


def previous_question(history: list[dict[str, Any]] | None) -> str | None:
    """The last user message of the conversation, if any."""
    for turn in reversed(history or []):
        if turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return None


def needs_context(question: str) -> bool:
    """Whether the question refers back to the conversation or is too short to stand alone."""
    return bool(_LEANS_ON_CONTEXT.search(question)) or len(content_words(question)) < 3


def acceptable_rewrite(rewrite: str, question: str, previous: str) -> bool:
    """A rewrite is kept if it is one short line ending in "?" with the follow-up's content words and some of the
    earlier question's (a small model often answers instead, or chats: "The answer to this question is ...")."""
    if not rewrite or "\n" in rewrite or len(rewrite) > _MAX_CHARS or not rewrite.endswith("?"):
        return False
    words = content_words(rewrite)
    own = content_words(question) - content_words(previous)
    return own <= words and bool(words & (content_words(previous) - content_words(question)))


def standalone_question(
    question: str, history: list[dict[str, Any]] | None, model: ChatModel, template: Template
) -> str:
    """The question to search for: `question` itself unless it is a follow-up that needs the conversation."""
    previous = previous_question(history)
    if previous is None or not needs_context(question):
        return question
    messages = [{"role": "user", "content": template.render(previous=previous, question=question)}]
    rewrite = model.complete(messages, max_tokens=60).strip().strip('"').strip()
    return rewrite if acceptable_rewrite(rewrite, question, previous) else f"{previous} {question}"
