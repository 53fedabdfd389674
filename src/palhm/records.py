"""Records: frozen, slotted value classes that cost nothing to define.

`dataclasses.dataclass` writes the source of `__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__` and `__delattr__` for each class and compiles it with
`exec` when the module is imported; no bytecode cache keeps the result. With ~60
classes that is ~30 ms of every palhm start, a third of a small run
(doc/design.md#start-up). A `@record` class gets the same behaviour from shared
functions that read the class's field list, so defining one costs a class
creation and nothing more.

    @record
    class Exec:
        argv: tuple[str, ...]
        env: Mapping[str, str] = field(default_factory=dict)

What `@record` gives (the subset of dataclasses palhm uses):
- `__init__` taking the fields in order, by position or keyword, with `default` or
  `default_factory`; missing, unknown or doubled arguments raise TypeError;
- `__slots__` (no instance `__dict__`), `__repr__`, `__eq__` between instances of
  the same class (`eq=False`: identity), `__match_args__`;
- `frozen=True` (the default): assignment raises `FrozenError`, and the record is
  hashable when it compares by value;
- `replace(record, **changes)`, `fields(record_or_class)`, `is_record(obj)`.

Type checkers see a dataclass through `typing.dataclass_transform`. Fields are the
class's own annotations that are not `ClassVar`; inheritance between records is
not supported (palhm has none) and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar, dataclass_transform, overload

T = TypeVar("T")

_MISSING: Final = object()
_FIELDS: Final = "__record_fields__"
_setattr: Final = object.__setattr__


class FrozenError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Field:
    __slots__ = ("default", "factory", "repr")

    def __init__(self, default: object, factory: Callable[[], object] | None, repr: bool) -> None:
        self.default, self.factory, self.repr = default, factory, repr


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    repr: bool = True,  # noqa: A002 - the name dataclass_transform looks for
) -> Any:
    """A field's default (`default` or `default_factory`) and whether repr shows it."""
    if default is not _MISSING and default_factory is not None:
        raise TypeError("field() takes default or default_factory, not both")
    return _Field(default, default_factory, repr)


class _Spec:
    """The fields of one record class, in order, with their defaults."""

    __slots__ = ("names", "defaults", "factories", "shown", "required")

    def __init__(self, names: tuple[str, ...], found: dict[str, _Field]) -> None:
        self.names = names
        self.defaults = {n: f.default for n, f in found.items() if f.default is not _MISSING}
        self.factories = {n: f.factory for n, f in found.items() if f.factory is not None}
        self.shown = tuple(n for n in names if n not in found or found[n].repr)
        self.required = frozenset(names) - self.defaults.keys() - self.factories.keys()


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _init(self: object, *args: object, **kwargs: object) -> None:
    spec: _Spec = getattr(type(self), _FIELDS)
    names = spec.names
    if len(args) > len(names):
        raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, got {len(args)}")
    for name, value in zip(names, args, strict=False):
        if name in kwargs:
            raise TypeError(f"{type(self).__name__}() got two values for '{name}'")
        _setattr(self, name, value)
    for name in names[len(args) :]:
        if name in kwargs:
            value = kwargs.pop(name)
        elif name in spec.defaults:
            value = spec.defaults[name]
        elif name in spec.factories:
            value = spec.factories[name]()
        else:
            raise TypeError(f"{type(self).__name__}() missing argument '{name}'")
        _setattr(self, name, value)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got unknown arguments: {', '.join(kwargs)}")


def _values(self: object) -> tuple[object, ...]:
    return tuple(getattr(self, name) for name in getattr(type(self), _FIELDS).names)


def _repr(self: object) -> str:
    shown = getattr(type(self), _FIELDS).shown
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: object, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    same: bool = _values(self) == _values(other)
    return same


def _hash(self: object) -> int:
    return hash(_values(self))


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenError(f"cannot assign to field '{name}' of a frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenError(f"cannot delete field '{name}' of a frozen {type(self).__name__}")


def _reduce(self: object) -> tuple[type, tuple[object, ...]]:
    return type(self), _values(self)  # copy, deepcopy and pickle go through __init__


def _build(cls: type[T], frozen: bool, eq: bool) -> type[T]:
    if any(hasattr(base, _FIELDS) for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: records do not inherit from records")
    annotations = cls.__dict__.get("__annotations__", {})
    names = tuple(n for n, a in annotations.items() if not _is_classvar(a))
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    found: dict[str, _Field] = {}
    for name in names:
        value = namespace.pop(name, _MISSING)
        if value is not _MISSING:
            found[name] = value if isinstance(value, _Field) else _Field(value, None, True)
    spec = _Spec(names, found)
    seen_default = False
    for name in names:
        if name in spec.required and seen_default:
            raise TypeError(f"{cls.__name__}: field '{name}' without a default follows one with")
        seen_default = seen_default or name not in spec.required
    made: dict[str, object] = {"__init__": _init, "__repr__": _repr, "__reduce__": _reduce}
    if eq:
        made.update(__eq__=_eq, __hash__=_hash if frozen else None)
    if frozen:
        made.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
    own = {k for k, v in namespace.items() if v is not None}  # the class's own methods win
    namespace.update({k: v for k, v in made.items() if k not in own})
    namespace.update({_FIELDS: spec, "__slots__": names, "__match_args__": names})
    metaclass: Callable[..., type[T]] = type(cls)
    return metaclass(cls.__name__, cls.__bases__, namespace)


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(*, frozen: bool = True, eq: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(
    cls: type[T] | None = None, /, *, frozen: bool = True, eq: bool = True
) -> type[T] | Callable[[type[T]], type[T]]:
    """Make `cls` a record (see the module's text). `frozen=False`: fields assignable."""
    if cls is None:
        return lambda inner: _build(inner, frozen, eq)
    return _build(cls, frozen, eq)


def fields(obj: object) -> tuple[str, ...]:
    """The field names of a record or record class, in order."""
    spec: _Spec = getattr(obj if isinstance(obj, type) else type(obj), _FIELDS)
    return spec.names


def is_record(obj: object) -> bool:
    return hasattr(obj if isinstance(obj, type) else type(obj), _FIELDS)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record `obj` with `changes` applied (unknown names: TypeError)."""
    names = fields(obj)
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(sorted(unknown))}")
    values = {name: changes[name] if name in changes else getattr(obj, name) for name in names}
    return type(obj)(**values)
