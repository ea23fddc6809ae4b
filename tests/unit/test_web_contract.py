"""The OpenAPI schema is the contract: declared limits, documented statuses and media types, 405, 413, 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from paper_agent.settings import RetrieveSettings
from paper_agent.web.app import create_app
from tests.unit.test_app import PROP, make_agent

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_agent(tmp_path))) as test_client:
        yield test_client


def schema_of(client: TestClient) -> dict[str, Any]:
    got = client.get("/openapi.json")
    assert got.status_code == 200
    return got.json()


def test_limits_are_declared_in_the_schema(client: TestClient) -> None:
    paths = schema_of(client)["paths"]
    params = {p["name"]: p["schema"] for p in paths["/search"]["get"]["parameters"]}
    top_k_most = RetrieveSettings.model_json_schema()["properties"]["top_k"]["maximum"]
    assert params["q"] | {"title": None} == {"type": "string", "minLength": 1, "maxLength": 200} | {
        "pattern": r"\S",
        "title": None,
        "description": params["q"]["description"],
    }
    assert params["k"]["minimum"] == 1 and params["k"]["maximum"] == top_k_most and params["k"]["default"] == 5
    ask = schema_of(client)["components"]["schemas"]["AskRequest"]["properties"]
    assert ask["question"]["minLength"] == 1 and ask["question"]["maxLength"] == 200
    assert ask["top_k"]["anyOf"][0]["maximum"] == top_k_most


def test_every_status_a_route_returns_is_documented_with_its_body(client: TestClient) -> None:
    paths = schema_of(client)["paths"]
    documented = {
        ("/ask", "post"): {"200", "400", "413", "422", "503"},
        ("/ask/stream", "post"): {"200", "400", "413", "422", "503"},
        ("/v1/chat/completions", "post"): {"200", "400", "413", "422", "503"},
        ("/search", "get"): {"200", "422", "503"},
        ("/papers/{paper_id}", "get"): {"200", "404", "422", "503"},
        ("/metrics", "get"): {"200"},
    }
    for (path, method), statuses in documented.items():
        got = paths[path][method]["responses"]
        assert set(got) == statuses, path
        for status in statuses - {"200", "422"}:
            assert got[status]["content"]["application/json"]["schema"] == ERROR_BODY, (path, status)
    assert paths["/ask"]["post"]["responses"]["503"]["headers"]["Retry-After"]["required"] is False


def test_media_types_are_what_the_routes_send(client: TestClient) -> None:
    paths = schema_of(client)["paths"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    stream = paths["/ask/stream"]["post"]["responses"]["200"]["content"]
    assert set(stream) == {"text/event-stream"}
    assert stream["text/event-stream"]["itemSchema"]["properties"]["event"]["enum"] == [
        "sources",
        "delta",
        "final",
        "error",
    ]
    completions = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(completions) == {"application/json", "text/event-stream"}
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_an_api_key_documents_401_and_the_bearer_scheme(tmp_path: Path) -> None:
    with TestClient(create_app(make_agent(tmp_path, api_key="s3cret"))) as client:
        schema = schema_of(client)
        assert "HTTPBearer" in schema["components"]["securitySchemes"]
        for path, method in [("/ask", "post"), ("/search", "get"), ("/v1/models", "get"), ("/metrics", "get")]:
            assert schema["paths"][path][method]["responses"]["401"]["content"]["application/json"]["schema"] == (
                ERROR_BODY
            )
        assert "401" not in schema["paths"]["/health"]["get"]["responses"]
        got = client.get("/search", params={"q": "PROP"})
        assert got.status_code == 401 and got.json()["error"]["type"] == "Unauthorized"


@pytest.mark.parametrize("ui", [False, True])
def test_an_undeclared_method_on_a_known_path_is_405_with_allow(tmp_path: Path, ui: bool) -> None:
    agent = make_agent(tmp_path)
    agent.settings.serve.ui = ui
    with TestClient(create_app(agent)) as client:
        for method, path, allow in [
            ("DELETE", "/ask", "POST"),
            ("GET", "/ask/stream", "POST"),
            ("PUT", "/search", "GET"),
            ("POST", f"/papers/{PROP.id}", "GET"),
            ("PATCH", "/v1/chat/completions", "POST"),
        ]:
            got = client.request(method, path)
            assert got.status_code == 405, (method, path)
            assert allow in got.headers["allow"] and got.json()["error"]["code"] == 405
        assert client.get("/search", params={"q": "PROP"}).status_code == 200
        assert 'status="405"' in client.get("/metrics").text


def test_an_undeclared_path_under_the_apis_prefixes_is_404_with_the_error_body(tmp_path: Path) -> None:
    """With the UI mounted at `/`, not the UI's own 404 body (schemathesis follows a link with an empty id to
    `GET /papers/`). Without the UI, FastAPI's own 404 (and its redirect of `/papers/` to `/papers`) answer."""
    agent = make_agent(tmp_path)
    agent.settings.serve.ui = True
    with TestClient(create_app(agent)) as client:
        for path in ["/papers/", "/jobs/", "/v1/nothing", f"/papers/{PROP.id}/more"]:
            got = client.get(path)
            assert got.status_code == 404 and got.json()["error"]["code"] == 404, path
        assert client.get("/").status_code == 200  # the UI's own paths still reach it


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    with TestClient(create_app(make_agent(tmp_path, max_request_bytes=2048))) as client:
        for path, body in [
            ("/ask", {"question": "x" * 4000}),
            ("/ask/stream", {"question": "x" * 4000}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 4000}]}),
        ]:
            got = client.post(path, json=body)
            assert got.status_code == 413, path
            error = got.json()["error"]
            assert (
                error["code"] == 413 and error["message"] == got.json()["detail"] and "2048 bytes" in error["message"]
            )
        assert client.post("/ask", json={"question": "What is PROP?"}).status_code == 200


def test_a_body_without_a_length_is_counted_and_refused_past_the_limit(tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:  # sent chunked: no Content-Length to refuse it by
        yield b'{"question": "'
        yield b"x" * 4000
        yield b'"}'

    with TestClient(create_app(make_agent(tmp_path, max_request_bytes=2048))) as client:
        got = client.post("/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert got.status_code == 413 and got.json()["error"]["code"] == 413


def test_a_huge_question_is_refused_without_echoing_it(client: TestClient, tmp_path: Path) -> None:
    huge = "x" * 2_000_000
    assert client.post("/ask", json={"question": huge}).status_code == 413  # the default bound is 1 MiB
    with TestClient(create_app(make_agent(tmp_path / "big", max_request_bytes=4_000_000))) as big:
        for got in (
            big.post("/ask", json={"question": huge}),
            big.post("/ask", json={"questio": huge}),  # a missing field: the input is the whole body
            big.get("/search", params={"q": "x" * 10_000}),
        ):
            assert got.status_code == 422 and len(got.content) < 1000, got.text[:300]
