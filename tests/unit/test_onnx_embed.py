"""The ONNX backend against the model it was exported from: a tiny BERT, made here, embedded both ways."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertModel

from paper_agent.embed import sha256_of
from paper_agent.errors import AgentError
from paper_agent.onnx_embed import FILES, OnnxEmbedder, _quantizable, exported

WORDS = ["[PAD]", "[UNK]", "the", "papers", "bootstrap", "alignment", "with", "synthetic", "data", "and"]
WORDS += ["retrieval", "models"]
TEXTS = ["the papers bootstrap alignment", "retrieval models", "synthetic data and the unknown words", "the"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder: a 2-layer BERT (FFN 64 wide), a word-level tokenizer, mean pooling."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=16)  # fixed, as the shipped models' files have it
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 6}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    modules = ["Transformer", "Pooling", "Normalize"]
    (folder / "modules.json").write_text(json.dumps([{"type": f"sentence_transformers.models.{m}"} for m in modules]))
    return folder


def reference(folder: Path, texts: list[str]) -> np.ndarray:
    """Mean of the token vectors over the first 6 tokens, unit length: what sentence-transformers computes."""
    model = BertModel.from_pretrained(folder).eval()
    vocab = {w: i for i, w in enumerate(WORDS)}
    rows = []
    for text in texts:
        ids = torch.tensor([[vocab.get(w, 1) for w in text.split()][:6]])
        with torch.no_grad():
            mean = model(input_ids=ids).last_hidden_state[0].mean(dim=0).numpy()
        rows.append(mean / np.linalg.norm(mean))
    return np.array(rows)


def embedder(folder: Path, variant: str, tmp_path: Path) -> OnnxEmbedder:
    weights = sha256_of(folder / "model.safetensors")
    return OnnxEmbedder(folder, "tiny", variant, weights_sha=weights, batch_size=2, exports=tmp_path)  # type: ignore[arg-type]


def test_fp32_vectors_are_the_models_mean_pooled_and_normalised(tiny_model: Path, tmp_path: Path) -> None:
    vectors = embedder(tiny_model, "onnx", tmp_path).embed(TEXTS)  # 2 a batch: padding and reordering exercised
    np.testing.assert_allclose(vectors, reference(tiny_model, TEXTS), atol=1e-5)


def test_int8_vectors_stay_close_and_the_ffn_output_stays_fp32(tiny_model: Path, tmp_path: Path) -> None:
    vectors = embedder(tiny_model, "onnx-int8", tmp_path).embed(TEXTS)
    assert (vectors * reference(tiny_model, TEXTS)).sum(axis=1).min() > 0.99
    fp32 = next(tmp_path.iterdir()) / FILES["onnx"]
    chosen = _quantizable(fp32, intermediate_size=64)
    assert len(chosen) == 2 * 5  # per layer: q, k, v, attention output, FFN input; not the FFN output
    assert not any("/output/dense" in name and "attention" not in name for name in chosen)


def test_int8_weights_use_seven_bits_so_cpus_without_vnni_cannot_saturate(tiny_model: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    embedder(tiny_model, "onnx-int8", tmp_path)
    graph = onnx.load(str(next(tmp_path.iterdir()) / FILES["onnx-int8"])).graph
    int8 = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    weights = [w for w in int8 if w.ndim == 2]  # the rest are their zero points
    assert len(weights) == 2 * 5  # every quantized MatMul's weight
    # uint8 x int8 pairs summed in 16 bits (VPMADDUBSW): 2 * 255 * 64 < 32768, where 2 * 255 * 127 is not
    assert all(np.abs(w.astype(np.int32)).max() <= 64 for w in weights)


def test_an_export_is_made_once_and_checked_against_its_recorded_hash(tiny_model: Path, tmp_path: Path) -> None:
    weights = sha256_of(tiny_model / "model.safetensors")
    path = exported(tiny_model, "onnx", weights, tmp_path)
    made = path.stat().st_mtime_ns
    assert exported(tiny_model, "onnx", weights, tmp_path).stat().st_mtime_ns == made  # not made again
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(AgentError, match="does not match the hash"):
        exported(tiny_model, "onnx", weights, tmp_path)


def test_int8_is_quantized_only_when_first_asked_for_and_fp32_is_kept(tiny_model: Path, tmp_path: Path) -> None:
    weights = sha256_of(tiny_model / "model.safetensors")
    fp32 = exported(tiny_model, "onnx", weights, tmp_path)
    assert not (fp32.parent / FILES["onnx-int8"]).exists()  # fp32 alone: no quantization paid for it
    made = fp32.stat().st_mtime_ns
    int8 = exported(tiny_model, "onnx-int8", weights, tmp_path)
    assert int8.parent == fp32.parent and fp32.stat().st_mtime_ns == made  # added beside, fp32 not made again
    assert exported(tiny_model, "onnx-int8", weights, tmp_path).stat().st_mtime_ns == int8.stat().st_mtime_ns
    assert sorted(p.name for p in fp32.parent.iterdir()) == sorted([*FILES.values(), "manifest.json"])


def test_other_pooling_is_refused_by_name(tiny_model: Path, tmp_path: Path) -> None:
    other = tmp_path / "max-pooled"
    other.mkdir()
    for item in tiny_model.iterdir():
        if item.is_file():
            (other / item.name).write_bytes(item.read_bytes())
    (other / "1_Pooling").mkdir()
    (other / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(AgentError, match="pooling_mode_max_tokens"):
        embedder(other, "onnx", tmp_path)


def test_an_int8_vector_does_not_depend_on_what_else_is_embedded_with_it(tiny_model: Path, tmp_path: Path) -> None:
    """Dynamic quantization scales activations per tensor: batch-mates and padding must not reach a text's vector."""
    int8 = embedder(tiny_model, "onnx-int8", tmp_path)
    alone = int8.embed(["retrieval models"])
    with_others = int8.embed(["the papers bootstrap alignment with synthetic data", "retrieval models", "the"])
    np.testing.assert_array_equal(with_others[1], alone[0])


def test_fp32_batches_are_padded_to_their_own_longest_text(tiny_model: Path, tmp_path: Path) -> None:
    fp32 = embedder(tiny_model, "onnx", tmp_path)  # 2 a batch
    np.testing.assert_allclose(fp32.embed(TEXTS), np.vstack([fp32.embed([t]) for t in TEXTS]), atol=1e-6)
