"""The one Settings object: environment overrides, loud typos, and a README table that cannot go stale."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from paper_agent.cli import build_parser
from paper_agent.settings import RetrieveSettings, ServeSettings, Settings, field_bounds
from scripts.settings_table import table

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout


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


def test_field_bounds_reads_the_declared_limits() -> None:
    assert field_bounds(RetrieveSettings, "top_k") == (1, 50)
    assert field_bounds(ServeSettings, "max_question_chars") == (1, None)


def test_cli_top_k_has_the_settings_bound() -> None:
    low, high = field_bounds(RetrieveSettings, "top_k")
    parser = build_parser()
    for command in ("search", "ask"):
        assert parser.parse_args([command, "-k", str(high), "q"]).k == high
        for outside in (low - 1, high + 1):
            with pytest.raises(SystemExit):
                parser.parse_args([command, "-k", str(outside), "q"])


def test_llm_section_has_no_max_tokens() -> None:
    # Every call names its own limit (answer.max_tokens, the follow-up rewrite, the judge, the health probe).
    with pytest.raises(ValidationError, match="max_tokens"):
        Settings(llm={"max_tokens": 256})
