"""Plain Python values <-> google.protobuf.Value, and argument parsing."""

from __future__ import annotations

import math

import pytest

import witness
from witness import Status, Verdict, from_value, to_value


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -3, 2**53, 1.5, "", "héllo ☃", [], {}, [1, "a", None, [True]],
     {"a": {"b": [1, {"c": None}]}, "10": 1, "9": 2}],
)
def test_round_trip(value):
    assert from_value(to_value(value)) == value


def test_integral_numbers_come_back_as_int():
    assert from_value(to_value(3.0)) == 3 and isinstance(from_value(to_value(3.0)), int)
    assert isinstance(from_value(to_value(True)), bool)
    assert from_value(to_value((1, 2))) == [1, 2]


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**60, {1: "x"}, {"s": {1, 2}}, b"bytes"])
def test_rejects_non_json(bad):
    with pytest.raises((TypeError, ValueError)):
        to_value(bad)


def test_enum_parsing():
    assert Verdict.parse("approve") is Verdict.APPROVE
    assert Verdict.parse("VERDICT_REJECT") is Verdict.REJECT
    assert Status.parse("context_changed") is Status.CONTEXT_CHANGED
    assert Status.CONTEXT_CHANGED.is_terminal and not Status.OPEN.is_terminal
    with pytest.raises(ValueError):
        Verdict.parse("maybe")


def test_empty_object_is_an_object():
    v = to_value({})
    assert v.WhichOneof("kind") == "struct_value"
    assert witness.from_value(v) == {}
