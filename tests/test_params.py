"""The one parameter mechanism (lifelongrec._params): constraints, messages, the mixin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelongrec import ParameterError
from lifelongrec._params import (
    Boolean,
    Integer,
    Number,
    OneOf,
    Params,
    Satisfies,
    Seed,
    check_bool,
    check_choice,
    check_int,
    check_k,
    check_number,
    check_seed,
    is_int,
    is_number,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (np.int32(3), True),
        (True, False),
        (np.bool_(True), False),
        (1.0, False),
        ("1", False),
        (None, False),
    ],
)
def test_is_int(value, expected):
    assert is_int(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (0.5, True),
        (np.float32(2), True),
        (True, False),
        (math.nan, False),
        (math.inf, False),
        ("0.5", False),
        (None, False),
    ],
)
def test_is_number(value, expected):
    assert is_number(value) is expected


@pytest.mark.parametrize(
    ("constraint", "good", "bad", "message"),
    [
        (Integer(1), [1, 7, np.int64(2)], [0, -1, 1.0, True, None, "3"], "an integer >= 1"),
        (Integer(0, 5), [0, 5], [6, -1], "an integer in [0, 5]"),
        (Integer(1, none=True), [None, 2], [0, False], "None or an integer >= 1"),
        (
            Number(0, low_open=True),
            [1e-9, 3],
            [0, -1, math.inf, math.nan, True],
            "a finite number > 0",
        ),
        (Number(0), [0, 0.0, 2.5], [-0.1], "a finite number >= 0"),
        (Number(0, 1, high_open=True), [0, 0.99], [1, 1.5], "a number in [0, 1)"),
        (Number(0.5, 2.5), [0.5, 2.5], [0.4], "a number in [0.5, 2.5]"),
        (Number(none=True), [None, -3.0], [math.nan, "x"], "None or a finite number"),
        (Boolean(), [True, False, np.bool_(False)], [0, 1, None, "yes"], "True or False"),
        (OneOf("a", "b"), ["a", "b"], ["c", None, 1], "one of 'a', 'b'"),
        (OneOf(1, 2, none=True), [1, None], [True, 1.0, 3], "one of 1, 2 or None"),
        (Seed(), [None, 0, 42], [-1, 1.5, True], "None or a non-negative integer"),
        (Satisfies(lambda v: len(v) == 2, "a pair"), [(1, 2), "ab"], [1, (1,)], "a pair"),
    ],
)
def test_constraints_accept_and_refuse_with_one_wording(constraint, good, bad, message):
    for value in good:
        constraint.check("x", value)
    for value in bad:
        with pytest.raises(ParameterError) as err:
            constraint.check("x", value)
        assert err.value.name == "x"
        assert err.value.expected == message
        assert str(err.value) == f"parameter 'x' must be {message}; got {value!r}"


def test_check_functions_return_the_clean_value():
    assert check_int("n", np.int64(3)) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", None, none=True) is None
    assert check_number("lr", 1) == 1.0 and type(check_number("lr", 1)) is float
    assert check_k(np.int16(5)) == 5
    assert check_bool("flag", np.bool_(True)) is True
    assert check_choice("mode", "b", ("a", "b")) == "b"
    check_seed(None)
    for call, name in [
        (lambda: check_k(0), "k"),
        (lambda: check_k(True, name="top"), "top"),
        (lambda: check_seed(-1, name="seed"), "seed"),
        (lambda: check_number("lr", 0, low=0, low_open=True), "lr"),
        (lambda: check_choice("mode", "c", ("a", "b")), "mode"),
    ]:
        with pytest.raises(ParameterError) as err:
            call()
        assert err.value.name == name


class Base(Params):
    _constraints = {"size": Integer(1), "rate": Number(0, low_open=True)}

    def __init__(self, size=2, rate=0.1):
        self.size = size
        self.rate = rate


class Child(Base):
    _constraints = {"size": Integer(4), "mode": OneOf("x", "y")}

    def __init__(self, size=4, rate=0.1, mode="x", ratio=None):
        super().__init__(size, rate)
        self.mode = mode
        self.ratio = ratio  # not declared: not checked by the declared part

    def _check_params(self):
        if self.ratio is not None and self.ratio > self.size:
            raise ParameterError("ratio", self.ratio, f"at most size={self.size}")


def test_mixin_params_repr_clone():
    c = Child(size=5, mode="y", ratio=[1])
    assert c.get_params() == {"size": 5, "rate": 0.1, "mode": "y", "ratio": [1]}
    assert repr(c) == "Child(size=5, rate=0.1, mode='y', ratio=[1])"
    d = c.clone()
    assert type(d) is Child and d.get_params() == c.get_params()
    assert d.ratio is not c.ratio  # a deep copy: changing one leaves the other alone
    assert Child.param_names() == ["size", "rate", "mode", "ratio"]


def test_mixin_checks_declared_constraints_in_order_then_the_cross_rules():
    Child().check_params()
    # The subclass's constraint replaces the base's; the base's other ones still apply.
    assert Child.constraints()["size"].expected == "an integer >= 4"
    assert set(Child.constraints()) == {"size", "rate", "mode"}
    with pytest.raises(ParameterError, match="'size' must be an integer >= 4; got 3"):
        Child(size=3).check_params()
    Base(size=3).check_params()
    # The first bad setting in __init__ order is the one reported.
    with pytest.raises(ParameterError) as err:
        Child(size=0, rate=-1, mode="z").check_params()
    assert err.value.name == "size"
    with pytest.raises(ParameterError) as err:
        Child(mode="z").check_params()
    assert err.value.name == "mode"
    with pytest.raises(ParameterError, match="at most size=4"):
        Child(ratio=9).check_params()
