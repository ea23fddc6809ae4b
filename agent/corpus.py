"""Files -> Papers. Readers for saved listing pages, JSON/JSONL records, arXiv metadata and PDFs.

Every reader returns the papers it could read and an `UnreadablePaper` for each file or line it could
not: a bad line never costs the rest of its file, a bad file never costs the rest of the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paper_agent.errors import UnreadablePaper
from paper_agent.types import Paper, paper_id_for

SUPPORTED_SUFFIXES = (".txt", ".json", ".jsonl", ".pdf")

# Page chrome of the saved listing pages: navigation, the subscribe banner, and date stamps like "Mar 12".
_CHROME_LINE = re.compile(
    r"^(new|Subscribe|Daily Papers|by ?AK and the research community"
    r"|Get trending papers in your email inbox( once a day)?!"
    r"|(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2}(, \d{4})?)$"
)
# subtle: one page has the banner glued to the first title ("SubscribeBootsTAP: ...").
_CHROME_PREFIX = re.compile(r"^Subscribe(?=\S)")
_MAX_TITLE_CHARS = 300
_MIN_ABSTRACT_CHARS = 100


@dataclass
class ReadReport:
    """What a read of several files produced: unique papers, and what was skipped and why."""

    papers: list[Paper] = field(default_factory=list)
    skipped: list[UnreadablePaper] = field(default_factory=list)
    files: int = 0
    duplicates: int = 0


def read_paths(paths: Iterable[Path]) -> ReadReport:
    """Read every supported file under `paths` (files or folders), deduplicating papers by id."""
    report = ReadReport()
    seen: set[str] = set()
    for path in _expand(paths):
        report.files += 1
        papers, skipped = read_file(path)
        report.skipped.extend(skipped)
        for paper in papers:
            if paper.id in seen:
                report.duplicates += 1
                continue
            seen.add(paper.id)
            report.papers.append(paper)
    return report


def _expand(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            yield path


def read_file(path: Path) -> tuple[list[Paper], list[UnreadablePaper]]:
    """Papers in one file, and the problems found in it. Never raises for bad content."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            return read_pdf(path), []
        if suffix not in SUPPORTED_SUFFIXES:
            raise UnreadablePaper(str(path), f"unsupported file type {suffix or '(none)'!r}")
        text = _read_text(path)
        if suffix == ".txt":
            return read_listing_page(text, source=str(path))
        return read_json_records(text, source=str(path), jsonl=suffix == ".jsonl")
    except UnreadablePaper as err:
        return [], [err]
    except OSError as err:
        return [], [UnreadablePaper(str(path), f"cannot open: {err.strerror or err}")]


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise UnreadablePaper(str(path), "empty file")
    if b"\x00" in data[:8192]:
        raise UnreadablePaper(str(path), "binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UnreadablePaper(str(path), f"not UTF-8 (bad byte at offset {err.start})") from None


# --- saved listing pages -------------------------------------------------------------------------


def read_listing_page(text: str, source: str) -> tuple[list[Paper], list[UnreadablePaper]]:
    """Pair each title line with the abstract line after it, skipping page chrome."""
    lines = [(n, _CHROME_PREFIX.sub("", raw.strip())) for n, raw in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line and not _CHROME_LINE.match(line)]
    papers: list[Paper] = []
    problems: list[UnreadablePaper] = []
    i = 0
    while i < len(lines):
        n, title = lines[i]
        abstract = lines[i + 1][1] if i + 1 < len(lines) else ""
        if len(title) <= _MAX_TITLE_CHARS and len(abstract) >= _MIN_ABSTRACT_CHARS:
            papers.append(Paper(id=paper_id_for(title), title=title, text=abstract, source=source))
            i += 2
        else:
            problems.append(UnreadablePaper(source, f"line is neither a title nor its abstract: {title[:60]!r}", n))
            i += 1
    if not papers:
        problems.append(UnreadablePaper(source, "no title/abstract pairs found"))
    return papers, problems


# --- JSON, JSONL and arXiv metadata --------------------------------------------------------------


def read_json_records(text: str, source: str, jsonl: bool) -> tuple[list[Paper], list[UnreadablePaper]]:
    """Papers from JSON lines, or a JSON list (or `{"papers": [...]}`) of records."""
    papers: list[Paper] = []
    problems: list[UnreadablePaper] = []
    for line, record in _json_records(text, source, jsonl, problems):
        try:
            papers.append(paper_from_record(record, source))
        except UnreadablePaper as err:
            problems.append(UnreadablePaper(source, err.reason, line))
    if not papers and not problems:
        problems.append(UnreadablePaper(source, "no records"))
    return papers, problems


def _json_records(
    text: str, source: str, jsonl: bool, problems: list[UnreadablePaper]
) -> Iterator[tuple[int | None, Any]]:
    if jsonl:
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw)
            except json.JSONDecodeError as err:
                problems.append(UnreadablePaper(source, f"malformed JSON: {err.msg} at column {err.colno}", n))
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise UnreadablePaper(source, f"malformed JSON: {err.msg}", err.lineno) from None
    records = doc.get("papers") if isinstance(doc, dict) and "papers" in doc else doc
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise UnreadablePaper(source, "expected a JSON list of paper records")
    yield from enumerate(records, start=1)


