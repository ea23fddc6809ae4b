"""The chat page, driven for real: headless Chromium through playwright, and gradio_client against its API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from playwright.sync_api import Page, expect, sync_playwright

from tests.integration.conftest import APP_KEY, RunningApp
from tests.integration.test_papers import PAGES, QUESTIONS, TITLE
from tests.pdfs import make_pdf

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
ANSWER_TIMEOUT_MS = 240_000  # a CPU model on two shared cores


def _cited_question(app: RunningApp, public_questions: list[dict]) -> str:
    """A lookup question the agent answers with at least one citation (the tiny model refuses some)."""
    for question in (q for q in public_questions if q["type"] == "lookup"):
        got = httpx.post(f"{app.url}/ask", json={"question": question["question"]}, timeout=300).json()
        if got["citations"]:
            return str(question["question"])
    pytest.fail("no lookup question of the public set got a cited answer")


def _ask(page: Page, question: str) -> None:
    page.fill("#question textarea", question)
    page.keyboard.press("Enter")


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        yield page
        browser.close()


def test_a_researcher_asks_and_reads_the_cited_sources(
    app_server: RunningApp, public_questions: list[dict], browser_page: Page
) -> None:
    question = _cited_question(app_server, public_questions)
    page = browser_page
    page.goto(f"{app_server.url}/")
    expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)
    _ask(page, question)

    # The answer streams in with [n] markers. The draft's "checking" state is not awaited: with the sentence
    # vectors stored and a lookup answered in ~0.2 s it can come and go between two polls (the stream's events are
    # checked event by event in test_app.py's SSE tests).
    cite = page.locator("#chat a.cite").first
    expect(cite).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#chat .answer-meta.checking")).to_have_count(0, timeout=ANSWER_TIMEOUT_MS)

    # The marker leads to the cited paper's card: its title, and the supporting quote highlighted.
    target = cite.get_attribute("href") or ""
    assert re.fullmatch(r"#src-1-\d+", target)
    card = page.locator(target)
    expect(card).to_be_visible()
    expect(card.locator("h4")).to_have_text(cite.get_attribute("title") or "")
    expect(card.locator("mark")).not_to_have_count(0)
    cite.click()
    expect(card).to_have_class(re.compile(r"\bflash\b"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-answer.png"), full_page=True)

    # A follow-up is its own turn, answered with the chat so far.
    _ask(page, "What problem does it address?")
    expect(page.locator("#sources #turn-2")).to_be_attached(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#sources details #turn-1")).to_be_attached()
    page.screenshot(path=str(ARTIFACTS / "ui-follow-up.png"), full_page=True)


def test_gradio_client_chats_with_the_ui(app_server: RunningApp, public_questions: list[dict]) -> None:
    client = Client(f"{app_server.url}/", verbose=False)
    question = next(q for q in public_questions if q["type"] == "lookup")["question"]
    message, sources = client.predict(question, api_name="/chat")
    assert message and "answer-meta checking" not in message, "the final answer, not the draft"
    assert "src-card" in sources or "No passage supports an answer" in sources


def test_the_ui_asks_for_the_key_when_one_is_set(locked_app_without_model: RunningApp) -> None:
    app = locked_app_without_model
    assert httpx.get(f"{app.url}/config", timeout=30).status_code == 401
    client = Client(f"{app.url}/", auth=("researcher", APP_KEY), verbose=False)
    assert "/chat" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_a_researcher_drops_a_pdf_on_the_page_and_asks_about_it(papers_app: RunningApp, browser_page: Page) -> None:
    app, page = papers_app, browser_page
    page.goto(f"{app.url}/")
    expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)
    pdf = make_pdf([*PAGES, None], title=TITLE)
    page.set_input_files(
        "#upload input[type=file]", files=[{"name": "glacier.pdf", "mimeType": "application/pdf", "buffer": pdf}]
    )

    # The status line follows the job, then names the paper that is ready.
    done = page.locator("#upload-status .upload-status.done")
    expect(done).to_contain_text(TITLE, timeout=ANSWER_TIMEOUT_MS)
    expect(done).to_contain_text("ready to ask about")
    paper_id = (done.locator("code").first.text_content() or "").strip()

    # A question the agent answers by citing it (asked over the API first: the tiny model refuses some phrasings).
    question = next(
        (q for q in QUESTIONS if any(c["paper_id"] == paper_id for c in _ask_api(app, q)["citations"])), None
    )
    assert question is not None, "no question about the uploaded paper got it cited"
    _ask(page, question)
    card = page.locator("#sources .src-card", has=page.locator(f"code:text-is('{paper_id}')")).first
    expect(card).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(card.locator("h4")).to_have_text(TITLE)
    expect(card.locator(".src-page")).to_have_text(re.compile(r"^p\. [12]$"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-upload.png"), full_page=True)
    assert httpx.delete(f"{app.url}/papers/{paper_id}", timeout=120).status_code == 200


def _ask_api(app: RunningApp, question: str) -> dict:
    return httpx.post(f"{app.url}/ask", json={"question": question}, timeout=300).json()
