"""The bundled collection the package ships: the saved arXiv listing pages (`corpus/`) and, for the default
embedder, their chunks' precomputed vectors (`vectors/`, written by scripts/bundle_vectors.py).

Read through importlib.resources, so they are found wherever the package is installed (the checkout's data/
folder in an editable install, site-packages/paper_agent/data/ from a wheel).
"""

from importlib.resources import files
from pathlib import Path

HERE = Path(str(files(__name__)))  # pip installs packages unzipped, so the resource root is a real folder
CORPUS = HERE / "corpus"
VECTORS = HERE / "vectors"
