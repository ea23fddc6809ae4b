"""Type-check the package as it is installed: `paper_agent` over the checkout's agent/, eval/, prompts/ and data/.

The editable install maps those folders to one package with an import hook, which mypy cannot follow (every
`paper_agent` import would be `Any`). So this builds the installed layout as a tree of symlinks under
build/typecheck/ (the wheel's layout, read from pyproject.toml's package-dir) and runs mypy on it.

    .venv/bin/python scripts/typecheck.py [mypy options]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"


def link_tree() -> Path:
    """build/typecheck/paper_agent/... with a symlink for every file and folder a package folder holds."""
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    for package, folder in sorted(package_dirs.items()):  # parents before the subpackages mapped into them
        target = TREE.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (ROOT / folder).iterdir():
            if entry.name != "__pycache__":
                (target / entry.name).symlink_to(entry)
    return TREE


def main() -> int:
    tree = link_tree()
    command = [sys.executable, "-m", "mypy", "-p", "paper_agent", *sys.argv[1:]]
    return subprocess.run(command, cwd=ROOT, env=os.environ | {"MYPYPATH": str(tree)}).returncode


if __name__ == "__main__":
    sys.exit(main())
