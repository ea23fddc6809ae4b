"""The composition root: builds the pipeline's parts from Settings once, and is what every front end uses.

The CLI, the web app and the evaluation harness all hold one `PaperAgent` and call the same methods, so
they cannot drift apart. Parts are built lazily: `paper-agent stats` never loads the embedding model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from agent.corpus import ReadReport, read_paths
from agent.embed import Embedder, SentenceTransformerEmbedder
from agent.index import Index, IngestStats
from agent.retrieve import Retriever
from agent.settings import BUNDLED_CORPUS, Settings, get_settings
from agent.types import PaperHit


class PaperAgent:
    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings or get_settings()
        if embedder is not None:
            self.__dict__["embedder"] = embedder

    @cached_property
    def embedder(self) -> Embedder:
        return SentenceTransformerEmbedder(self.settings.embed, batch_size=self.settings.index.embed_batch_size)

    @cached_property
    def index(self) -> Index:
        return Index(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.index, self.embedder, self.settings.retrieve)

    def ingest(self, paths: Sequence[Path] = (), *, progress: bool = True) -> tuple[ReadReport, IngestStats]:
        """Read the files (default: the bundled corpus) and bring the index up to date with them."""
        report = read_paths(paths or [BUNDLED_CORPUS])
        stats = self.index.ingest(report.papers, self.embedder, progress=progress)
        return report, stats

    def search(self, question: str, top_k: int | None = None) -> list[PaperHit]:
        return self.retriever.search(question, top_k)