def paper_from_record(record: Any, source: str) -> Paper:
    """One paper from a `{title, abstract}` record; arXiv snapshot records (id, authors, update_date) too."""
    if not isinstance(record, dict):
        raise UnreadablePaper(source, f"expected an object, got {type(record).__name__}")
    title = _clean(record.get("title"))
    text = _clean(record.get("abstract") or record.get("text") or record.get("summary"))
    if not title:
        raise UnreadablePaper(source, "record has no 'title'")
    if not text:
        raise UnreadablePaper(source, f"record {title[:60]!r} has no 'abstract'")
    arxiv_id = record.get("id") if "update_date" in record or "categories" in record else None
    return Paper(
        id=paper_id_for(title),
        title=title,
        text=text,
        source=source,
        authors=_authors(record.get("authors")),
        year=_year(record.get("year") or record.get("update_date")),
        url=record.get("url") or (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None),
    )


def _clean(value: Any) -> str:
    """Collapse the hard line breaks and runs of spaces that arXiv metadata keeps in titles and abstracts."""
    return " ".join(str(value).split()) if value else ""


def _authors(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_clean(a if isinstance(a, str) else " ".join(map(str, a))) for a in value if a)
    if isinstance(value, str) and value.strip():
        # arXiv writes "A. Author, B. Author and C. Author".
        return tuple(a.strip() for a in re.split(r",\s*|\s+and\s+", _clean(value)) if a.strip())
    return ()


def _year(value: Any) -> int | None:
    match = re.search(r"\b(19|20)\d{2}\b", str(value)) if value else None
    return int(match.group()) if match else None


# --- PDF -----------------------------------------------------------------------------------------


def read_pdf(path: Path) -> list[Paper]:
    """One paper per PDF: its full text, remembering where each page starts."""
    from pypdf import PdfReader
    from pypdf.errors import EmptyFileError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still opens with ""
            raise UnreadablePaper(str(path), "PDF is encrypted (it needs a password to open)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except EmptyFileError:
        raise UnreadablePaper(str(path), "empty file") from None
    except FileNotDecryptedError:
        raise UnreadablePaper(str(path), "PDF is encrypted (it needs a password to open)") from None
    except (PdfReadError, ValueError, KeyError, TypeError) as err:
        raise UnreadablePaper(str(path), f"not a readable PDF: {err}") from None
    text, page_starts = "", []
    for number, page_text in enumerate(pages, start=1):
        page_text = page_text.strip()
        if page_text:
            page_starts.append((number, len(text)))
            text += page_text + "\n\n"
    if not text.strip():
        raise UnreadablePaper(str(path), "PDF has no extractable text (scanned images?)")
    title = _clean(meta_title) or _clean(text.strip().splitlines()[0])[:_MAX_TITLE_CHARS]
    return [
        Paper(id=paper_id_for(title), title=title, text=text.strip(), source=str(path), page_starts=tuple(page_starts))
    ]
