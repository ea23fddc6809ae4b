"""Shipped vectors: taken when model, chunker settings and text match; any mismatch or damage means embedding."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from paper_agent.bundled_vectors import BUNDLED_VECTORS, FORMAT, load, shipped_vectors, vector_key, vectors_path, write
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS
from paper_agent.embed import embedder_name, fingerprint
from paper_agent.index import Index, IngestStats
from paper_agent.query_embed import BatchingEmbedder
from paper_agent.settings import EmbedSettings, IndexSettings, Settings
from paper_agent.types import Paper
from scripts.bundle_vectors import bundle, chunk_texts
from tests.conftest import HashEmbedder, RecordingEmbedder, papers_from

LONG = " ".join(f"Sentence {i} is about sparse attention kernels and how fast they run." for i in range(40))
PAPERS = {"Alpha": "About alpha particles.", "Beta": LONG, "Gamma": "Gamma rays from distant stars."}


class ShippableEmbedder(RecordingEmbedder):
    """The recording hash embedder, under the name these tests give a file's maker."""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A vectors folder holding the file for PAPERS, made by the regeneration script's own function."""
    folder = tmp_path / "vectors"
    bundle(papers_from(tmp_path, PAPERS), ShippableEmbedder(), IndexSettings(), folder)
    return folder


def _ingest(
    settings: Settings, folder: Path | None, papers: list[Paper], embedder: HashEmbedder
) -> tuple[Index, IngestStats]:
    index = Index(settings, vectors_dir=folder)
    return index, index.ingest(papers, embedder, progress=False)


def _stored(index: Index) -> dict[str, np.ndarray]:
    got = index.chunks.get(include=["embeddings"])
    return dict(zip(got["ids"], np.asarray(got["embeddings"])))


def _min_cosine_to_embedded(index: Index, papers: list[Paper], tmp_path: Path) -> float:
    """The lowest cosine between a stored vector and the one the embedder makes itself (no file) for that chunk."""
    reference, _ = _ingest(Settings(data_dir=tmp_path / "embedded"), None, papers, ShippableEmbedder())
    stored, exact = _stored(index), _stored(reference)
    assert stored.keys() == exact.keys()
    return min(float(stored[i] @ exact[i]) for i in stored)


def test_matching_chunks_take_the_shipped_vectors_and_the_model_is_not_called(
    folder: Path, tmp_settings: Settings, tmp_path: Path
) -> None:
    embedder = ShippableEmbedder()
    papers = papers_from(tmp_path, PAPERS)
    index, stats = _ingest(tmp_settings, folder, papers, embedder)
    assert embedder.embedded == []
    assert stats.shipped == stats.embedded == stats.chunks > len(PAPERS)  # Beta has several chunks
    # What the model would have made, to float16 precision, and unit length like the model's own.
    assert _min_cosine_to_embedded(index, papers, tmp_path) >= 0.9999
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-5 for v in _stored(index).values())


def test_only_chunks_the_file_lacks_are_embedded(folder: Path, tmp_settings: Settings, tmp_path: Path) -> None:
    embedder = ShippableEmbedder()
    papers = papers_from(tmp_path, PAPERS | {"Delta": "Delta wings at high speed."})
    _, stats = _ingest(tmp_settings, folder, papers, embedder)
    assert embedder.embedded == ["Delta\nDelta wings at high speed."]
    assert stats.shipped == stats.chunks - 1


@pytest.mark.parametrize(
    "changed",
    [
        {"Alpha": "About alpha particles and their decay."},  # the chunk text
        {"Alpha particles": "About alpha particles."},  # the title, which is embedded with every chunk
    ],
    ids=["text", "title"],
)
def test_changed_text_is_embedded(
    changed: dict[str, str], folder: Path, tmp_settings: Settings, tmp_path: Path
) -> None:
    embedder = ShippableEmbedder()
    papers = {k: v for k, v in PAPERS.items() if k != "Alpha"} | changed
    _, stats = _ingest(tmp_settings, folder, papers_from(tmp_path, papers), embedder)
    ((title, text),) = changed.items()
    assert embedder.embedded == [f"{title}\n{text}"]
    assert stats.shipped == stats.chunks - 1


class OtherModel(ShippableEmbedder):
    """Another model under the shipped model's name: same name, other weights."""

    fingerprint = "hash/test; v2"


class Unfingerprinted(ShippableEmbedder):
    """A model folder of the same name whose weights nobody checked."""

    fingerprint = None


@pytest.mark.parametrize("embedder_type", [OtherModel, Unfingerprinted])
def test_another_model_embeds_everything(
    embedder_type: type[ShippableEmbedder], folder: Path, tmp_settings: Settings, tmp_path: Path
) -> None:
    embedder = embedder_type()
    _, stats = _ingest(tmp_settings, folder, papers_from(tmp_path, PAPERS), embedder)
    assert len(embedder.embedded) == stats.chunks and stats.shipped == 0


