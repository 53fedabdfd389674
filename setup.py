"""setuptools hook: the man pages, shell completions, docs and examples as data files.

The man pages and completions are generated from palhm's argparse parser and config
schema by scripts/gen_manuals.py each time a wheel is built (`python -m build`,
`pip install .`, `make deb`), so they always describe the code being packaged. A
wheel installs them under its prefix: /usr/share/... from the Debian package,
VENV/share/... in a virtual environment (pipx links the man pages).
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
GENERATED = Path("build") / "manuals"
DATA = Path("src") / "palhm" / "data"


def _manuals() -> list[tuple[str, list[str]]]:
    generate = runpy.run_path(str(HERE / "scripts" / "gen_manuals.py"))["generate"]
    generate(HERE / GENERATED)
    bash = HERE / GENERATED / "bash"
    bash.mkdir(exist_ok=True)
    (bash / "palhm").write_bytes((HERE / GENERATED / "palhm.bash").read_bytes())
    return [
        ("share/man/man1", [str(GENERATED / "palhm.1")]),
        ("share/man/man5", [str(GENERATED / "palhm.conf.5")]),
        ("share/bash-completion/completions", [str(GENERATED / "bash" / "palhm")]),
        ("share/zsh/vendor-completions", [str(GENERATED / "_palhm")]),
        ("share/fish/vendor_completions.d", [str(GENERATED / "palhm.fish")]),
    ]


def _docs() -> list[tuple[str, list[str]]]:
    def files(directory: Path, pattern: str = "*") -> list[str]:
        return sorted(str(p.relative_to(HERE)) for p in (HERE / directory).glob(pattern))

    return [
        ("share/doc/palhm", ["README.md", *files(Path("doc"), "*.md")]),
        ("share/doc/palhm/examples", files(DATA / "examples")),
        # the DNSSEC example includes ../conf.d/core.json: valid where it is installed
        ("share/doc/palhm/conf.d", files(DATA / "conf.d")),
        ("share/doc/palhm", [str(DATA / "sample.jsonc")]),
        ("share/palhm/systemd", files(DATA / "systemd")),
    ]


setup(data_files=[*_manuals(), *_docs()])
