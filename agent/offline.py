"""Keep every library we use off the network: no telemetry, no hub look-ups, no downloads.

Imported first by `agent/__init__.py`, before any third-party library reads these variables. Values a
user already set win, except where they would re-enable a phone-home.
"""

from __future__ import annotations

import os
from pathlib import Path

_FORCED = {
    "HF_HUB_OFFLINE": "1",  # without it, loading by hub name stalls ~70 s on a closed network
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma (posthog)
    "GRADIO_ANALYTICS_ENABLED": "False",
    "RAGAS_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Not a phone-home, but the hub's progress bars ("Loading weights") clutter every CLI call.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def _tiktoken_cache() -> Path | None:
    """The tiktoken BPE files that llama-index-core ships (cl100k_base, o200k_base), if installed."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("llama_index.core")
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    cache = Path(spec.origin).parent / "_static" / "tiktoken_cache"
    return cache if cache.is_dir() else None


def go_offline() -> None:
    """Set the environment so no library phones home or downloads at run time."""
    os.environ.update(_FORCED)
    cache = _tiktoken_cache()
    if cache is not None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
