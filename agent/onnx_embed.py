"""The embedding models on ONNX Runtime: exported once from the local model folder, fp32 or int8, no torch at run time.

The export is made here, offline, the first time a backend needs it, and kept beside the assembled models with a
manifest: the weights' SHA-256 it was made from, and each `.onnx` file's recipe and SHA-256, checked on every load.

- `onnx`: the transformer traced to ONNX (opset 17) and run with every graph optimisation; fp32 maths, so the
  vectors match PyTorch's (cosine >= 0.9999 on the corpus's chunks).
- `onnx-int8`: the same graph, dynamically quantized (int8 weights per output channel, uint8 activations, the
  VNNI instructions' format). The weights use 7 of their 8 bits: a CPU without VNNI (AVX2, or AVX-512 without it)
  multiplies uint8 by int8 with an instruction (VPMADDUBSW) that saturates a pair's sum at 16 bits, and with full
  8-bit weights mpnet's vectors came out unrelated to fp32's on such a CPU (cosine -0.03 on corpus chunks); 7-bit
  weights cannot overflow it. The feed-forward output projections stay fp32: their inputs (after the GELU) carry
  the outlier activations that per-tensor uint8 cannot hold (Bondarenko et al. 2021, "Understanding and Overcoming
  the Challenges of Efficient Transformer Quantization"); quantized, they alone took mpnet's cosine to fp32 from
  0.99 to 0.83 on corpus chunks. Each text is run alone, so its vector is the same whatever it is embedded with.

Tokenising (the model's `tokenizer.json`, its `max_seq_length`), pooling and normalisation follow the folder's
sentence-transformers config, so the ONNX graph holds the transformer only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from paper_agent.errors import AgentError

log = logging.getLogger(__name__)

Variant = Literal["onnx", "onnx-int8"]
FILES: dict[Variant, str] = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
# What each file computes. Bump a variant's when its making changes: the export is then made again, and vectors
# recorded under the old one (shipped or indexed) no longer stand for it. The fp32 graph does not depend on how
# int8 is quantized, so a change there leaves fp32 vectors, the bundled corpus's shipped ones among them, valid.
RECIPES: dict[Variant, str] = {"onnx": "torch-onnx-opset17"}
RECIPES["onnx-int8"] = RECIPES["onnx"] + "; int8: dynamic, per-channel QInt8 7-bit weights, ffn-out fp32; v3"
OPSET = 17
# Texts run together at most: on a CPU a bigger batch only adds attention-matrix traffic. Measured on 128 corpus
# chunks, fp32, 2 cores: 64 a batch 6.2 chunks/s, 16 9.4, 4 11.1, 1 11.3 (short queries gain a little from 4).
MAX_BATCH = 4


EXPORTS = Path(sys.prefix) / "share" / "paper-agent" / "onnx"  # beside the assembled models


def exported(folder: Path, variant: Variant, weights_sha: str, exports: Path = EXPORTS) -> Path:
    """The `.onnx` file of `variant` for the model in `folder`, made (once) under `exports` if not there yet.

    fp32 is traced from the weights; int8 is quantized from fp32 the first time it is asked for (8 s for mpnet on
    2 cores, which a process that only uses fp32 never pays)."""
    home = exports / f"{folder.name}-{weights_sha[:16]}"
    manifest = _manifest(home)
    if manifest is None or manifest.get("weights_sha256") != weights_sha or not _holds(manifest, "onnx"):
        log.warning("exporting %s to ONNX once, into %s", folder.name, home)
        _export(folder, home, weights_sha)
        manifest = _manifest(home)
    if variant == "onnx-int8" and not _holds(manifest, variant):
        log.warning("quantizing %s's ONNX export to int8 once, in %s", folder.name, home)
        _quantize(home, _ffn_width(folder))
        manifest = _manifest(home)
    assert manifest is not None  # written by _export
    path = home / FILES[variant]
    if not path.is_file() or _sha256(path) != manifest["files"][FILES[variant]]:
        raise AgentError(f"{path} does not match the hash its export recorded: delete {home} to export it again")
    return path


def _manifest(home: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((home / "manifest.json").read_text()))
    except (OSError, ValueError):
        return None


def _holds(manifest: dict[str, Any] | None, variant: Variant) -> bool:
    """Whether the export holds `variant`'s file made by today's recipe (else it is made again)."""
    recipes, files = (manifest or {}).get("recipes", {}), (manifest or {}).get("files", {})
    return recipes.get(variant) == RECIPES[variant] and FILES[variant] in files


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace `folder`'s manifest in one rename, so a reader never sees half of one."""
    written = folder / f".manifest-{os.getpid()}.json"
    written.write_text(json.dumps(manifest, indent=2))
    os.replace(written, folder / "manifest.json")


