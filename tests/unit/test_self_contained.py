"""The repository explains itself: no file cites a document that is not in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not match itself.
OUTSIDE = re.compile(
    r"\b(" + "SP" + "EC|ST" + "YLE|LA" + r"BS)(\.md)?\b( [A-C]?\d|\s+habit|\s+section)"
)
# ... and its numbered items cited alone: a letter A-C and a number in brackets.
LABEL = re.compile(r"[(,] ?[ABC]\d{1,2}\)")


def test_no_file_cites_a_document_outside_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files", "src", "tests", "doc", "bench", "scripts", "README.md",
        "CONTRIBUTING.md"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    hits = []
    for name in files:
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        hits += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
        hits += [f"{name}: {m.group(0)}" for m in LABEL.finditer(text)]
    assert hits == []


def test_design_anchors_cited_in_the_tree_exist() -> None:
    design = (REPO / "doc/design.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in design.splitlines()
        if line.startswith("## ")
    }
    cited = set()
    for path in [*REPO.glob("src/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("doc/*.md")]:
        cited |= set(re.findall(r"design\.md#([a-z0-9-]+)", path.read_text(encoding="utf-8")))
    assert cited, "nothing cites doc/design.md"
    assert cited <= anchors, sorted(cited - anchors)
