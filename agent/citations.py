"""A model's reply -> claims: its sentences, each with the source numbers it cites.

Citation keys are ours: the prompt numbers the passages [1]..[n], and the reply cites them as `[1]`, `[1, 2]`,
`[1][2]`, `[1-2]` or `[Source 1]`. A structured (JSON-schema) reply is a list of {source, text} items instead;
`render_json_reply` turns it, even half-streamed, into the same "text [n]" form a reader sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paper_agent.verify import content_words, split_sentences

_CITATION = re.compile(r"\[\s*(?:sources?\s*)?(\d+(?:\s*(?:,|;|and|-)\s*(?:sources?\s*)?\d+)*)\s*\]", re.IGNORECASE)
_MARKER_AFTER_STOP = re.compile(r"([.!?])\s*((?:\[[^\[\]]{1,20}\]\s*)+)")  # "text. [1]" -> "text [1]."
_LIST_PREFIX = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+", re.MULTILINE)  # "1. ", "- " opening a line
_JSON_ITEM = re.compile(r'"source"\s*:\s*(\d+)\s*,\s*"text"\s*:\s*"((?:[^"\\]|\\.)*)(")?')
_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]*$")


@dataclass(frozen=True)
class Claim:
    """One sentence of the reply and the source numbers it cites."""

    text: str
    numbers: tuple[int, ...]


def parse_claims(reply: str, *, cut_off: bool = False) -> list[Claim]:
    """The reply's sentences with the numbers each cites, markers taken out of the text. Repeats and sentences
    without content are skipped; with `cut_off` (the reply hit the token limit) an unfinished last sentence is too."""
    flat = " ".join(_LIST_PREFIX.sub("", reply).split())
    flat = _MARKER_AFTER_STOP.sub(lambda m: f" {m.group(2).strip()}{m.group(1)} ", flat)
    sentences = split_sentences(flat)
    if cut_off and sentences and not _ENDS_SENTENCE.search(_CITATION.sub("", sentences[-1]).strip()):
        sentences.pop()
    claims, seen = [], set()
    for sentence in sentences:
        numbers = [n for group in _CITATION.findall(sentence) for n in _numbers_in(group)]
        text = _CITATION.sub("", sentence)
        text = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.split())).strip()
        if not content_words(text) or text.lower() in seen:  # empty, or the small model repeating itself
            continue
        seen.add(text.lower())
        claims.append(Claim(text, tuple(dict.fromkeys(numbers))))
    return claims


def _numbers_in(group: str) -> list[int]:
    """`1, 2` -> [1, 2]; `1-3` -> [1, 2, 3] (a short range only)."""
    if m := re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", group):
        low, high = int(m.group(1)), int(m.group(2))
        if 0 < high - low < 10:
            return list(range(low, high + 1))
    return [int(x) for x in re.findall(r"\d+", group)]


def render_json_reply(raw: str) -> str:
    """The readable text of a (possibly unfinished) structured reply: "text [n] text [m]"."""
    parts = []
    for number, body, closed in _JSON_ITEM.findall(raw):
        text = _unescape(body).strip()
        parts.append(f"{text} [{number}]" if closed else text)
    return " ".join(p for p in parts if p)


def json_claims(raw: str, *, cut_off: bool = False) -> list[Claim]:
    """The claims of a structured reply: every sentence of an item cites that item's source; an item whose
    text never closed (the reply was cut off) is left out."""
    marked = [
        f"{sentence} [{number}]"
        for number, body, closed in _JSON_ITEM.findall(raw)
        if closed or not cut_off
        for sentence in split_sentences(_unescape(body))
    ]
    return parse_claims(" ".join(marked))


def _unescape(body: str) -> str:
    """A JSON string body decoded; an escape cut off at the end of a partial reply is dropped."""
    body = re.sub(r"\\(u[0-9a-fA-F]{0,3})?$", "", body)
    body = re.sub(r"\\u[0-9a-fA-F]{4}", lambda m: chr(int(m.group()[2:], 16)), body)
    plain = {"n": " ", "t": " ", "r": " ", "b": "", "f": ""}
    return re.sub(r'\\(["\\/bfnrt])', lambda m: plain.get(m.group(1), m.group(1)), body)
