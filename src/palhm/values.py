"""Small value types parsed from config strings: `ec`, decimal limits, signals, modes.

Each `parse` raises ValueError with a message meant to follow "expected ..." in a
config error; config/ turns it into a ConfigProblem with the JSON path.
"""

from __future__ import annotations

import math
import re
import signal
from decimal import Decimal, InvalidOperation
from typing import Final

from palhm.records import record

_EC_RANGE: Final = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_EC_COMPARE: Final = re.compile(r"^\s*(<=|>=|==|<|>)?\s*(\d+)\s*$")


@record
class ExitCodeSpec:
    """Accepted exit statuses: an inclusive range [low, high] within 0..255."""

    low: int
    high: int
    text: str

    @classmethod
    def parse(cls, value: str | int) -> ExitCodeSpec:
        """Parse `MIN-MAX` or `[<|<=|>|>=|==]N`; a JSON integer N means `==N`."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("an exit status spec such as '==0', '<2' or '0-3'")
        text = str(value)
        if isinstance(value, int):
            low = high = _status(value)
        elif m := _EC_RANGE.match(text):
            low, high = _status(int(m.group(1))), _status(int(m.group(2)))
            if low > high:
                raise ValueError(f"'{text}' is an empty range (expected MIN-MAX with MIN <= MAX)")
        elif m := _EC_COMPARE.match(text):
            low, high = _compare_bounds(m.group(1) or "==", _status(int(m.group(2))))
            if low > high:
                raise ValueError(f"'{text}' accepts no exit status")
        else:
            raise ValueError(
                f"'{text}' is not an exit status spec (expected MIN-MAX or [<|<=|>|>=|==]N)"
            )
        return cls(low, high, text.strip())

    def accepts(self, status: int) -> bool:
        """True when a normal exit with `status` is a success. Signals never are."""
        return self.low <= status <= self.high


def _status(n: int) -> int:
    if not 0 <= n <= 255:
        raise ValueError(f"exit status {n} is outside 0-255")
    return n


def _compare_bounds(op: str, n: int) -> tuple[int, int]:
    return {
        "==": (n, n),
        "<": (0, n - 1),
        "<=": (0, n),
        ">": (n + 1, 255),
        ">=": (n, 255),
    }[op]


DEFAULT_EC: Final = ExitCodeSpec(0, 0, "==0")

_INFINITY_WORDS: Final = frozenset({"inf", "infinity"})


@record
class Limit:
    """A decimal limit (`nb-copy-limit`, `root-size-limit`); None means infinity.

    Integers are exact whatever their size; a fractional part is truncated.
    """

    value: int | None

    @classmethod
    def parse(cls, raw: object) -> Limit:
        if isinstance(raw, bool):
            raise ValueError("a decimal number or 'Infinity'")
        if isinstance(raw, int):
            return cls(_not_negative(raw, raw))
        if isinstance(raw, float):
            if math.isnan(raw):
                raise ValueError("a decimal number, not NaN")
            return cls(None) if math.isinf(raw) else cls(_not_negative(int(raw), raw))
        if isinstance(raw, str):
            return cls._parse_text(raw)
        raise ValueError("a decimal number or 'Infinity'")

    @classmethod
    def _parse_text(cls, raw: str) -> Limit:
        text = raw.strip()
        if text.lstrip("+-").lower() in _INFINITY_WORDS:
            # either sign means "no limit": the original PALHM documented "-inf" too
            return cls(None)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"'{raw}' is not a decimal number (or 'Infinity')") from None
        if not number.is_finite():
            raise ValueError(f"'{raw}' is not a decimal number (or 'Infinity')")
        return cls(_not_negative(int(number), raw))

    @property
    def infinite(self) -> bool:
        return self.value is None

    def exceeded_by(self, amount: int) -> bool:
        return self.value is not None and amount > self.value

    def __str__(self) -> str:
        return "Infinity" if self.value is None else str(self.value)


INFINITE: Final = Limit(None)


def _not_negative(value: int, raw: object) -> int:
    negative_text = isinstance(raw, str) and raw.strip().startswith("-")
    if value < 0 or negative_text or (isinstance(raw, float) and raw < 0):
        shown = f"'{raw}'" if isinstance(raw, str) else str(raw)
        raise ValueError(f"{shown}: a limit cannot be negative")
    return value


def parse_signal(raw: object) -> signal.Signals:
    """A signal from a number (15, "15") or a name ("TERM", "SIGTERM"), any case."""
    if isinstance(raw, bool):
        raise ValueError("a signal number or name")
    text = str(raw).strip()
    if isinstance(raw, int) or text.isdigit():
        try:
            return signal.Signals(int(text))
        except ValueError:
            raise ValueError(f"'{raw}' is not a signal number on this system") from None
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"'{raw}' is not a signal name (such as TERM, SIGHUP, INT)") from None


def parse_mode(raw: object) -> int:
    """A permission mode: an octal string ("750") or a JSON number in octal digits (750)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError('an octal mode such as "750"')
    text = str(raw).strip()
    if text.startswith("0o"):
        text = text[2:]
    if not text or any(c not in "01234567" for c in text) or int(text, 8) > 0o7777:
        raise ValueError(f"'{raw}' is not an octal mode such as \"750\"")
    return int(text, 8)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
