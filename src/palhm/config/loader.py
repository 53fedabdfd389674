"""Reading config files and following their includes (doc/design.md#configuration).

- `-f FILE` is taken from the working directory; `builtin:NAME` names a packaged
  file (src/palhm/data/NAME.jsonc), and relative includes of a packaged file
  resolve inside the package data directory.
- A relative include resolves from the directory of the file that names it.
- Files are identified by their real path: a file reached twice (a diamond) is
  loaded once; a file that includes itself, directly or not, is an error printing
  the chain `a.jsonc -> b.jsonc -> a.jsonc`.
- Load order is depth-first, each file's includes before the file itself, so the
  including file's scalars override those of the files it includes.

Nothing here raises for a bad file: every problem becomes an Issue, so that all of
them can be reported at once.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any, Final, TypeAlias

from palhm.config.duplicates import duplicate_keys
from palhm.config.jsonc import JsoncSyntaxError, parse_jsonc
from palhm.config.problems import Issue
from palhm.records import field, record

BUILTIN_SCHEME: Final = "builtin:"
DATA_DIR: Final = Path(__file__).resolve().parent.parent / "data"
_CONFIG_SUFFIXES: Final = (".json", ".jsonc", ".conf")
MAX_INCLUDE_DEPTH: Final = 32  # files in one chain of includes

_Via: TypeAlias = tuple[str, int] | None


@record(frozen=False)
class SourceFile:
    """One loaded file. `name` is how messages name it; `document` its parsed content."""

    name: str
    fs_path: str  # where it was read from (relative to the working directory or absolute)
    document: dict[str, Any]
    packaged: bool = False


@record(frozen=False)
class Loaded:
    """The result of loading: files in load order, and every problem met on the way."""

    files: list[SourceFile] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)  # name -> discovery order
    complete: bool = True  # every file was read and parsed


@record
class _Target:
    name: str
    fs_path: str
    packaged: bool

    @property
    def real(self) -> str:
        return os.path.realpath(self.fs_path)


def load_files(path: str | os.PathLike[str]) -> Loaded:
    """Read the file `path` and everything it includes."""
    loaded = Loaded()
    target = _top_target(os.fspath(path), loaded)
    if target is not None:
        _Walker(loaded).visit(target, chain=[])
    return loaded


def _top_target(path: str, loaded: Loaded) -> _Target | None:
    if not path.startswith(BUILTIN_SCHEME):
        return _Target(path, path, packaged=False)
    name = path[len(BUILTIN_SCHEME) :]
    fs_path = _packaged_path(name)
    if fs_path is None:
        known = ", ".join(sorted(p.stem for p in DATA_DIR.glob("*.jsonc"))) or "none"
        loaded.issues.append(Issue(path, (), f"no packaged config '{name}' (known: {known})"))
        loaded.ranks[path] = 0
        loaded.complete = False
        return None
    return _Target(path, fs_path, packaged=True)


def _packaged_path(name: str) -> str | None:
    """The file behind `builtin:NAME`: NAME.jsonc, or NAME itself when it has a suffix."""
    if not name or os.path.isabs(name) or ".." in Path(name).parts:
        return None
    candidate = DATA_DIR / name
    if candidate.suffix not in _CONFIG_SUFFIXES:
        candidate = candidate.with_name(candidate.name + ".jsonc")
    return str(candidate) if candidate.is_file() else None


MAX_CONFIG_BYTES: Final = 64 << 20


def _read_config_text(fs_path: str) -> str:
    """A config file's text. Only regular files: a FIFO or a device (/dev/zero) named
    by mistake would block or fill memory. Raises OSError / UnicodeDecodeError."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it)
    fd = os.open(fs_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES >> 20} MiB")
        return file.read().decode("utf-8")


