"""Mutation fuzzing of config files: valid configs, broken on purpose, fed to palhm.

Seeds are the valid configs of tests/configs/good (with their includes) and the
packaged sample. A hypothesis strategy applies a few mutations to one seed's
document -- delete a key, change a value's type, insert junk or a known key in the
wrong place, rename a key, duplicate an element (duplicate ids), move a subtree,
break the includes (missing, cyclic, a directory, an empty/binary/non-object file,
a NUL byte, an over-long name) -- and sometimes damages the text itself (cut short,
junk characters, invalid UTF-8). `check_config` then loads it and judges:

- loading either succeeds or raises ConfigError, never anything else;
- every problem line names its file and says something;
- a config that loads has an effective document (`palhm config show`) that loads
  again to the same model (only `source`/`files` differ): what palhm shows is what
  it runs.

Used by tests/reliability/test_config_fuzz.py (a few hundred cases in the normal
suite) and scripts/fuzz_configs.py (the long run).
"""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hypothesis import strategies as st

from palhm import records
from palhm.config import load_config, load_effective
from palhm.config.jsonc import parse_jsonc
from palhm.errors import ConfigError

REPO: Final = Path(__file__).resolve().parents[2]
GOOD: Final = REPO / "tests" / "configs" / "good"
DATA: Final = REPO / "src" / "palhm" / "data"
SCHEMA: Final = REPO / "src" / "palhm" / "config" / "schema.json"

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Seed:
    """A valid config: the name of its top file inside a seed tree, and its document."""

    name: str
    document: Any


_TREE: list[Path] = []


def seed_tree() -> Path:
    """A copy of every seed file and include in a temporary directory, made once per
    process (removed at exit). Cases are written next to the seeds, so their relative
    includes resolve as in the originals."""
    if not _TREE:
        base = Path(tempfile.mkdtemp(prefix="palhm-fuzz-"))
        shutil.copytree(GOOD, base, dirs_exist_ok=True)
        shutil.copy(DATA / "sample.jsonc", base / "sample.jsonc")
        shutil.copytree(DATA / "conf.d", base / "conf.d")
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        _TREE.append(base)
    return _TREE[0]


def load_seeds() -> list[Seed]:
    names = sorted(p.name for p in GOOD.iterdir() if p.is_file()) + ["sample.jsonc"]
    seeds = []
    for name in names:
        source = GOOD / name if (GOOD / name).is_file() else DATA / name
        seeds.append(Seed(name, parse_jsonc(source.read_text())))
    return seeds


def _schema_words() -> tuple[list[str], list[str]]:
    """Every property name and every string enum value of the shipped schema."""
    keys: set[str] = set()
    words: set[str] = set()
    stack: list[Any] = [json.loads(SCHEMA.read_text())]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                keys.update(node["properties"])
            for value in (node.get("enum") or []) + [node.get("const")]:
                if isinstance(value, str):
                    words.add(value)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(keys), sorted(words)


