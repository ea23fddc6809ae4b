"""Print the README's settings table from the Settings field descriptions (`make` keeps it in sync).

.venv/bin/python scripts/settings_table.py           # print the table
.venv/bin/python scripts/settings_table.py --write   # replace it in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from paper_agent.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout

BEGIN, END = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"


def rows(model: type[BaseModel], prefix: str = "PAPER_AGENT_") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(rows(annotation, f"{prefix}{name.upper()}__"))
            continue
        # a default computed per machine (the data folder) is described in its row, not shown as one machine's value
        shown = "(computed)" if field.default_factory is not None else f"`{field.default}`"
        out.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
    return out


def table() -> str:
    return "\n".join(["| variable | default | what it does |", "| --- | --- | --- |", *rows(Settings)])


def main() -> None:
    text = table()
    if "--write" not in sys.argv:
        print(text)
        return
    readme = PROJECT_ROOT / "README.md"
    before, rest = readme.read_text().split(BEGIN, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}")


if __name__ == "__main__":
    main()
