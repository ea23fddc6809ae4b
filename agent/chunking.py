"""Papers -> token-aware chunks (llama-index's `SentenceSplitter` over cl100k_base tokens), and what is embedded."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from paper_agent.settings import IndexSettings
from paper_agent.types import Chunk, Paper


@lru_cache(maxsize=4)
def _splitter(chunk_tokens: int, chunk_overlap: int) -> Any:
    import tiktoken
    from llama_index.core.node_parser import SentenceSplitter

    encoding = tiktoken.get_encoding("cl100k_base")  # read from llama-index's bundled cache (agent.offline)
    return SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=chunk_overlap, tokenizer=encoding.encode)


def chunk_paper(paper: Paper, settings: IndexSettings) -> list[Chunk]:
    """Token-aware chunks of a paper's text, each knowing its position and (for PDFs) its page."""
    texts = _splitter(settings.chunk_tokens, settings.chunk_overlap).split_text(paper.text)
    chunks, cursor = [], 0
    for position, text in enumerate(texts):
        start = paper.text.find(text[:64], cursor)
        cursor = max(cursor, start)
        chunks.append(
            Chunk(
                id=f"{paper.id}:{position}",
                paper_id=paper.id,
                title=paper.title,
                position=position,
                text=text,
                page=_page_at(paper, start),
                source=paper.source,
            )
        )
    return chunks


def _page_at(paper: Paper, offset: int) -> int | None:
    page = None
    for number, start in paper.page_starts:
        if start > offset:
            break
        page = number
    return page


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the title gives every chunk of a paper the paper's topic, not just its first."""
    return f"{chunk.title}\n{chunk.text}"
