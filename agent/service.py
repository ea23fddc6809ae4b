"""The composition root: builds the pipeline's parts from Settings once, and is what every front end uses.

The CLI, the web app and the evaluation harness all hold one `PaperAgent` and call the same methods, so
they cannot drift apart. Parts are built lazily: `paper-agent stats` never loads the embedding model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paper_agent.corpus import ReadReport, read_paths
from paper_agent.data import CORPUS
from paper_agent.decide import Calibration, Decision, decide, load_calibration
from paper_agent.embed import Embedder, make_embedder, make_sentence_embedder, sentence_settings
from paper_agent.errors import AgentError
from paper_agent.generation import Write
from paper_agent.index import Index, IngestStats, OnBatch
from paper_agent.lexical import LexicalIndex
from paper_agent.live import LiveIndex
from paper_agent.prompts import PROMPTS_DIR, load_prompts
from paper_agent.rerank import LLMReranker, TokenScorer
from paper_agent.retrieve import Reranker, Retriever
from paper_agent.sentence_store import SentenceStats
from paper_agent.settings import Settings, get_settings
from paper_agent.sources import Source, evidence_passage, prepare_sources
from paper_agent.types import Answer, PaperHit, StreamEvent

if TYPE_CHECKING:
    from paper_agent.llm import ChatModel


class PaperAgent:
    def __init__(
        self, settings: Settings | None = None, embedder: Embedder | None = None, chat_model: ChatModel | None = None
    ) -> None:
        self.settings = settings or get_settings()
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        if chat_model is not None:
            self.__dict__["chat_model"] = chat_model
        # Read and checked now, so a template with a wrong slot fails at start-up, not at the first question.
        self.prompts = load_prompts(self.settings.answer.prompts_dir or PROMPTS_DIR)

    def with_settings(self, settings: Settings) -> PaperAgent:
        """An agent with other search or answer settings that shares the parts this one has built already: the models,
        the index, its live view (the BM25 snapshot) and the model client (so not for settings that change those)."""
        other = PaperAgent(settings)
        for part in ("embedder", "sentence_embedder", "index", "live", "chat_model"):
            if part in self.__dict__:
                other.__dict__[part] = self.__dict__[part]
        return other

    def warm_up(self, *, answers: bool = True) -> None:
        """Load the models and open the indexes now, so the first question does not pay for it."""
        self.search("warm-up")
        if answers:
            self.sentence_embedder.embed(["warm-up"])
            self.index.sentences.vectors(["warm-up"], self.sentence_embedder.name)  # opens the collection

    @cached_property
    def embedder(self) -> Embedder:
        return make_embedder(self.settings.embed, batch_size=self.settings.index.embed_batch_size)

    @cached_property
    def sentence_embedder(self) -> Embedder:
        """all-MiniLM-L6-v2, for choosing and checking answer sentences: their thresholds were calibrated with it."""
        embed = self.settings.embed
        if embed == sentence_settings(embed.device):
            return self.embedder
        return make_sentence_embedder(batch_size=self.settings.index.embed_batch_size)

    @cached_property
    def _beside_search(self) -> ThreadPoolExecutor:
        """One thread that embeds a question with the sentence model while the search runs on the caller's."""
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentence-query")

    @cached_property
    def index(self) -> Index:
        return Index(self.settings)

    @cached_property
    def live(self) -> LiveIndex:
        """The index generation this agent answers from, followed as other processes add or remove papers."""
        return LiveIndex(self.index, self.settings.data_dir / "lexical", self.settings.index.refresh_s)

    @property
    def lexical(self) -> LexicalIndex:
        """The BM25 index of the generation answered from now (`data_dir/lexical/<store>-<generation>`)."""
        return self.live.current().lexical

    @cached_property
    def retriever(self) -> Retriever:
        settings = self.settings.retrieve
        return Retriever(
            self.index,
            self.embedder,
            settings,
            lexical=self.lexical,  # every mode: dense search keeps only the chunks of the generation it holds
            reranker=self._reranker() if settings.rerank == "llm" else None,
        )

    def _reranker(self) -> Reranker:
        model = self.chat_model
        if not isinstance(model, TokenScorer):
            raise AgentError(f"retrieve.rerank=llm: {model!r} cannot report token log-probabilities")
        return LLMReranker(model, self.prompts["rerank"], self.settings.retrieve)

    @contextmanager
    def writing(self) -> Iterator[Write]:
        """`Index.writing()` that also saves the BM25 snapshot of the generation it publishes, and answers from that
        generation once it is out. Wrap anything that adds or removes papers in it (and set `write.changed`)."""
        with self.index.writing() as write:
            if self.live.prepare not in write.on_commit:
                write.on_commit.append(self.live.prepare)
            yield write
        lexical = self.live.check().lexical
        if "retriever" in self.__dict__:  # built already: hand it the new generation now, not at the next search
            self.retriever.lexical = lexical

    def ingest(
        self, paths: Sequence[Path] = (), *, progress: bool = True, on_batch: OnBatch | None = None
    ) -> tuple[ReadReport, IngestStats]:
        """Read the files (default: the bundled corpus) and bring the index up to date with them; `on_batch` is
        called with each batch of chunks written."""
        return self.ingest_read(read_paths(paths or [CORPUS]), progress=progress, on_batch=on_batch)

    def ingest_read(
        self, report: ReadReport, *, progress: bool = True, on_batch: OnBatch | None = None
    ) -> tuple[ReadReport, IngestStats]:
        """`ingest` of files already read (so a caller can look at their papers first)."""
        with self.writing():
            stats = self.index.ingest(
                report.papers,
                self.embedder,
                progress=progress,
                on_batch=on_batch,
                sentence_embedder=self.sentence_embedder,
            )
        return report, stats

    def remove_papers(self, paper_ids: Sequence[str]) -> list[str]:
        """Remove the papers from every index (chunks, papers, answer sentences, BM25); returns those it held."""
        with self.writing() as write:
            removed = self.index.delete_papers(paper_ids, self.sentence_embedder)
            write.changed = bool(removed)
        return removed

    def list_papers(self, offset: int = 0, limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
        """How many papers the index holds, and a page of them (metadata and chunk counts, no text)."""
        return self.index.list_papers(offset, limit)

    def sync_sentences(self, *, progress: bool = True) -> SentenceStats:
        """Bring the stored answer sentences' vectors in line with the index's chunks (ingest does it too): an index
        built before they were stored, or under another sentence model, gets them; when in step, ~0.1 s."""
        index = self.index
        with index.writing():  # a write like any other: never over another process's work (no new generation)
            return index.sentences.sync(
                index.iter_chunks(), self.sentence_embedder, index.vectors_dir, progress=progress
            )

    def search(self, question: str, top_k: int | None = None) -> list[PaperHit]:
        """The top papers in the current generation (reloaded first if another process published a new one)."""
        retriever = self.retriever
        retriever.lexical = self.lexical
        return retriever.search(question, top_k)

    @cached_property
    def chat_model(self) -> ChatModel:
        """The model server the settings point at (not contacted until the first question)."""
        from paper_agent.llm import resolve_model  # imports openai: only when a question is asked

        return resolve_model(self.settings)

    def ask(self, question: str, history: list[dict[str, Any]] | None = None, top_k: int | None = None) -> Answer:
        """A verified, cited answer (or the fixed refusal); `history` holds earlier {role, content} turns."""
        from paper_agent.answer import final_answer

        return final_answer(self.ask_stream(question, history, top_k))

    def ask_stream(
        self, question: str, history: list[dict[str, Any]] | None = None, top_k: int | None = None
    ) -> Iterator[StreamEvent]:
        """Sources (before the model starts), the model's reply as Deltas, then the verified Final answer."""
        from paper_agent.answer import answer_stream
        from paper_agent.followup import standalone_question

        started = time.perf_counter()
        settings = self.settings.answer
        timings: dict[str, float] = {}
        if history and settings.rewrite_followups:
            question = standalone_question(question, history, self.chat_model, self.prompts["rewrite"])
            timings["rewrite_ms"] = round((time.perf_counter() - started) * 1000, 1)
        decision = self.decide(question, top_k, timings)
        yield from answer_stream(
            question,
            decision,
            model=self.chat_model,
            prompts=self.prompts,
            settings=settings,
            timings=timings,
            started=started,
        )

    def decide(self, question: str, top_k: int | None = None, timings: dict[str, float] | None = None) -> Decision:
        """Search, score the top papers' sentences, and decide whether and from which papers to answer."""
        hits, sources = self.evidence(question, top_k, timings)
        clock = time.perf_counter()
        decision = decide(question, hits, sources, self.retriever.lexical, self.calibration, self.settings.answer)
        if timings is not None:
            timings["decide_ms"] = _ms(clock)
        return decision

    def evidence(
        self, question: str, top_k: int | None = None, timings: dict[str, float] | None = None
    ) -> tuple[list[PaperHit], list[Source]]:
        """The top papers for the question and, for each, its matched chunks' sentences scored against it."""
        settings = self.settings.answer
        clock = time.perf_counter()
        timings = {} if timings is None else timings
        # The sentence model's view of the question does not depend on the search: it is embedded on the other core
        # meanwhile (both models release the GIL), which takes it off the time to the first token.
        sentence_model = self.sentence_embedder
        asked = (
            self._beside_search.submit(sentence_model.embed, [question])
            if sentence_model is not self.embedder
            else None
        )
        hits = [hit for hit in self.search(question, top_k or settings.max_passages) if hit.passages]
        timings["retrieval_ms"] = _ms(clock)
        clock = time.perf_counter()
        passages = [evidence_passage(hit) for hit in hits]
        sources = prepare_sources(
            question,
            passages,
            sentence_model,
            settings.max_passage_tokens,
            self.index.sentences,
            question_vector=asked.result()[0] if asked is not None else None,
        )
        timings["select_ms"] = _ms(clock)
        return hits, sources

    @cached_property
    def calibration(self) -> Calibration:
        return load_calibration(self.settings.answer.calibration_path)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
