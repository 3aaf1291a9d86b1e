"""Record classes without dataclasses' compile step (docs/architecture.md,
"The cron fast path").

@dataclass writes each class's __init__, __repr__, __eq__ (and, frozen,
__hash__, __setattr__, __delattr__) as source text and compiles it with
exec when the module is imported: about 0.5 ms a class, some 10 ms of every
cron poll for the two dozen records it imports (inventory, state, run
record, readiness). Here those methods are written once, generic over the
fields; `frozen` and `plain` still make each class a dataclass (fields,
replace, asdict work), with init, repr and eq left to these bases.

Standard library only: the host's cron path imports it (Python 3.9).
"""
from __future__ import annotations

from dataclasses import MISSING, FrozenInstanceError, dataclass, fields


class _Record:
    __slots__ = ()
    _fields: tuple = ()

    def __init__(self, *args, **kwargs):
        name = type(self).__name__
        if len(args) > len(self._fields):
            raise TypeError(f"{name}() takes {len(self._fields)} positional arguments but {len(args)} were given")
        for f, value in zip(self._fields, args):
            if f.name in kwargs:
                raise TypeError(f"{name}() got multiple values for argument {f.name!r}")
            kwargs[f.name] = value
        for f in self._fields:
            if f.name in kwargs:
                value = kwargs.pop(f.name)
            elif f.default is not MISSING:
                value = f.default
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                raise TypeError(f"{name}() missing required argument: {f.name!r}")
            object.__setattr__(self, f.name, value)  # a frozen record's own __setattr__ refuses
        if kwargs:
            raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, f.name) for f in self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in self._fields) + ")"

    def __eq__(self, other):
        return self._values() == other._values() if other.__class__ is self.__class__ else NotImplemented


class Frozen(_Record):
    """What @dataclass(frozen=True) gives: hashable, no assignment."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")


class Plain(_Record):
    """What @dataclass gives: assignable, and so unhashable (eq without
    frozen sets __hash__ to None, as dataclasses does)."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]


def _record(cls):
    cls = dataclass(init=False, repr=False, eq=False)(cls)
    cls._fields = tuple(fields(cls))
    return cls


def frozen(cls):
    """`cls` (a subclass of Frozen) as a dataclass whose methods are
    Frozen's: nothing compiled."""
    assert issubclass(cls, Frozen), cls
    return _record(cls)


def plain(cls):
    """`cls` (a subclass of Plain) as a dataclass whose methods are Plain's."""
    assert issubclass(cls, Plain), cls
    return _record(cls)
