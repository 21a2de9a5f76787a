"""docs/operations.md has the one configuration table: it names every ``PDP_*``
variable the code reads, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "operations.md"
#: A variable's full name (not a prefix such as ``PDP_JWT_``).
VARIABLE = re.compile(r"\bPDP_[A-Z0-9]+(?:_[A-Z0-9]+)*\b(?!_)")
#: Read by the tests only, documented under the table.
NOT_THE_SERVICE = {"PDP_TEST_POSTGRES_URL"}


def in_code() -> set[str]:
    found = set()
    for path in (ROOT / "pdp").rglob("*.py"):
        found |= set(VARIABLE.findall(path.read_text(encoding="utf-8")))
    return found - NOT_THE_SERVICE


def in_table() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Z_0-9]+)` \|", section, re.M)


def test_every_variable_in_the_code_is_in_the_table():
    assert in_code() - set(in_table()) == set()


def test_the_table_names_no_variable_the_code_does_not_read():
    assert set(in_table()) - in_code() - {"PROMETHEUS_MULTIPROC_DIR"} == set()


def test_each_variable_has_one_row():
    rows = in_table()
    assert len(rows) == len(set(rows))


def test_docs_tokens_md_was_merged_here():
    assert not (ROOT / "docs" / "tokens.md").exists()
    for path in [*ROOT.joinpath("pdp").rglob("*.py"), *ROOT.joinpath("docs").glob("*.md"),
                 ROOT / "README.md"]:
        assert "docs/tokens.md" not in path.read_text(encoding="utf-8"), path
