"""The real app (`paper-agent serve`, real model server) fuzzed from its own OpenAPI schema: no failures, no 5xx."""

from __future__ import annotations

import re

import pytest

from scripts.fuzz_api import fuzz
from tests.integration.conftest import RunningApp

pytestmark = pytest.mark.integration


def test_the_schema_holds_under_fuzzing_with_all_checks(papers_app: RunningApp) -> None:
    """Every operation, /ask and /v1/chat/completions included, with few cases each (some reach the model).

    Against the app with its own copy of the index: the fuzzer adds papers through `POST /papers`."""
    result = fuzz(papers_app.url, 5)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-8000:]
    cases = re.search(r"Test cases:\s+(\d+) generated, (\d+) passed", report)
    assert cases and cases[1] == cases[2] and int(cases[1]) > 100, report[-8000:]
    assert "Server error" not in report and "Failures:" not in report, report[-8000:]
