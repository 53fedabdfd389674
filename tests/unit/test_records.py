"""palhm.records: the behaviour palhm relied on from dataclasses, case by case."""

from __future__ import annotations

import copy
import pickle
from typing import ClassVar

import pytest

from palhm.records import FrozenError, field, fields, is_record, record, replace


@record
class Point:
    """A frozen record with a default and a factory."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    secret: str = field(default="s", repr=False)
    kind: ClassVar[str] = "point"

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


@record(frozen=False)
class Counter:
    hits: list[int] = field(default_factory=list)
    name: str = "c"


@record(frozen=False, eq=False)
class Handle:
    value: int


def test_positional_keyword_and_defaults() -> None:
    assert (Point(1).x, Point(1).y, Point(1).tags) == (1, 0, ())
    assert Point(1, 2) == Point(x=1, y=2) == Point(y=2, x=1)
    assert Point(1).norm() == 1 and Point.kind == "point"
    assert fields(Point) == ("x", "y", "tags", "secret") == Point.__match_args__


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((), {}, "missing argument 'x'"),
        ((1, 2, (), "s", 5), {}, "takes 4 arguments, got 5"),
        ((1,), {"x": 2}, "two values for 'x'"),
        ((1,), {"z": 2}, "unknown arguments: z"),
    ],
)
def test_bad_arguments_are_type_errors(
    args: tuple[object, ...], kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(TypeError, match=words):
        Point(*args, **kwargs)  # type: ignore[arg-type, misc]


def test_factories_give_each_instance_its_own_value() -> None:
    first, second = Counter(), Counter()
    first.hits.append(1)
    assert second.hits == [] and first.hits == [1]


def test_frozen_refuses_assignment_and_deletion() -> None:
    point = Point(1)
    with pytest.raises(FrozenError, match="'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.y  # type: ignore[misc]
    counter = Counter()
    counter.name = "d"
    assert counter.name == "d"


def test_slots_no_instance_dict() -> None:
    assert not hasattr(Point(1), "__dict__")
    with pytest.raises(AttributeError):
        Counter().other = 1  # type: ignore[attr-defined]


def test_equality_hash_and_repr() -> None:
    assert Point(1, 2) != Point(1, 3)
    assert Point(1) != (1, 0, (), "s")  # another type is never equal
    assert hash(Point(1, 2)) == hash(Point(1, 2)) and len({Point(1), Point(1)}) == 1
    assert repr(Point(1, 2, ("a",))) == "Point(x=1, y=2, tags=('a',))"  # secret not shown
    with pytest.raises(TypeError):
        hash(Counter())  # mutable and compared by value: unhashable, as with dataclasses
    handle = Handle(1)
    assert handle != Handle(1) and handle == handle and isinstance(hash(handle), int)


def test_replace_copy_and_pickle() -> None:
    point = Point(1, 2, ("t",))
    moved = replace(point, y=5)
    assert (moved.x, moved.y, moved.tags, point.y) == (1, 5, ("t",), 2)
    with pytest.raises(TypeError, match="no field z"):
        replace(point, z=1)
    assert copy.copy(point) == point == copy.deepcopy(point)
    assert pickle.loads(pickle.dumps(point)) == point
    assert is_record(point) and is_record(Point) and not is_record(1)


def test_match_statement_uses_field_order() -> None:
    match Point(3, 4):
        case Point(x, y):
            assert (x, y) == (3, 4)
        case _:
            pytest.fail("no match")


def test_refused_shapes() -> None:
    with pytest.raises(TypeError, match="without a default follows"):

        @record
        class Bad:
            a: int = 1
            b: int

    with pytest.raises(TypeError, match="do not inherit"):

        @record
        class Child(Point):
            z: int = 0

    with pytest.raises(TypeError, match="not both"):
        field(default=1, default_factory=list)


def test_module_import_does_not_need_dataclasses() -> None:
    import subprocess
    import sys

    code = "import sys, palhm.model, palhm.engine.backup; print('dataclasses' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
