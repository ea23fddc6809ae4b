"""The one Settings object: environment overrides, loud typos, and a README table that cannot go stale."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.settings import PROJECT_ROOT, Settings
from scripts.settings_table import table


def test_nested_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPER_AGENT_LLM__BASE_URL", "http://gpu-host:8000/v1")
    monkeypatch.setenv("PAPER_AGENT_INDEX__CHROMA_URL", "http://localhost:8001")
    settings = Settings()
    assert settings.llm.base_url == "http://gpu-host:8000/v1"
    assert settings.index.chroma_url == "http://localhost:8001"


def test_typo_in_a_section_fails_loudly() -> None:
    with pytest.raises(ValidationError, match="chunk_tokenz"):
        Settings(index={"chunk_tokenz": 10})


def test_bad_value_is_named() -> None:
    with pytest.raises(ValidationError, match="chunk_tokens"):
        Settings(index={"chunk_tokens": 1})


def test_readme_settings_table_is_current() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert table() in readme, "README settings table is stale: run `python scripts/settings_table.py --write`"


def test_llm_section_has_no_max_tokens() -> None:
    # Every call names its own limit (answer.max_tokens, the follow-up rewrite, the judge, the health probe).
    with pytest.raises(ValidationError, match="max_tokens"):
        Settings(llm={"max_tokens": 256})
