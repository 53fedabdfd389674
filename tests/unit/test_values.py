"""The small value grammars of palhm.values: `ec`, decimal limits, signals, modes."""

from __future__ import annotations

import signal

import pytest

from palhm.values import ExitCodeSpec, Limit, parse_mode, parse_signal

# --------------------------------------------------------------------------- ec


@pytest.mark.parametrize(
    ("text", "accepted", "refused"),
    [
        (">=0", [0, 1, 128, 255], []),
        ("<2", [0, 1], [2, 255]),
        ("0-1", [0, 1], [2, 3]),
        ("1", [1], [0, 2]),
        ("==0", [0], [1]),
        ("<=1", [0, 1], [2]),
        (">0", [1, 255], [0]),
        (" >= 3 ", [3, 4], [2]),
        ("2 - 4", [2, 3, 4], [1, 5]),
        ("255", [255], [254]),
        ("0-255", [0, 255], []),
    ],
)
def test_ec_accepts_exactly_the_statuses_it_names(
    text: str, accepted: list[int], refused: list[int]
) -> None:
    spec = ExitCodeSpec.parse(text)
    assert [s for s in accepted if spec.accepts(s)] == accepted
    assert [s for s in refused if spec.accepts(s)] == []


def test_ec_json_number_means_equal_to_it() -> None:
    spec = ExitCodeSpec.parse(3)
    assert (spec.low, spec.high) == (3, 3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not an exit status spec"),
        ("==0 junk", "not an exit status spec"),
        ("0-1-2", "not an exit status spec"),
        ("<<2", "not an exit status spec"),
        ("=0", "not an exit status spec"),
        ("3-1", "empty range"),
        ("256", "outside 0-255"),
        ("0-256", "outside 0-255"),
        ("<0", "accepts no exit status"),
        (">255", "accepts no exit status"),
        ("-1", "not an exit status spec"),
    ],
)
def test_ec_rejects_malformed_specs(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ExitCodeSpec.parse(text)


@pytest.mark.parametrize("value", [True, 1.5, None, ["0"]])
def test_ec_rejects_other_json_types(value: object) -> None:
    with pytest.raises(ValueError, match="exit status spec"):
        ExitCodeSpec.parse(value)  # type: ignore[arg-type]


def test_ec_keeps_its_text_for_messages() -> None:
    assert ExitCodeSpec.parse("  <2 ").text == "<2"


# --------------------------------------------------------------------------- Limit


@pytest.mark.parametrize(
    "raw", ["inf", "Infinity", "INF", "infinity", "+inf", " Infinity ", float("inf")]
)
def test_limit_infinity_spellings_mean_no_limit(raw: object) -> None:
    limit = Limit.parse(raw)
    assert limit.infinite
    assert not limit.exceeded_by(10**30)


def test_limit_integers_beyond_2_53_stay_exact() -> None:
    big = 2**60 + 1
    assert Limit.parse(big).value == big
    assert Limit.parse(str(big)).value == big
    assert Limit.parse(f"{big}.75").value == big


@pytest.mark.parametrize(("raw", "value"), [(2.9, 2), ("2.9", 2), ("7", 7), (0, 0), ("1e3", 1000)])
def test_limit_fraction_is_truncated(raw: object, value: int) -> None:
    assert Limit.parse(raw).value == value


def test_limit_compares_against_counts() -> None:
    limit = Limit.parse("3.5")
    assert not limit.exceeded_by(3)
    assert limit.exceeded_by(4)


@pytest.mark.parametrize(
    "raw", ["ten", "", "1,000", "0x10", "nan", "NaN", float("nan"), True, None]
)
def test_limit_rejects_what_is_not_a_decimal(raw: object) -> None:
    with pytest.raises(ValueError):
        Limit.parse(raw)


def test_limit_prints_as_the_config_would_write_it() -> None:
    assert str(Limit.parse("inf")) == "Infinity"
    assert str(Limit.parse(12)) == "12"


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("raw", ["TERM", "SIGTERM", "term", "sigterm", " TERM ", 15, "15"])
def test_signal_spellings(raw: object) -> None:
    assert parse_signal(raw) == signal.SIGTERM


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("TERMM", "not a signal name"),
        (99, "not a signal number"),
        ("99", "not a signal number"),
        ("", "not a signal name"),
        (True, "signal number or name"),
    ],
)
def test_signal_rejects_unknown_ones(raw: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_signal(raw)


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize(
    ("raw", "mode"),
    [("750", 0o750), (750, 0o750), ("0o640", 0o640), ("0755", 0o755), ("7777", 0o7777), (0, 0)],
)
def test_mode_is_read_as_octal(raw: object, mode: int) -> None:
    assert parse_mode(raw) == mode


@pytest.mark.parametrize("raw", ["999", 648, "rwx", "", "17777", True, 7.5, None])
def test_mode_rejects_non_octal_values(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_mode(raw)


@pytest.mark.parametrize("raw", ["-inf", "-Infinity", " -INF ", float("-inf")])
def test_limit_negative_infinity_also_means_no_limit(raw: object) -> None:
    # the original PALHM documented "-inf" and "-Infinity" for disabling a limit
    assert Limit.parse(raw).infinite


@pytest.mark.parametrize("raw", [-1, "-1", -0.5, "-0.5", "-2e3"])
def test_limit_negative_numbers_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        Limit.parse(raw)
