"""Prompt templates: plain-text files in `prompts/` with `{named}` slots, checked when they are loaded.

Each template declares the slots it must have; a file with a slot missing, or a slot nobody fills, fails at
start-up with `PromptError` naming the file and the slot, not at the first question with a KeyError.
Literal braces are written `{{` and `}}`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from paper_agent.errors import AgentError

PROMPTS_DIR = Path(str(files(__name__)))  # the templates beside this file; pip installs packages unzipped

# name -> the slots its file must use, exactly. `system` has none: it is the fixed prefix every request
# shares, so llama.cpp's prompt cache can reuse its evaluation across questions.
SLOTS: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "answer": frozenset({"sources", "question"}),
    "source": frozenset({"number", "title", "text"}),
    "rewrite": frozenset({"previous", "question"}),
    "rerank": frozenset({"question", "title", "text"}),
}


class PromptError(AgentError):
    """A prompt template is missing, unreadable, or its slots are not the ones the code fills."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"prompt template {path}: {reason}")


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    slots: frozenset[str]

    def render(self, **values: object) -> str:
        """The template with every slot filled; a missing or unexpected value is a programming error."""
        given = frozenset(values)
        if given != self.slots:
            raise ValueError(f"template {self.name!r} takes {sorted(self.slots)}, got {sorted(given)}")
        return self.text.format(**values)


def slots_of(text: str) -> frozenset[str]:
    """The `{named}` slots used in `text` (positional `{}` slots count as the name "")."""
    return frozenset(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)


def load_template(name: str, folder: Path = PROMPTS_DIR) -> Template:
    """One template, checked against `SLOTS[name]`."""
    path = folder / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise PromptError(path, f"cannot read it ({error})") from error
    try:
        used = slots_of(text)
    except ValueError as error:  # an unmatched brace
        raise PromptError(path, str(error)) from error
    expected = SLOTS[name]
    if missing := sorted(expected - used):
        raise PromptError(path, f"missing slot(s) {', '.join('{' + s + '}' for s in missing)}")
    if unknown := sorted(used - expected):
        raise PromptError(path, f"unknown slot(s) {', '.join('{' + s + '}' for s in unknown)}")
    return Template(name=name, text=text, slots=expected)


def load_prompts(folder: Path = PROMPTS_DIR) -> dict[str, Template]:
    """Every template the answerer uses, all checked; the first bad one raises `PromptError`."""
    return {name: load_template(name, folder) for name in SLOTS}
