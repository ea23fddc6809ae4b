"""The index generation: writes publish only when they commit, writers take turns, readers follow the generation."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paper_agent.generation import FileLock, Generations, IndexState
from paper_agent.service import PaperAgent
from paper_agent.settings import IndexSettings, RetrieveSettings, Settings
from paper_agent.types import paper_id_for
from tests.conftest import HashEmbedder, papers_from


class FakeRecord:
    """The state record in memory: what was written, in order."""

    def __init__(self) -> None:
        self.state = IndexState()
        self.written: list[IndexState] = []

    def reopen(self) -> None:
        pass

    def read(self) -> IndexState:
        return self.state

    def write(self, state: IndexState) -> None:
        self.state = state
        self.written.append(state)


class Calls:
    """What `Generations.writing` asked of the index, in order."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def refresh(self) -> None:
        self.log.append("refresh")

    def rollback(self, generation: int) -> int:
        self.log.append(f"rollback>{generation}")
        return 0

    def counts(self) -> dict[str, int]:
        return {"chunks": 3, "papers": 1}


@pytest.fixture
def generations(tmp_path: Path) -> Iterator[tuple[Generations, FakeRecord, Calls]]:
    record = FakeRecord()
    yield Generations(record, FileLock(tmp_path / "index.lock")), record, Calls()  # type: ignore[arg-type]


def _writing(generations: Generations, calls: Calls):  # type: ignore[no-untyped-def]
    return generations.writing(calls.refresh, calls.rollback, calls.counts)


def test_a_write_publishes_the_next_generation_only_if_it_changed_something(generations) -> None:  # type: ignore[no-untyped-def]
    gens, record, calls = generations
    with _writing(gens, calls) as write:
        assert write.generation == 1 and write.base == IndexState()
    assert record.written == []  # nothing changed: no new generation
    with _writing(gens, calls) as write:
        write.changed = True
    assert record.state.generation == 1 and record.state.store == write.store and record.state.chunks == 3
    with _writing(gens, calls) as write:
        write.changed = True
    assert record.state == IndexState(2, write.store, 3, 1)  # the same store id, generation by generation
    assert calls.log == ["refresh", "rollback>0"] * 2 + ["refresh", "rollback>1"]  # the store reloaded first


def test_a_write_that_raises_publishes_nothing_and_the_next_rolls_it_back(generations) -> None:  # type: ignore[no-untyped-def]
    gens, record, calls = generations
    with pytest.raises(RuntimeError), _writing(gens, calls) as write:
        write.changed = True
        raise RuntimeError("crash half-way")
    assert record.written == []
    with _writing(gens, calls) as write:
        assert write.generation == 1  # the crashed write's generation is taken again, after a rollback above 0
    assert calls.log[-1] == "rollback>0"


def test_a_nested_write_joins_the_open_one_and_hooks_run_before_the_bump(generations) -> None:  # type: ignore[no-untyped-def]
    gens, record, calls = generations
    seen: list[int] = []
    with _writing(gens, calls) as outer:
        outer.on_commit.append(lambda w: seen.append(record.state.generation))
        with _writing(gens, calls) as inner:
            assert inner is outer
            inner.changed = True
    assert seen == [0] and record.state.generation == 1  # the hook saw the old generation: it runs first
    assert calls.log.count("refresh") == 1


def test_writers_take_turns_and_a_reader_never_waits(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "index.lock")
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with lock.exclusive():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    with lock.shared_if_free() as free:
        assert free is False  # a writer holds it: the reader goes on with what it has
    second = threading.Event()
    other = threading.Thread(target=lambda: (lock.exclusive().__enter__(), second.set()))
    other.start()
    assert not second.wait(0.3)  # a second writer waits for the first
    release.set()
    thread.join(10)
    assert second.wait(10)
    other.join(10)


def test_a_reader_follows_another_agents_ingest_after_refresh_s(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", index=IndexSettings(refresh_s=60.0))
    writer = PaperAgent(settings, embedder=HashEmbedder())
    writer.ingest(_papers(tmp_path, {"Alpha": "About alpha particles."}), progress=False)
    reader = PaperAgent(settings, embedder=HashEmbedder())
    now = [0.0]
    reader.live.clock = lambda: now[0]
    assert [h.title for h in reader.search("quokka census", 5)] == ["Alpha"]
    writer.ingest(_papers(tmp_path, {"Alpha": "About alpha particles.", "Quokka": "A quokka census."}), progress=False)
    assert "Quokka" not in {h.title for h in reader.search("quokka census", 5)}  # checked at most every refresh_s
    now[0] = 61.0
    hits = reader.search("quokka census", 5)
    assert hits[0].title == "Quokka" and hits[0].lexical and hits[0].dense  # found by both, in one generation
    assert reader.live.current().state.generation == 2


def test_an_ingest_that_crashes_is_invisible_and_rolled_back_by_the_next(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", index=IndexSettings(refresh_s=0.0))
    agent = PaperAgent(settings, embedder=HashEmbedder())
    agent.ingest(_papers(tmp_path, {"Alpha": "About alpha particles."}), progress=False)

    def crash(batch: list) -> None:  # type: ignore[type-arg]
        raise KeyboardInterrupt  # as if killed after the first batch was stored

    both = {"Alpha": "About alpha particles.", "Quokka": "A quokka census."}
    with pytest.raises(KeyboardInterrupt), agent.writing():
        agent.index.ingest(papers_from(tmp_path, both), agent.embedder, progress=False, on_batch=crash)
    assert agent.index.stats()["chunks"] == 2  # the half-written paper is in Chroma ...
    hits = {h.title for h in agent.search("quokka census", 5)}
    assert hits == {"Alpha"} and agent.live.current().state.generation == 1  # ... but in no generation
    dense = agent.with_settings(Settings(data_dir=settings.data_dir, retrieve=RetrieveSettings(mode="dense")))
    assert {h.title for h in dense.search("quokka census", 5)} == {"Alpha"}
    shutil.rmtree(agent.live.folder(agent.live.current().state))
    reader = PaperAgent(settings, embedder=HashEmbedder())  # with no snapshot saved, built from Chroma's generation 1
    assert reader.lexical.chunk_ids == agent.lexical.chunk_ids == {f"{paper_id_for('Alpha')}:0"}
    beta = _papers(tmp_path, {"Beta": "About beta decay."}, "beta.jsonl")
    agent.ingest(beta, progress=False)  # another write rolls the crashed one back
    assert {p.title for p in agent.index.iter_chunks()} == {"Alpha", "Beta"}
    _, stats = agent.ingest(_papers(tmp_path, both), progress=False)  # and a rerun completes it
    assert stats.embedded == 1 and agent.search("quokka census", 1)[0].title == "Quokka"


def _papers(tmp_path: Path, papers: dict[str, str], name: str = "papers.jsonl") -> list[Path]:
    """`papers` (title -> abstract) in a JSONL file: the same name is the same source (its missing papers go)."""
    path = tmp_path / name
    path.write_text("".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in papers.items()))
    return [path]
