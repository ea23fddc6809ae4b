"""The embedding backends with the real search model, on the bundled corpus's chunks: ONNX fp32 gives PyTorch's
vectors, int8 stays close, the index knows which one made its vectors, and answering needs no PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from paper_agent.chunking import chunk_paper, embedding_text
from paper_agent.corpus import read_paths
from paper_agent.data import CORPUS
from paper_agent.embed import make_embedder
from paper_agent.settings import EmbedSettings, IndexSettings, Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chunks_and_torch_vectors() -> tuple[list[str], np.ndarray]:
    papers = read_paths([CORPUS]).papers[::25]  # a spread of the corpus: ~20 papers, ~30 chunks
    texts = [embedding_text(c) for p in papers for c in chunk_paper(p, IndexSettings())]
    return texts, make_embedder(EmbedSettings(backend="torch")).embed(texts)


@pytest.mark.parametrize(("backend", "least"), [("onnx", 0.9999), ("onnx-int8", 0.97)])
def test_onnx_vectors_match_pytorchs(
    chunks_and_torch_vectors: tuple[list[str], np.ndarray], backend: str, least: float
) -> None:
    texts, reference = chunks_and_torch_vectors
    vectors = make_embedder(EmbedSettings(backend=backend)).embed(texts)  # type: ignore[arg-type]
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= least, f"{backend}: min cosine {cosines.min():.5f} to PyTorch fp32"


def test_answering_loads_no_pytorch(indexed_settings: Settings) -> None:
    """Both models of the default answering path run on ONNX Runtime: PyTorch (and sentence-transformers, whose
    import alone took 6.8 s) stay out of a process that searches, scores sentences and decides."""
    script = (
        "import sys\n"
        "from paper_agent.service import PaperAgent\n"
        "from paper_agent.settings import Settings\n"
        f"agent = PaperAgent(Settings(data_dir={str(indexed_settings.data_dir)!r}))\n"
        "agent.warm_up()\n"
        "agent.decide('Which model classifies small tables without tuning, fit beforehand on synthetic data?')\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
