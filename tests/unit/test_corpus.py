"""Corpus readers: known answers on the real listing pages, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_agent.corpus import read_file, read_listing_page, read_paths
from paper_agent.data import CORPUS
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.types import paper_id_for

PAGES = sorted(CORPUS.glob("*.txt"))


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        ("000", 81, "PROP: Pre-training with Representative Words Prediction for Ad-hoc Retrieval",
         "GottBERT: a pure German Language Model"),
        # The banner is glued to the first title on this page: "SubscribeBootsTAP: ...".
        ("001", 247, "BootsTAP: Bootstrapped Training for Tracking-Any-Point",
         "A Unified and General Framework for Continual Learning"),
        ("002", 67, "FlatFormer: Flattened Window Attention for Efficient Point Cloud Transformer",
         "Computational Limits of Low-Rank Adaptation (LoRA) for Transformer-Based Models"),
        ("003", 64, "GraphCodeBERT: Pre-training Code Representations with Data Flow",
         "Transformer-Based Models Are Not Yet Perfect At Learning to Emulate Structural Recursion"),
        ("004", 72, "T-Stitch: Accelerating Sampling in Pre-Trained Diffusion Models with Trajectory Stitching",
         "LaVin-DiT: Large Vision Diffusion Transformer"),
    ],
)  # fmt: skip
def test_listing_page_known_answers(name: str, count: int, first: str, last: str) -> None:
    (page,) = [p for p in PAGES if p.name.startswith(name)]
    papers, problems = read_file(page)
    assert problems == []
    assert len(papers) == count
    assert (papers[0].title, papers[-1].title) == (first, last)
    assert all(len(p.text) > 200 and p.id == paper_id_for(p.title) for p in papers)


def test_bundled_corpus_has_492_unique_papers() -> None:
    report = read_paths([CORPUS])
    assert (report.files, len(report.papers), report.duplicates, report.skipped) == (5, 492, 39, [])
    assert len({p.id for p in report.papers}) == 492


def test_page_chrome_is_skipped() -> None:
    page = "new\n\nSubscribe\n\nbyAK and the research community\n\nMar 12\n\nA Title\n\n" + "An abstract. " * 20
    papers, problems = read_listing_page(page, source="page.txt")
    assert [p.title for p in papers] == ["A Title"] and problems == []


def test_public_question_set_gold_ids_resolve() -> None:
    ids = {p.id for p in read_paths([CORPUS]).papers}
    questions = [json.loads(line) for line in DEFAULT_QUESTIONS.open()]
    assert {g for q in questions for g in q["gold_ids"]} <= ids


def test_paper_id_rule() -> None:
    # p + first 8 hex digits of SHA-1 of the exact title (the public set's gold ids use it).
    assert paper_id_for("Predicting Rare Events by Shrinking Towards Proportional Odds") == "p80ecd46b"


# --- JSON, JSONL, arXiv --------------------------------------------------------------------------


def test_jsonl_bad_lines_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "papers.jsonl"
    path.write_text(
        '{"title": "Good One", "abstract": "Text one."}\n'
        "{not json\n"
        '{"title": "No Abstract"}\n'
        '"just a string"\n'
        "\n"
        '{"title": "Good Two", "abstract": "Text two.", "authors": ["A", "B"], "year": 2021}\n'
    )
    papers, problems = read_file(path)
    assert [p.title for p in papers] == ["Good One", "Good Two"]
    assert papers[1].authors == ("A", "B") and papers[1].year == 2021
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (2, "malformed JSON"),
        (3, "record 'No Abstract' has no 'abstract'"),
        (4, "expected an object, got str"),
    ]
    assert all(p.path == str(path) for p in problems)


def test_json_list_and_papers_object(tmp_path: Path) -> None:
    listed = tmp_path / "a.json"
    listed.write_text(json.dumps([{"title": "T1", "abstract": "A1"}]))
    wrapped = tmp_path / "b.json"
    wrapped.write_text(json.dumps({"papers": [{"title": "T2", "summary": "A2"}]}))
    assert [p.title for p in read_paths([listed, wrapped]).papers] == ["T1", "T2"]


def test_arxiv_metadata_record(tmp_path: Path) -> None:
    record = {
        "id": "0704.0001",
        "title": "Calculation of prompt diphoton production\n  cross sections",
        "abstract": "  A fully differential calculation\nin perturbative QCD.  ",
        "authors": "C. Bal\\'azs, E. L. Berger and P. M. Nadolsky",
        "categories": "hep-ph",
        "update_date": "2008-11-13",
    }
    path = tmp_path / "arxiv.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (paper,), problems = read_file(path)
    assert problems == []
    assert paper.title == "Calculation of prompt diphoton production cross sections"
    assert paper.text == "A fully differential calculation in perturbative QCD."
    assert paper.authors == ("C. Bal\\'azs", "E. L. Berger", "P. M. Nadolsky")
    assert (paper.year, paper.url) == (2008, "https://arxiv.org/abs/0704.0001")


# --- bad files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.jsonl", b"\n  \n", "empty file"),
        ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary file (contains NUL bytes)"),
        ("latin1.txt", "Caf\xe9 title\n".encode("latin-1"), "not UTF-8 (bad byte at offset 3)"),
        ("broken.json", b'{"title": ', "malformed JSON: Expecting value"),
        ("notes.md", b"# hello", "unsupported file type '.md'"),
        ("fake.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ],
)
def test_bad_file_is_reported_by_name(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    papers, (problem,) = read_file(path)
    assert papers == []
    assert problem.path == str(path)
    assert problem.reason.startswith(reason)


def test_bad_file_does_not_cost_the_rest(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\x00\x01")
    (tmp_path / "good.jsonl").write_text('{"title": "Kept", "abstract": "Still here."}\n')
    report = read_paths([tmp_path])
    assert [p.title for p in report.papers] == ["Kept"]
    assert [s.path for s in report.skipped] == [str(tmp_path / "bad.txt")]


def test_missing_file_is_reported(tmp_path: Path) -> None:
    report = read_paths([tmp_path / "nope.jsonl"])
    assert report.papers == [] and "cannot open" in report.skipped[0].reason


# --- PDF -----------------------------------------------------------------------------------------


def _pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    """A small real PDF with one text line per page, written with pypdf (no extra dependency)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b"")
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
    if title:
        writer.add_metadata({"/Title": title})
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def test_pdf_full_text_with_pages(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "paper.pdf", ["Attention Is Everything", "", "Results on page three"], title="My Paper")
    (paper,), problems = read_file(path)
    assert problems == []
    assert paper.title == "My Paper"
    assert "Results on page three" in paper.text
    assert [number for number, _ in paper.page_starts] == [1, 3]


def test_pdf_without_text_is_reported(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "scan.pdf", ["", ""])
    papers, (problem,) = read_file(path)
    assert papers == [] and "no extractable text" in problem.reason