class _Walker:
    """Depth-first include traversal; appends to `loaded` as files finish loading."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.done: set[str] = set()

    def visit(self, target: _Target, *, chain: list[tuple[str, str]], via: _Via = None) -> None:
        """Load `target` after its includes.

        `chain`: (real path, name) of the files including it, outermost first;
        `via`: (file, include index) naming it, None for the -f file.
        """
        self.loaded.ranks.setdefault(target.name, len(self.loaded.ranks))
        document = self._read(target, via)
        real = target.real
        if document is None:
            self.done.add(real)
            return
        chain.append((real, target.name))
        for index, include in _includes(document):
            self._follow(target, index, include, chain)
        chain.pop()
        self.done.add(real)
        self.loaded.files.append(
            SourceFile(target.name, target.fs_path, document, packaged=target.packaged)
        )

    def _follow(
        self, parent: _Target, index: int, include: str, chain: list[tuple[str, str]]
    ) -> None:
        if "\0" in include:
            self._issue(parent.name, ("include", index), "an include path cannot hold a NUL byte")
            self.loaded.complete = False
            return
        child = _resolve_include(parent, include)
        if child is None:
            self._issue(parent.name, ("include", index), f"no packaged config '{include}'")
            self.loaded.complete = False
            return
        if len(chain) >= MAX_INCLUDE_DEPTH:
            self._issue(
                parent.name,
                ("include", index),
                f"includes nested more than {MAX_INCLUDE_DEPTH} files deep",
            )
            self.loaded.complete = False
            return
        real = child.real
        reals = [r for r, _ in chain]
        if real in reals:
            names = [name for _, name in chain[reals.index(real) :]] + [child.name]
            self._issue(parent.name, ("include", index), "include cycle: " + " -> ".join(names))
            self.loaded.complete = False
        elif real not in self.done:
            self.visit(child, chain=chain, via=(parent.name, index))

    def _read(self, target: _Target, via: _Via) -> dict[str, Any] | None:
        try:
            text = _read_config_text(target.fs_path)
        except OSError as error:
            self._unreadable(target, via, error.strerror or str(error))
            return None
        except UnicodeDecodeError as error:
            self._unreadable(target, via, f"not UTF-8 text (byte {error.start})")
            return None
        except ValueError as error:  # a NUL byte in the -f path
            self._unreadable(target, via, str(error))
            return None
        return self._parse(target.name, text.removeprefix("\ufeff"))

    def _unreadable(self, target: _Target, via: _Via, reason: str) -> None:
        self.loaded.complete = False
        if via is None:
            self._issue(target.name, (), f"cannot read: {reason}")
        else:
            file, index = via
            self._issue(file, ("include", index), f"cannot read '{target.name}': {reason}")

    def _parse(self, name: str, text: str) -> dict[str, Any] | None:
        try:
            document = parse_jsonc(text)
        except JsoncSyntaxError as error:
            self._issue(name, (), _yaml_message(text) or str(error))
            self.loaded.complete = False
            return None
        if not isinstance(document, dict):
            found = type(document).__name__ if document is not None else "null"
            self._issue(name, (), f"expected a JSON object at the top level, found {found}")
            self.loaded.complete = False
            return None
        for path, key in duplicate_keys(text):
            self._issue(name, (*path, key), "key written twice in one object (which one wins?)")
        return document

    def _issue(self, file: str, path: tuple[str | int, ...], message: str) -> None:
        self.loaded.issues.append(Issue(file, path, message))


_YAML_LINE: Final = re.compile(r"---\s*$|%YAML|[A-Za-z_][\w-]*:(\s|$)|- ")


def _yaml_message(text: str) -> str:
    """The message for a file that is not JSON but starts like YAML (`key: value`,
    `---`), else ""."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _YAML_LINE.match(stripped):
            return (
                "this looks like YAML, but palhm reads JSON with comments (JSONC):"
                " convert it, e.g. with python3 -c 'import json, sys, yaml;"
                " json.dump(yaml.safe_load(sys.stdin), sys.stdout, indent=2)'"
            )
        return ""
    return ""


def _includes(document: dict[str, Any]) -> list[tuple[int, str]]:
    """(index, path) of each include, skipping entries of the wrong type (the schema
    reports those)."""
    value = document.get("include")
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, str) and item]


def _resolve_include(parent: _Target, include: str) -> _Target | None:
    if include.startswith(BUILTIN_SCHEME):
        fs_path = _packaged_path(include[len(BUILTIN_SCHEME) :])
        return None if fs_path is None else _Target(include, fs_path, packaged=True)
    fs_path = os.path.join(os.path.dirname(parent.fs_path), include)
    if os.path.isabs(include):
        name = include
    elif parent.packaged:
        relative = os.path.relpath(os.path.normpath(fs_path), DATA_DIR)
        name = BUILTIN_SCHEME + relative
    else:
        name = os.path.normpath(os.path.join(os.path.dirname(parent.name), include))
    return _Target(name, fs_path, packaged=parent.packaged and not os.path.isabs(include))
