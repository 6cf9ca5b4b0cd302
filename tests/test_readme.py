"""README stays true: every test its Guarantees table names exists where it says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def guarantees() -> list[str]:
    readme = (ROOT / "README.md").read_text("utf-8")
    table = readme.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    return [line for line in table.splitlines() if line.startswith("| ") and "`" in line]


def references(row: str) -> list[tuple[str, str | None]]:
    """(file, test) pairs of a row; `::name` after a file names a test in that file."""
    out: list[tuple[str, str | None]] = []
    current = ""
    for ref in re.findall(r"`([^`]+)`", row.split(" | ")[-1]):
        path, _, name = ref.partition("::")
        if path.endswith(".py"):
            current = path
        elif path or not current:
            continue  # a command, not a test reference
        out.append((current, name or None))
    return out


def test_every_guarantee_names_tests_that_exist() -> None:
    rows = guarantees()
    assert len(rows) >= 10
    assert sum(len(references(row)) for row in rows) >= 25  # the table is read at all
    missing = []
    for row in rows:
        for path, name in references(row):
            file = ROOT / path
            if not file.exists():
                missing.append(path)
                continue
            if name is None:
                continue
            defined = {n.name for n in ast.walk(ast.parse(file.read_text("utf-8")))
                       if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            if name.split("[")[0] not in defined:
                missing.append(f"{path}::{name}")
    assert missing == []
