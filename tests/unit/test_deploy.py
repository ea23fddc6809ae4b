"""The example deployment (deploy/compose.yaml, docs/scaling.md) parses and wires what it says it wires."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from paper_agent.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _apps(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("command") == ["paper-agent", "serve"]}


def test_it_starts_chroma_a_model_server_and_two_app_replicas(compose: dict) -> None:
    services = compose["services"]
    assert {"chroma", "llm", "ingest", "lb"} <= set(services)
    assert len(_apps(compose)) == 2
    assert services["chroma"]["image"].startswith("chromadb/chroma:")
    assert "vllm" in services["llm"]["image"]
    build = services["ingest"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()


def test_every_app_variable_is_a_setting_and_points_at_a_service(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for app in _apps(compose).values():
        env = app["environment"]
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        settings = Settings()  # a variable Settings does not know, or a bad value, fails here
        assert urlparse(settings.index.chroma_url).hostname in compose["services"]
        assert urlparse(settings.llm.base_url).hostname in compose["services"]
        assert app["volumes"] == ["lexical:/data"] and str(settings.data_dir) == "/data"
        assert app["depends_on"]["ingest"]["condition"] == "service_completed_successfully"


def test_the_load_balancer_spreads_over_both_replicas(compose: dict) -> None:
    upstream = compose["configs"]["nginx"]["content"]
    servers = set(re.findall(r"server (\S+):8000;", upstream))
    assert servers == set(_apps(compose))
    assert "proxy_buffering off" in upstream  # SSE streams pass through unbuffered


def test_docs_name_the_deployment_and_the_benchmark() -> None:
    doc = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    assert "deploy/compose.yaml" in doc and "bench/bench_scale.py" in doc
