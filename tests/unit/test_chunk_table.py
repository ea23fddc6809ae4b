"""The memory-mapped copy of the chunks the lexical index keeps: by id, by row, and what a loaded index holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from paper_agent.chunk_table import ChunkTable, TableRows, write_table
from paper_agent.lexical import LexicalIndex
from paper_agent.types import Passage

PASSAGES = [
    Passage("p1:0", "p1", "Pruning heads", "We prune attention heads — «ünïcode» kept.", 0.0, 0, None),
    Passage("p1:1", "p1", "Pruning heads", "Most heads can go.\nA second line.", 0.0, 1, 3),
    Passage("p22:0", "p22", "RETRO", "Retrieval from trillions of tokens.", 0.0, 0, None),
]


def test_rows_and_ids_round_trip(tmp_path: Path) -> None:
    write_table(tmp_path, PASSAGES)
    table = ChunkTable(tmp_path)
    assert len(table) == 3 and list(table) == ["p1:0", "p1:1", "p22:0"]
    assert [table.row(i) for i in range(3)] == PASSAGES
    assert table["p1:1"] == PASSAGES[1] and table.get("p22:0") == PASSAGES[2]
    assert "p1:0" in table and "p2:0" not in table and "p22:00" not in table and 5 not in table
    with pytest.raises(KeyError):
        table["p3:0"]
    assert list(TableRows(table)) == PASSAGES and TableRows(table)[-1] == PASSAGES[2]


def test_an_empty_table_opens(tmp_path: Path) -> None:
    write_table(tmp_path, [])
    table = ChunkTable(tmp_path)
    assert len(table) == 0 and "p1:0" not in table


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    write_table(tmp_path, PASSAGES)
    rows = tmp_path / "chunks.jsonl"
    rows.write_bytes(rows.read_bytes()[:-5])
    with pytest.raises(ValueError, match="bytes"):
        ChunkTable(tmp_path)


def test_a_loaded_index_maps_its_chunks_and_answers_as_built(tmp_path: Path) -> None:
    built = LexicalIndex.build(PASSAGES)
    built.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert loaded is not None and isinstance(loaded.by_id, ChunkTable)
    assert loaded.query("heads", 3) == built.query("heads", 3) and loaded.chunk_ids == built.chunk_ids
    assert loaded.by_id["p22:0"].text == PASSAGES[2].text
    assert loaded.document_frequency("head") == built.document_frequency("head") == 2