def test_other_chunker_settings_refuse_the_whole_file(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Alpha and Gamma are one chunk either way, so their texts and keys still match: the header refuses them.
    settings = Settings(data_dir=tmp_path / "index", index=IndexSettings(chunk_tokens=128))
    embedder = ShippableEmbedder()
    with caplog.at_level(logging.INFO, logger="paper_agent.bundled_vectors"):
        _, stats = _ingest(settings, folder, papers_from(tmp_path, PAPERS), embedder)
    assert len(embedder.embedded) == stats.chunks and stats.shipped == 0
    assert "chunk_tokens: file 256, here 128" in caplog.text


def _rewrite(path: Path, **arrays: np.ndarray) -> None:
    """Replace arrays in the file, keeping the header (and so the recorded hash) as it was."""
    with np.load(path) as npz:
        contents = {k: npz[k] for k in npz.files}
    np.savez(path, **(contents | arrays))


def _edit_header(path: Path, **fields: object) -> None:
    with np.load(path) as npz:
        header = json.loads(str(npz["header"]))
    _rewrite(path, header=np.array(json.dumps(header | fields)))


def _flip_one_vector_value(path: Path) -> None:
    _, _, vectors = load(path)
    vectors = vectors.copy()
    vectors[0, 0] = -vectors[0, 0]
    _rewrite(path, vectors=vectors)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_one_vector_value, "SHA-256"),
        (lambda p: _edit_header(p, chunk_tokens=128), "SHA-256"),  # a header edited by hand, hash not updated
        (lambda p: _edit_header(p, format=FORMAT + 1), "format"),
        (lambda p: _rewrite(p, keys=np.zeros((2, 32), dtype=np.uint8)), "do not fit"),
        (lambda p: p.write_bytes(b"not a zip at all"), "unusable"),
        (lambda p: p.write_bytes(p.read_bytes()[:1000]), "unusable"),  # cut short
    ],
    ids=["vector-flipped", "header-edited", "newer-format", "keys-short", "not-a-zip", "truncated"],
)
def test_a_damaged_file_is_refused_and_everything_embedded(
    damage, reason: str, folder: Path, tmp_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damage(vectors_path(folder, ShippableEmbedder.name))
    embedder = ShippableEmbedder()
    with caplog.at_level(logging.WARNING, logger="paper_agent.bundled_vectors"):
        _, stats = _ingest(tmp_settings, folder, papers_from(tmp_path, PAPERS), embedder)
    assert len(embedder.embedded) == stats.chunks and stats.shipped == 0
    assert "unusable" in caplog.text and reason in caplog.text


@pytest.mark.parametrize("where", ["missing", None])
def test_no_file_means_embedding(where: str | None, tmp_settings: Settings, tmp_path: Path) -> None:
    embedder = ShippableEmbedder()
    folder = None if where is None else tmp_path / where
    _, stats = _ingest(tmp_settings, folder, papers_from(tmp_path, PAPERS), embedder)
    assert len(embedder.embedded) == stats.chunks and stats.shipped == 0


def test_a_change_of_model_re_embeds_from_the_file(folder: Path, tmp_settings: Settings, tmp_path: Path) -> None:
    class Wide(HashEmbedder):
        name, dim = "wide-hash-embedder", 96  # no file for it

    papers = papers_from(tmp_path, PAPERS)
    index, before = _ingest(tmp_settings, folder, papers, Wide())
    embedder = ShippableEmbedder()
    stats = index.ingest(papers, embedder, progress=False)  # another model: Index.reembed, then nothing left to do
    assert embedder.embedded == [] and stats.embedded == 0
    assert index.built_with == ShippableEmbedder.name and index.stats()["chunks"] == before.chunks
    assert _min_cosine_to_embedded(index, papers, tmp_path) >= 0.9999


def test_the_file_round_trips_with_a_header_that_says_what_it_holds(folder: Path, tmp_path: Path) -> None:
    header, keys, vectors = load(vectors_path(folder, ShippableEmbedder.name))
    texts = chunk_texts(papers_from(tmp_path, PAPERS), IndexSettings())
    assert {k: header[k] for k in ("format", "model", "fingerprint", "dim", "count")} == {
        "format": FORMAT,
        "model": "hash-embedder",
        "fingerprint": "hash/test; v1",
        "dim": HashEmbedder.dim,
        "count": len(texts),
    }
    assert (header["chunk_tokens"], header["chunk_overlap"]) == (256, 32)
    assert keys.shape == (len(texts), 32) and vectors.dtype == np.float16
    found = shipped_vectors(dict(enumerate(texts)), ShippableEmbedder(), IndexSettings(), folder)
    assert sorted(found) == list(range(len(texts)))


def test_the_serving_embedder_keeps_the_fingerprint() -> None:
    assert BatchingEmbedder(ShippableEmbedder()).fingerprint == ShippableEmbedder.fingerprint  # what `make run` uses


def test_writing_refuses_vectors_that_could_never_match(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no fingerprint"):
        write(tmp_path / "x.npz", ["a"], np.ones((1, 4), np.float32) / 2, Unfingerprinted(), IndexSettings())
    with pytest.raises(ValueError, match="unit length"):
        write(tmp_path / "x.npz", ["a"], np.ones((1, 4), np.float32), ShippableEmbedder(), IndexSettings())


def test_the_shipped_file_holds_every_chunk_of_the_bundled_corpus_as_the_default_set_up_makes_it() -> None:
    embed = EmbedSettings()
    path = vectors_path(BUNDLED_VECTORS, embedder_name(embed))
    header, keys, _ = load(path)
    settings = IndexSettings()
    assert header["fingerprint"] == fingerprint(embed)
    assert (header["chunk_tokens"], header["chunk_overlap"]) == (settings.chunk_tokens, settings.chunk_overlap)
    texts = chunk_texts(read_paths([CORPUS]).papers, settings)
    stale = "the shipped vectors are stale: run scripts/bundle_vectors.py"
    assert {vector_key(embedder_name(embed), t) for t in texts} == {k.tobytes() for k in keys}, stale
    assert path.stat().st_size < 5_000_000


def test_int8_vectors_are_never_taken_from_a_file() -> None:
    """int8's vectors depend on the CPU's integer instructions (`fingerprint`): a file from another machine would
    stand for vectors this one does not make."""
    assert fingerprint(EmbedSettings(backend="onnx-int8")) is None
    assert fingerprint(EmbedSettings(backend="onnx")) is not None
