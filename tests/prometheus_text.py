"""A strict parser of the Prometheus text exposition format (0.0.4), for tests.

Every rule of https://prometheus.io/docs/instrumenting/exposition_formats/ that a
textfile can break is checked: metric and label name syntax, label value escapes,
HELP/TYPE at most once and TYPE before the samples, a family's lines contiguous, no
duplicate series, valid float values, a final newline. A violation raises FormatError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(
    rf"^(?P<name>{NAME})(?:\{{(?P<labels>(?:{LABEL})(?:,{LABEL})*,?)?\}})?"
    r" (?P<value>\S+)(?: (?P<timestamp>-?\d+))?$"
)
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


@dataclass
class Family:
    name: str
    help: str | None = None
    type: str | None = None
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)


class FormatError(AssertionError):
    pass


def parse_value(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise FormatError(f"bad value {text!r}")
    return float(text)


def parse_labels(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    pairs = re.findall(LABEL, text)
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise FormatError(f"repeated label in {text!r}")
    unescaped = [
        (n, re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], v)) for n, v in pairs
    ]
    return tuple(sorted(unescaped))


class StrictParser:
    """Every rule the text format states is checked; a violation is a FormatError."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.closed: set[str] = set()
        self.current: str | None = None

    def enter(self, name: str) -> Family:
        """The family a line belongs to; its lines must be contiguous."""
        if name != self.current:
            if name in self.closed or (name in self.families and self.families[name].samples):
                raise FormatError(f"samples of {name} are not contiguous")
            if self.current is not None:
                self.closed.add(self.current)
            self.current = name
        return self.families.setdefault(name, Family(name))

    def comment(self, number: int, line: str) -> None:
        parts = line.split(None, 3)
        if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
            return  # a plain comment
        if not re.fullmatch(NAME, parts[2]):
            raise FormatError(f"line {number}: bad metric name")
        family = self.enter(parts[2])
        if parts[1] == "HELP":
            if family.help is not None:
                raise FormatError(f"line {number}: second HELP for {parts[2]}")
            family.help = parts[3] if len(parts) > 3 else ""
            return
        if family.type is not None or family.samples:
            raise FormatError(f"line {number}: TYPE repeated or after samples")
        if len(parts) != 4 or parts[3] not in TYPES:
            raise FormatError(f"line {number}: bad TYPE")
        family.type = parts[3]

    def sample(self, number: int, line: str) -> None:
        match = SAMPLE.match(line)
        if not match:
            raise FormatError(f"line {number}: not a sample: {line!r}")
        family = self.enter(match["name"])
        labels = parse_labels(match["labels"])
        if labels in family.samples:
            raise FormatError(f"line {number}: duplicate series {match['name']}{labels}")
        family.samples[labels] = parse_value(match["value"])


def parse_prometheus(text: str) -> dict[str, Family]:
    if text and not text.endswith("\n"):
        raise FormatError("the last line must end with a newline")
    parser = StrictParser()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parser.comment(number, line)
        else:
            parser.sample(number, line)
    return parser.families


def by_task(families: dict[str, Family], name: str) -> dict[str, float]:
    return {dict(labels)["task"]: value for labels, value in families[name].samples.items()}
