"""Typed, bounded fields from untrusted JSON: configs in checkpoint headers, presets, live presets, MIDI maps.

JSON hands over whatever a file says: ``NaN`` and ``1e400`` (which Python reads as inf), a list where a number
belongs, ``true`` for an integer, a million-item array. Every value read from such a file passes through here,
so each bad one is refused with one message naming its field (``mapping_layers: must be in 1..64, got -5``);
the caller adds the file. Numbers must be finite and within their bounds, integers integral, booleans real
booleans, strings short, lists short.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Mapping

MAX_ITEMS = 64        # a list in a config (channel widths, blur taps, bounds) is never longer
MAX_TEXT = 1024       # nor a string (a backbone name, a checkpoint file name, a label)


class FieldError(ValueError):
    """A value that cannot be used; the message starts with the field's dotted name."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class Bounds:
    """Limits of one field (of each item, for a list): ``lo <= v <= hi`` (``lo < v`` with ``above``)."""
    lo: float | None = None
    hi: float | None = None
    above: bool = False
    items: tuple[int, int] = (0, MAX_ITEMS)   # a list's allowed length
    choices: tuple = ()                        # a string's allowed values


def _show(value: Any) -> str:
    return repr(value)[:40]


def number(value: Any, field: str, b: Bounds = Bounds(), integer: bool = False) -> int | float:
    """A finite number within ``b`` (an integer if ``integer``: 3.0 is accepted as 3)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(field, f"must be {'an integer' if integer else 'a number'}, got {_show(value)}")
    if not math.isfinite(value):
        raise FieldError(field, f"must be a finite number, got {value}")
    if integer:
        if value != int(value):
            raise FieldError(field, f"must be an integer, got {value}")
        value = int(value)
    if (b.lo is not None and (value <= b.lo if b.above else value < b.lo)) or (b.hi is not None and value > b.hi):
        raise FieldError(field, f"must be {_range(b)}, got {value:g}")
    return value


def _range(b: Bounds) -> str:
    if b.lo is None:
        return f"at most {b.hi:g}"
    low = f"above {b.lo:g}" if b.above else f"at least {b.lo:g}"
    return low if b.hi is None else (f"in {b.lo:g}..{b.hi:g}" if not b.above else f"{low} and at most {b.hi:g}")


def integer(value: Any, field: str, b: Bounds = Bounds()) -> int:
    return int(number(value, field, b, integer=True))


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, f"must be true or false, got {_show(value)}")
    return value


def text(value: Any, field: str, b: Bounds = Bounds()) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"must be a string, got {_show(value)}")
    if len(value) > MAX_TEXT:
        raise FieldError(field, f"string of {len(value)} characters (at most {MAX_TEXT})")
    if b.choices and value not in b.choices:
        raise FieldError(field, f"must be one of {', '.join(map(str, b.choices))}, got {_show(value)}")
    return value


def obj(value: Any, field: str) -> dict:
    """A JSON object (its keys strings)."""
    if not isinstance(value, dict):
        raise FieldError(field, f"must be a JSON object, got {type(value).__name__} {_show(value)}")
    return value


def sequence(value: Any, field: str, b: Bounds = Bounds()) -> list:
    if not isinstance(value, (list, tuple)):
        raise FieldError(field, f"must be a list, got {_show(value)}")
    lo, hi = b.items
    if not lo <= len(value) <= hi:
        raise FieldError(field, f"must have {lo}..{hi} items, got {len(value)}")
    return list(value)


def typed(value: Any, hint: Any, field: str, b: Bounds = Bounds()) -> Any:
    """``value`` checked against a type hint: int, float, bool, str, list[X], X | None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return typed(value, inner, field, b)
    if origin is list:
        return [typed(v, args[0], f"{field}[{i}]", b) for i, v in enumerate(sequence(value, field, b))]
    if hint is bool:
        return boolean(value, field)
    if hint is int:
        return integer(value, field, b)
    if hint is float:
        return float(number(value, field, b))
    if hint is str:
        return text(value, field, b)
    raise TypeError(f"{field}: no check for type {hint}")


def from_dict(cls, d: Any, bounds: Mapping[str, Bounds], what: str):
    """An instance of the dataclass ``cls`` from the JSON object ``d``: every key known, every value of its
    field's type and within ``bounds``; missing keys keep their defaults. FieldError (a ValueError) otherwise."""
    d = obj(d, what)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise FieldError("", f"unknown {what} keys {unknown[:8]} (known: {', '.join(names)})")
    return cls(**{k: typed(v, hints[k], k, bounds.get(k, Bounds())) for k, v in d.items()})
