"""Every model's settings through the one parameter mechanism (lifelongrec._params).

For each model of ``MODELS`` and each setting it declares: the default passes; a bool
(unless the setting is a yes/no one), a non-finite number, a value out of range and an
object of the wrong kind are refused with a :class:`ParameterError` that names the
setting, shows the value and says what was expected. ``repr`` and ``clone`` round-trip.
"""

from __future__ import annotations

import math

import pytest

from lifelongrec import ParameterError
from lifelongrec._params import Integer, Number, OneOf, Seed
from lifelongrec.data import make_events
from lifelongrec.models import MODELS

#: Settings checked only by a model's cross-setting rules (``_check_params``).
UNDECLARED = {"hybrid": {"component_params"}}

CASES = [(model, setting) for model, cls in MODELS.items() for setting in cls.constraints()]


def bad_values(constraint) -> list:
    """Values ``constraint`` must refuse, from what it declares."""
    bad: list = [object()]
    if constraint.expected != "True or False":
        bad.append(True)
    if isinstance(constraint, (Integer, Number)) and not constraint.none:
        bad.append(None)
    if isinstance(constraint, Integer):
        bad.append(2.5)
        if constraint.low is not None:
            bad.append(constraint.low - 1)
        if constraint.high is not None:
            bad.append(constraint.high + 1)
    if isinstance(constraint, Number):
        bad += [math.nan, math.inf, -math.inf]
        if math.isfinite(constraint.low):
            bad.append(constraint.low if constraint.low_open else constraint.low - 1)
        if math.isfinite(constraint.high):
            bad.append(constraint.high if constraint.high_open else constraint.high + 1)
    if isinstance(constraint, OneOf):
        bad.append("no-such-choice")
    if isinstance(constraint, Seed):
        bad.append(-1)
    return bad


def test_every_setting_is_declared():
    for model, cls in MODELS.items():
        declared = set(cls.constraints())
        names = set(cls.param_names())
        assert declared <= names, model
        assert names - declared == UNDECLARED.get(model, set()), model


@pytest.mark.parametrize("model", list(MODELS))
def test_defaults_pass_and_repr_and_clone_round_trip(model):
    cls = MODELS[model]
    m = cls()
    m.check_params()
    again = eval(repr(m), {cls.__name__: cls})  # our own repr
    assert type(again) is cls and again.get_params() == m.get_params()
    c = m.clone()
    assert type(c) is cls and c is not m and c.get_params() == m.get_params()
    assert repr(c) == repr(m)


@pytest.mark.parametrize(("model", "setting"), CASES)
def test_each_declared_constraint_refuses_bad_values(model, setting):
    cls = MODELS[model]
    constraint = cls.constraints()[setting]
    bad = bad_values(constraint)
    assert bad
    for value in bad:
        with pytest.raises(ParameterError) as err:
            cls(**{setting: value}).check_params()
        assert err.value.name == setting, value
        assert str(err.value).startswith(f"parameter {setting!r} must be ")
        assert f"got {value!r}" in str(err.value)


@pytest.mark.parametrize("model", list(MODELS))
def test_fit_checks_the_settings_before_any_work(model):
    cls = MODELS[model]
    setting = next(iter(cls.constraints()))
    m = cls(**{setting: object()})
    ev = make_events(["a", "a", "b"], ["x", "y", "x"], [1, 2, 3])
    with pytest.raises(ParameterError) as err:
        m.fit(ev)
    assert err.value.name == setting
    assert not m.is_fitted
