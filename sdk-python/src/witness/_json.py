"""Conversion between plain Python JSON values and ``google.protobuf.Value``.

witness carries every JSON payload (a decision's ``input``, an answer, a
context snapshot, a response schema) as ``google.protobuf.Value``. The SDK
accepts and returns plain Python values instead:

=================  ==========================
Python             JSON / ``Value`` kind
=================  ==========================
``None``           ``null``
``bool``           ``true`` / ``false``
``int``, ``float`` number (a double)
``str``            string
``dict``           object (keys must be ``str``)
``list``/``tuple`` array
=================  ==========================

Numbers travel as doubles, so integers beyond 2**53 lose precision and are
refused; a number that comes back integral (``3.0``) is returned as ``int``
(JSON does not tell ``3`` from ``3.0`` either). NaN and infinities are not
JSON and are refused with ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Union

from google.protobuf import struct_pb2

#: A JSON value as plain Python data.
JSON = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]

_MAX_SAFE_INT = 2**53
_MAX_DEPTH = 200


def to_value(obj: Any) -> struct_pb2.Value:
    """Converts a plain Python JSON value to ``google.protobuf.Value``.

    Raises ``TypeError`` for values JSON cannot hold (sets, bytes, objects,
    non-string keys) and ``ValueError`` for NaN, infinities and integers too
    large to travel as a double without loss.
    """
    out = struct_pb2.Value()
    _fill(out, obj, "$", 0)
    return out


def _fill(out: struct_pb2.Value, obj: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{path}: JSON nested deeper than {_MAX_DEPTH} levels")
    if obj is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        out.bool_value = obj
    elif isinstance(obj, int):
        if abs(obj) > _MAX_SAFE_INT:
            raise ValueError(
                f"{path}: integer {obj} cannot be carried exactly as a JSON number "
                "(|n| > 2**53); send it as a string"
            )
        out.number_value = float(obj)
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{path}: {obj!r} is not a JSON number")
        out.number_value = obj
    elif isinstance(obj, str):
        out.string_value = obj
    elif isinstance(obj, Mapping):
        fields = out.struct_value.fields
        # Touch struct_value so that an empty dict is an object, not unset.
        out.struct_value.SetInParent()
        for key, item in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: object keys must be str, got {type(key).__name__}")
            _fill(fields[key], item, f"{path}.{key}", depth + 1)
    elif isinstance(obj, (list, tuple)):
        values = out.list_value.values
        out.list_value.SetInParent()
        for i, item in enumerate(obj):
            _fill(values.add(), item, f"{path}[{i}]", depth + 1)
    else:
        raise TypeError(f"{path}: {type(obj).__name__} is not a JSON value")


def from_value(value: struct_pb2.Value) -> JSON:
    """Converts a ``google.protobuf.Value`` to plain Python data.

    Integral numbers within +-2**53 come back as ``int``; an unset Value
    (no kind) is ``None``.
    """
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        n = value.number_value
        if n.is_integer() and abs(n) <= _MAX_SAFE_INT:
            return int(n)
        return n
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return {k: from_value(v) for k, v in value.struct_value.fields.items()}
    return [from_value(v) for v in value.list_value.values]


def optional_value(obj: Any) -> Union[struct_pb2.Value, None]:
    """``to_value(obj)``, or ``None`` (leave the field unset) when ``obj`` is None."""
    return None if obj is None else to_value(obj)