KEYS, WORDS = _schema_words()
TRICKY_STRINGS: Final = [
    "", " ", "==0", ">=0", "<2", "0-1", "1-0", ">=256", "0 - 255", "==", "-1", "1e999",
    "inf", "-Infinity", "NaN", "0x10", "750", "0o750", "999", "7777", "12.5",
    "9007199254740993", ".", "./x", "../x", "/abs", "a//b/", "x/../y", "TERM", "SIGKILL",
    "99", "nope", "builtin:demo", "builtin:nope", "\u00e9\u00e8", "a\nb", "\ud7ff",
]  # fmt: skip
TRICKY_NUMBERS: Final = [
    0, -1, 1, 255, 256, 2**53 + 1, 10**30, -(10**30), 0.5, -0.0, 1e308, math.inf, -math.inf,
    math.nan,
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(TRICKY_NUMBERS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TRICKY_STRINGS),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


# --------------------------------------------------------------------------- tree edits


def paths_in(document: Any, prefix: JsonPath = ()) -> Iterator[JsonPath]:
    """Every path into the document (the root excluded), depth first."""
    items: list[tuple[str | int, Any]] = []
    if isinstance(document, dict):
        items = list(document.items())
    elif isinstance(document, list):
        items = list(enumerate(document))
    for key, value in items:
        yield (*prefix, key)
        yield from paths_in(value, (*prefix, key))


def containers_in(document: Any) -> list[JsonPath]:
    """Paths of every object and array, the root included."""
    found: list[JsonPath] = [()] if isinstance(document, dict | list) else []
    found += [p for p in paths_in(document) if isinstance(get(document, p), dict | list)]
    return found


def get(document: Any, path: JsonPath) -> Any:
    for key in path:
        document = document[key]
    return document


def typo(key: str, draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    """A misspelling of `key`: a letter dropped or doubled, the case or separator changed."""
    if not key:
        return "x"
    where = draw(st.integers(0, len(key) - 1))
    variants = [
        key[:where] + key[where + 1 :],
        key[:where] + key[where] + key[where:],
        key.upper(),
        key.replace("-", "_"),
        key.replace("-", ""),
        " " + key,
        key + " ",
    ]
    return str(draw(st.sampled_from([v for v in variants if v != key] or ["x" + key])))


# --------------------------------------------------------------------------- mutations


class Mutator:
    """Applies drawn mutations to a copy of a seed document, in a seed tree `base`."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any], base: Path) -> None:
        self.draw = draw
        self.base = base
        self.notes: list[str] = []  # what was done, for the failure report

    def pick(self, choices: list[JsonPath]) -> JsonPath:
        return tuple(self.draw(st.sampled_from(choices)))

    def apply(self, document: Any, top_name: str) -> Any:
        operations: dict[str, Callable[[Any], Any]] = {
            "delete": self.delete,
            "retype": self.retype,
            "insert": self.insert,
            "rename": self.rename,
            "duplicate": self.duplicate,
            "move": self.move,
            "include": lambda doc: self.include(doc, top_name),
        }
        for _ in range(self.draw(st.integers(1, 4))):
            name = self.draw(st.sampled_from(sorted(operations)))
            document = operations[name](document)
        return document

    def delete(self, document: Any) -> Any:
        paths = list(paths_in(document))
        if not paths:
            return document
        path = self.pick(paths)
        parent = get(document, path[:-1])
        del parent[path[-1]]
        self.notes.append(f"delete {list(path)}")
        return document

    def retype(self, document: Any) -> Any:
        value = self.draw(junk)
        paths = list(paths_in(document))
        if not paths:
            self.notes.append(f"root := {value!r}")
            return value if self.draw(st.booleans()) else document
        path = self.pick(paths)
        get(document, path[:-1])[path[-1]] = value
        self.notes.append(f"{list(path)} := {value!r}")
        return document

    def insert(self, document: Any) -> Any:
        containers = containers_in(document)
        if not containers:  # the root became a scalar
            return document
        path = self.pick(containers)
        target = get(document, path)
        value = self.draw(junk)
        if isinstance(target, dict):
            key = self.draw(st.sampled_from(KEYS) | st.text(max_size=10))
            target[key] = value
            self.notes.append(f"{list(path)}[{key!r}] = {value!r}")
        else:
            index = self.draw(st.integers(0, len(target)))
            target.insert(index, value)
            self.notes.append(f"{list(path)}.insert({index}, {value!r})")
        return document

    def rename(self, document: Any) -> Any:
        keyed = [p for p in paths_in(document) if isinstance(p[-1], str)]
        if not keyed:
            return document
        path = self.pick(keyed)
        parent = get(document, path[:-1])
        old = str(path[-1])
        new = typo(old, self.draw) if self.draw(st.booleans()) else self.draw(st.sampled_from(KEYS))
        parent[new] = parent.pop(old)
        self.notes.append(f"rename {list(path)} -> {new!r}")
        return document

    def duplicate(self, document: Any) -> Any:
        items = [p for p in paths_in(document) if isinstance(p[-1], int)]
        if not items:
            return document
        path = self.pick(items)
        parent = get(document, path[:-1])
        parent.append(json.loads(json.dumps(parent[path[-1]])))  # same ids twice
        self.notes.append(f"duplicate {list(path)}")
        return document

    def move(self, document: Any) -> Any:
        paths = list(paths_in(document))
        if len(paths) < 2:
            return document
        source, target = self.pick(paths), self.pick(paths)
        if target[: len(source)] == source:
            return document  # a subtree into itself
        value = json.loads(json.dumps(get(document, source), allow_nan=True))
        get(document, target[:-1])[target[-1]] = value
        self.notes.append(f"{list(target)} := copy of {list(source)}")
        return document

    def include(self, document: Any, top_name: str) -> Any:
        if not isinstance(document, dict):
            return document
        entry = self.draw(st.sampled_from(sorted(BROKEN_INCLUDES)))
        name = BROKEN_INCLUDES[entry](self.base, top_name)
        includes = document.get("include")
        includes = list(includes) if isinstance(includes, list) else []
        includes.insert(self.draw(st.integers(0, len(includes))), name)
        document["include"] = includes
        self.notes.append(f"include {entry}: {name!r}")
        return document


def _write(base: Path, name: str, data: bytes) -> str:
    (base / name).write_bytes(data)
    return name


BROKEN_INCLUDES: Final[dict[str, Callable[[Path, str], str]]] = {
    "missing": lambda base, top: "no-such-file.jsonc",
    "itself": lambda base, top: top,
    "itself-absolute": lambda base, top: str(base / top),
    "cycle-through-other": lambda base, top: _write(
        base, "cycle.jsonc", json.dumps({"include": [top]}).encode()
    ),
    "directory": lambda base, top: "inc",
    "dot": lambda base, top: ".",
    "empty-file": lambda base, top: _write(base, "empty.json", b""),
    "binary-file": lambda base, top: _write(base, "binary.json", bytes(range(256))),
    "not-utf8": lambda base, top: _write(base, "latin1.json", b'{"vl": "\xe9"}'),
    "array-file": lambda base, top: _write(base, "array.json", b"[1, 2]"),
    "null-file": lambda base, top: _write(base, "nullfile.json", b"null"),
    "bom-file": lambda base, top: _write(base, "bom.json", b'\xef\xbb\xbf{"vl": 2}'),
    "dev-null": lambda base, top: "/dev/null",
    "builtin-missing": lambda base, top: "builtin:nope",
    "builtin-escape": lambda base, top: "builtin:../../etc/passwd",
    "empty-name": lambda base, top: "",
    "nul-byte": lambda base, top: "a\0b.json",
    "too-long": lambda base, top: "x" * 5000,
    "duplicate-ids": lambda base, top: _write(
        base,
        "dup.jsonc",
        b'{"execs": [{"id": "dup", "argv": ["true"]}, {"id": "dup", "argv": ["x"]}]}',
    ),
}


def damage_text(draw: Callable[[st.SearchStrategy[Any]], Any], data: bytes) -> tuple[bytes, str]:
    """Maybe damage the serialised file: cut it, splice junk in, drop a slice."""
    how = draw(st.sampled_from(["none", "none", "none", "cut", "splice", "drop", "bytes"]))
    if how == "none" or not data:
        return data, ""
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 40)))
    if how == "cut":
        return data[:start], f"cut at {start}"
    if how == "drop":
        return data[:start] + data[end:], f"drop {start}:{end}"
    if how == "bytes":
        junk_bytes = draw(st.binary(min_size=1, max_size=8))
        return data[:start] + junk_bytes + data[start:], f"bytes {junk_bytes!r} at {start}"
    text = draw(st.text(alphabet="{}[],:\"'/*\n \\0123abc-", min_size=1, max_size=8))
    return data[:start] + text.encode() + data[start:], f"splice {text!r} at {start}"


@dataclass
class Case:
    """One fuzz case written to disk: the file to load and how it was made."""

    path: Path
    notes: list[str]

    def describe(self) -> str:
        return f"{self.path}: " + "; ".join(self.notes)


def draw_case(draw: Callable[[st.SearchStrategy[Any]], Any], seeds: list[Seed]) -> Case:
    """Draw a seed and its mutations; write the result into the seed tree."""
    seed = draw(st.sampled_from(seeds))
    base = seed_tree()
    mutator = Mutator(draw, base)
    mutator.notes.append(f"seed {seed.name}")
    name = f"case-{seed.name}"
    document = mutator.apply(json.loads(json.dumps(seed.document)), name)
    data = json.dumps(document, indent=1, allow_nan=True, ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )
    data, note = damage_text(draw, data)
    if note:
        mutator.notes.append(note)
    target = base / name
    target.write_bytes(data)
    return Case(target, mutator.notes)


def write_seed(seed: Seed) -> Case:
    """The seed as it is (as JSON), written into the seed tree: the control case."""
    target = seed_tree() / f"case-{seed.name}"
    target.write_text(json.dumps(seed.document, indent=1))
    return Case(target, [f"seed {seed.name} unchanged"])


# --------------------------------------------------------------------------- verdict


def check_config(case: Case) -> str:
    """Load the case; 'ok' or 'config-error'. AssertionError for anything else."""
    try:
        config = load_config(case.path)
    except ConfigError as error:
        _check_problems(error, case)
        return "config-error"
    except Exception as error:  # the bug this fuzzer looks for
        raise AssertionError(
            f"{type(error).__name__}: {error}\n  case {case.describe()}"
        ) from error
    _check_round_trip(config, case)
    return "ok"


def _check_problems(error: ConfigError, case: Case) -> None:
    assert error.problems, f"ConfigError without problems\n  case {case.describe()}"
    for problem in error.problems:
        assert problem.file and problem.message.strip(), (
            f"problem without file or message: {problem!r}\n  case {case.describe()}"
        )
        assert "Traceback" not in problem.message, case.describe()


def _check_round_trip(config: Any, case: Case) -> None:
    """`palhm config show` output must load again to the same model."""
    _, effective = load_effective(case.path)
    again = case.path.with_name("effective.json")
    again.write_text(json.dumps(effective, allow_nan=False))
    try:
        reloaded = load_config(again)
    except ConfigError as error:
        raise AssertionError(
            f"config show output does not load: {error}\n  case {case.describe()}"
        ) from error
    same = records.replace(reloaded, source=config.source, files=config.files)
    assert same == config, f"config show output loads differently\n  case {case.describe()}"


def cleanup(case: Case) -> None:
    """Remove the case's files (the seed tree stays for the next case)."""
    for path in (case.path, case.path.with_name("effective.json")):
        path.unlink(missing_ok=True)
