"""Real servers and a real index for integration tests. Each section's fixtures are self-contained."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.service import PaperAgent
from agent.settings import Settings

# --- index -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def indexed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose data dir holds the bundled corpus, ingested once per test session with the real model."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("index"))
    PaperAgent(settings).ingest(progress=False)
    return settings


@pytest.fixture(scope="session")
def paper_agent(indexed_settings: Settings) -> PaperAgent:
    """One PaperAgent over the ingested bundled corpus (the embedding model loaded once)."""
    return PaperAgent(indexed_settings)


@pytest.fixture(scope="session")
def public_questions() -> list[dict]:
    import json

    path = Path(__file__).resolve().parents[2] / "eval" / "datasets" / "public.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
