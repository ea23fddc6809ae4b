"""The chat UI's sources panel: each cited paper's card with the supporting quote highlighted in its abstract.

Plain HTML from an `Answer` (or the `Sources` shown while it is answered); every card has an id that the
answer's [n] links point to (`src-{turn}-{n}`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from paper_agent.types import Answer, Paper, PaperRef, Passage, Sources

EXCERPT = 600  # characters around the quote shown at once; the whole abstract is one click away
WHOLE_TEXT = 3000  # longer texts (a PDF's) are shown only around the quote


def highlight(text: str, quote: str) -> str:
    """An excerpt of `text` around `quote`, marked (matched across whitespace and case), then the whole abstract."""
    words = quote.split()
    match = re.search(r"\s+".join(map(re.escape, words)), text, re.IGNORECASE) if words else None
    if match is None:  # a quote from another part of a long text: show it, then the text's start
        quoted = f'<blockquote class="src-quote"><mark>{html.escape(quote)}</mark></blockquote>' if quote else ""
        return quoted + _excerpt(text, 0, 0, EXCERPT)
    start, end = match.span()
    shown = _excerpt(text, start, end, EXCERPT)
    if len(text) <= EXCERPT or len(text) > WHOLE_TEXT:
        return shown
    return f'{shown}<details class="src-full"><summary>Full abstract</summary>{_excerpt(text, start, end)}</details>'


def _excerpt(text: str, start: int, end: int, width: int | None = None) -> str:
    """`text[start:end]` marked, with up to `width` characters around it cut at spaces (None: all of it)."""
    lo, hi = 0, len(text)
    if width is not None and len(text) > width:
        room = max(0, width - (end - start)) // 2
        lo, hi = max(0, start - room), min(len(text), end + room)
        lo = text.find(" ", lo) + 1 if lo > 0 and " " in text[lo:start] else lo
        hi = text.rfind(" ", end, hi) if hi < len(text) and " " in text[end:hi] else hi
    marked = f"<mark>{html.escape(text[start:end])}</mark>" if end > start else ""
    before, after = html.escape(text[lo:start].lstrip()), html.escape(text[end:hi].rstrip())
    return f"<p>{'… ' * (lo > 0)}{before}{marked}{after}{' …' * (hi < len(text))}</p>"


def quote_page(quote: str, paper_id: str, passages: Sequence[Passage]) -> int | None:
    """The page (of a PDF) of the retrieved chunk of `paper_id` that holds `quote`; None for papers without pages."""
    words = " ".join(quote.split())
    for p in passages:
        if p.paper_id == paper_id and p.page is not None and words and words in " ".join(p.text.split()):
            return int(p.page)
    return None


def source_card(
    number: int, turn: int, paper: Paper | None, title: str, quote: str, support: float, page: int | None = None
) -> str:
    meta = []
    if paper is not None and paper.authors:
        authors = ", ".join(paper.authors[:3]) + (" et al." if len(paper.authors) > 3 else "")
        meta.append(html.escape(authors))
    if paper is not None and paper.year:
        meta.append(str(paper.year))
    meta.append(f"<code>{html.escape(paper.id if paper else '')}</code>")
    if page is not None:
        meta.append(f'<span class="src-page">p. {page}</span>')
    meta.append(f"support {support:.0%}")
    heading = html.escape(title)
    if paper is not None and paper.url:
        heading = f'<a href="{html.escape(paper.url)}" target="_blank" rel="noopener">{heading}</a>'
    text = highlight(paper.text, quote) if paper is not None else highlight("", quote)
    return (
        f'<article class="src-card" id="src-{turn}-{number}"><div class="src-num">{number}</div>'
        f'<div class="src-body"><h4>{heading}</h4><div class="src-meta">{" · ".join(meta)}</div>'
        f'<div class="src-abstract">{text}</div></div></article>'
    )


def nearest_papers(papers: Sequence[Passage] | Sequence[PaperRef], limit: int = 5) -> str:
    seen: dict[str, str] = {}
    for p in papers:
        seen.setdefault(p.paper_id, p.title)
    items = "".join(f"<li>{html.escape(t)}</li>" for t in list(seen.values())[:limit])
    return f'<ul class="src-nearest">{items}</ul>'


def turn_heading(turn: int, question: str) -> str:
    q = html.escape(question)
    number = f'<span class="turn-n">Q{turn}</span>'
    return f'<div class="turn-q">{number}<span class="turn-text" title="{q}">{q}</span></div>'


def turn_panel(answer: Answer, turn: int, question: str, papers: Mapping[str, Paper | None]) -> str:
    """One answered question's block of the sources panel."""
    head = turn_heading(turn, question)
    if answer.citations:
        cards = "".join(
            source_card(
                c.number,
                turn,
                papers.get(c.paper_id),
                c.title,
                c.quote,
                c.support,
                quote_page(c.quote, c.paper_id, answer.passages),
            )
            for c in answer.citations
        )
        cited = {c.paper_id for c in answer.citations}
        others = [p for p in answer.passages if p.paper_id not in cited]
        if others:
            cards += f"<details><summary>Also retrieved, not cited</summary>{nearest_papers(others)}</details>"
    else:
        note = "The collection does not answer this. Closest in the collection (not citations):"
        cards = f'<p class="src-empty">{note}</p>{nearest_papers(answer.closest or answer.passages)}'
    return f'<section class="turn" id="turn-{turn}">{head}{cards}</section>'


def pending_panel(sources: Sources, turn: int, question: str) -> str:
    papers = len({p.paper_id for p in sources.passages})
    head = turn_heading(turn, question)
    note = f'<p class="src-empty">Found {len(sources.passages)} passages in {papers} papers; answering…</p>'
    return f'<section class="turn pending">{head}{note}{nearest_papers(sources.passages)}</section>'


def panel(current: str, finished: list[str]) -> str:
    """The whole panel: the current turn open, earlier turns folded away (their [n] links still work)."""
    if not current and not finished:
        return (
            '<div class="src-panel"><h3>Sources</h3><p class="src-empty">Each [n] in an answer points here: the '
            "cited paper's abstract with the supporting sentence highlighted.</p></div>"
        )
    older = "".join(f"<details><summary>Earlier question</summary>{block}</details>" for block in finished)
    return f'<div class="src-panel"><h3>Sources</h3>{current}{older}</div>'