def _export(folder: Path, home: Path, weights_sha: str) -> None:
    """Trace the transformer to fp32 ONNX and move it into `home` with a manifest.

    Built in a temporary folder beside `home`, so a crash or a concurrent first use never leaves half an export."""
    import onnxruntime
    import torch

    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent, prefix=f".{home.name}-") as tmp:
        fp32 = Path(tmp) / FILES["onnx"]
        _trace(folder, fp32)
        versions = {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
        manifest = {
            "weights_sha256": weights_sha,
            "recipes": {"onnx": RECIPES["onnx"]},
            "files": {fp32.name: _sha256(fp32)},
            "versions": versions,
        }
        _write_manifest(Path(tmp), manifest)
        if home.exists():
            home.rename(Path(tmp) / "stale")  # an older recipe's export: deleted with the temporary folder
        _move_into(Path(tmp), home, [fp32.name, "manifest.json"])


def _quantize(home: Path, intermediate_size: int) -> None:
    """Quantize `home`'s fp32 graph to int8 beside it and add it to the manifest (each step one rename)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=home, prefix=".int8-") as tmp:
        int8 = Path(tmp) / FILES["onnx-int8"]
        quantize_dynamic(
            home / FILES["onnx"],
            int8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,  # 7-bit weights: no saturation on CPUs without VNNI (module docstring)
            nodes_to_quantize=_quantizable(home / FILES["onnx"], intermediate_size),
        )
        digest = _sha256(int8)
        # subtle: two processes quantizing at once each replace the file, then the manifest: quantizing is
        # deterministic, so both write the same bytes (else the hash check on load says so).
        os.replace(int8, home / int8.name)
    manifest = _manifest(home)
    assert manifest is not None  # written by _export
    manifest["recipes"]["onnx-int8"] = RECIPES["onnx-int8"]
    manifest["files"][FILES["onnx-int8"]] = digest
    _write_manifest(home, manifest)


def _ffn_width(folder: Path) -> int:
    """The model's feed-forward width (its config's `intermediate_size`): the projections back from it stay fp32."""
    return int(json.loads((folder / "config.json").read_text())["intermediate_size"])


def _trace(folder: Path, target: Path) -> None:
    """Write the transformer as fp32 ONNX, token vectors out (pooling is done outside)."""
    import torch
    from transformers import AutoModel

    class TokenVectors(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    example = torch.ones(1, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():  # the tracer's notes on shapes it fixes: checked by the known-answer tests
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenVectors(model),
            (example, example),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, and the dynamic axes as declared
        )


def _move_into(built: Path, home: Path, names: list[str]) -> None:
    """Publish the files `names` built in `built` as `home` (a rename of a fresh folder, so never half there)."""
    fresh = built / "export"
    fresh.mkdir()
    for name in names:
        (built / name).rename(fresh / name)
    try:
        fresh.rename(home)
    except OSError:
        if _manifest(home) is None:  # not another process's finished export: a real failure
            raise


def _quantizable(graph_path: Path, intermediate_size: int) -> list[str]:
    """The MatMuls with a weight matrix, less the feed-forward output projections (weights `intermediate x hidden`)."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    chosen = []
    for node in graph.node:
        weight = next((shapes[i] for i in node.input if i in shapes), None)
        if node.op_type == "MatMul" and weight is not None and weight[0] != intermediate_size:
            chosen.append(node.name)
    return chosen


class OnnxEmbedder:
    """A sentence-transformers model folder run on ONNX Runtime: tokenizer, transformer, pooling, normalisation."""

    def __init__(
        self,
        folder: Path,
        name: str,
        variant: Variant,
        *,
        weights_sha: str,
        fingerprint: str | None = None,
        batch_size: int = 64,
        threads: int = 0,
        exports: Path = EXPORTS,
    ) -> None:
        from tokenizers import Tokenizer

        self.name = name
        self.fingerprint = fingerprint  # set by agent.embed for the bundled model, whose weights it checked
        # subtle: int8 embeds each text alone. Dynamic quantization scales the activations per tensor, so in a batch
        # a text's vector would depend on its batch-mates and their padding (cosine down to 0.985 to itself alone):
        # a query's results would change with whatever else was asked at the same moment.
        self.batch_size = 1 if variant == "onnx-int8" else min(batch_size, MAX_BATCH)
        self.path = exported(folder, variant, weights_sha, exports)
        self.pooling = _pooling(folder)
        self.normalize = "sentence_transformers.models.Normalize" in (folder / "modules.json").read_text()
        max_tokens = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.pad_id = (self.tokenizer.padding or {}).get("pad_id", 0)
        self.tokenizer.no_padding()  # the file pads to a fixed length; each batch is padded to its longest below
        self.use_threads(threads)

    def use_threads(self, threads: int) -> None:
        """Run the model on `threads` intra-op threads (0: one per core). Reloads the session (~1 s) on a change."""
        import onnxruntime

        if getattr(self, "threads", None) == threads:
            return
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # Threads sleep between runs instead of spinning: a spinning team takes cores from the model server and
        # Chroma. Measured on one query at a time, 2 threads: 37.6-39.0 ms a query either way.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.threads = threads

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        # Longest first, as sentence-transformers batches: texts of a batch alike in length waste little on padding.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        vectors = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = len(encodings[rows[0]].ids)  # the longest: rows run longest first
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            pooled = self._pool(hidden, mask)
            if vectors.shape[1] == 0:
                vectors = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            vectors[rows] = pooled
        return vectors

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        if self.normalize:
            pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(np.float32)


def _pooling(folder: Path) -> str:
    """ "mean" or "cls", as the folder's sentence-transformers pooling config says; anything else is refused."""
    config = json.loads((folder / "1_Pooling" / "config.json").read_text())
    modes = [k for k, on in config.items() if k.startswith("pooling_mode_") and on]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise AgentError(f"the ONNX backend supports mean or CLS pooling, not {modes} ({folder / '1_Pooling'})")


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
