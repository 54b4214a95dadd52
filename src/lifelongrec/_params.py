"""One parameter mechanism for every model, strategy, monitor, encoder and config.

A class that takes settings inherits :class:`Params`: it stores each argument of
``__init__`` under its own name (nothing else, and never changes them afterwards: a
setting that varies per call is an argument of that call), declares what each one
accepts in ``_constraints``, and gets

* :meth:`Params.get_params`: the settings as given to ``__init__``;
* ``repr``: ``ClassName(a=1, b='x')``;
* :meth:`Params.check_params`: every declared constraint checked, then the class's own
  cross-setting rules (``_check_params``); the first bad setting raises a
  :class:`~lifelongrec.ParameterError` that names it, shows the value and says what was
  expected, in the same words for every class;
* :meth:`Params.clone`: a new, unfitted object with the same settings.

The checks are also functions (:func:`check_int`, :func:`check_number`, :func:`check_k`,
...) for function arguments, and :func:`is_int` / :func:`is_number` are the one test of
"an integer, not a bool" and "a finite real number, not a bool".

>>> class Window(Params):
...     _constraints = {"size": Integer(low=1), "decay": Number(low=0, high=1)}
...     def __init__(self, size=10, decay=0.5):
...         self.size = size
...         self.decay = decay
>>> Window(size=3)
Window(size=3, decay=0.5)
>>> Window(size=0).check_params()
Traceback (most recent call last):
...
lifelongrec._errors.ParameterError: parameter 'size' must be an integer >= 1; got 0
>>> Window(decay=True).check_params()
Traceback (most recent call last):
...
lifelongrec._errors.ParameterError: parameter 'decay' must be a number in [0, 1]; got True
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from lifelongrec._errors import ParameterError

__all__ = [
    "Boolean",
    "Constraint",
    "Integer",
    "Number",
    "OneOf",
    "Params",
    "Satisfies",
    "Seed",
    "check_bool",
    "check_choice",
    "check_int",
    "check_k",
    "check_number",
    "check_seed",
    "is_int",
    "is_number",
]


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def is_number(value: Any) -> bool:
    """A finite real number (Python or NumPy int/float), not a bool."""
    return (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(float(value))
    )


def _num(x: float) -> str:
    """``1`` for 1.0, ``0.5`` for 0.5, ``inf`` for infinity: bounds as a user wrote them."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


class Constraint:
    """What one setting accepts: :meth:`check` raises :class:`ParameterError` otherwise."""

    #: The wording after "must be" in the error message.
    expected: str = "a valid value"

    def accepts(self, value: Any) -> bool:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def check(self, name: str, value: Any) -> None:
        if not self.accepts(value):
            raise ParameterError(name, value, self.expected)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.expected}>"


class Integer(Constraint):
    """An integer (not a bool) in ``[low, high]`` (``high=None``: no upper bound);
    ``none=True`` also accepts ``None``."""

    def __init__(
        self,
        low: int | None = 1,
        high: int | None = None,
        *,
        none: bool = False,
        expected: str | None = None,
    ) -> None:
        self.low, self.high, self.none = low, high, none
        if expected is None:
            if low is not None and high is not None:
                expected = f"an integer in [{low}, {high}]"
            elif low is not None:
                expected = f"an integer >= {low}"
            elif high is not None:
                expected = f"an integer <= {high}"
            else:
                expected = "an integer"
            if none:
                expected = "None or " + expected
        self.expected = expected

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.none
        return (
            is_int(value)
            and (self.low is None or value >= self.low)
            and (self.high is None or value <= self.high)
        )


class Number(Constraint):
    """A finite real number (not a bool) between ``low`` and ``high``, each bound closed
    unless ``low_open`` / ``high_open``; ``none=True`` also accepts ``None``."""

    def __init__(
        self,
        low: float = -math.inf,
        high: float = math.inf,
        *,
        low_open: bool = False,
        high_open: bool = False,
        none: bool = False,
        expected: str | None = None,
    ) -> None:
        self.low, self.high = low, high
        self.low_open, self.high_open, self.none = low_open, high_open, none
        if expected is None:
            bounded_low, bounded_high = math.isfinite(low), math.isfinite(high)
            if bounded_low and bounded_high:
                lb, rb = "(" if low_open else "[", ")" if high_open else "]"
                expected = f"a number in {lb}{_num(low)}, {_num(high)}{rb}"
            elif bounded_low:
                expected = f"a finite number {'>' if low_open else '>='} {_num(low)}"
            elif bounded_high:
                expected = f"a finite number {'<' if high_open else '<='} {_num(high)}"
            else:
                expected = "a finite number"
            if none:
                expected = "None or " + expected
        self.expected = expected

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.none
        if not is_number(value):
            return False
        low_ok = value > self.low if self.low_open else value >= self.low
        high_ok = value < self.high if self.high_open else value <= self.high
        return bool(low_ok and high_ok)


class Boolean(Constraint):
    """``True`` or ``False`` (a bool, not 0/1)."""

    expected = "True or False"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))


class OneOf(Constraint):
    """One of the given values (compared with ``==``, type-checked so ``1`` is not
    ``True``); ``none=True`` also accepts ``None``."""

    def __init__(self, *choices: Any, none: bool = False, expected: str | None = None) -> None:
        self.choices, self.none = tuple(choices), none
        if expected is None:
            shown = ", ".join(repr(c) for c in self.choices)
            expected = f"one of {shown}" + (" or None" if none else "")
        self.expected = expected

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.none
        try:
            return any(type(value) is type(c) and value == c for c in self.choices)
        except Exception:  # an object whose == raises is not one of the choices
            return False


class Seed(Constraint):
    """``None`` or a non-negative integer (a random seed)."""

    expected = "None or a non-negative integer"

    def accepts(self, value: Any) -> bool:
        return value is None or (is_int(value) and value >= 0)


class Satisfies(Constraint):
    """Any value for which ``predicate(value)`` is true; ``expected`` says which."""

    def __init__(self, predicate: Callable[[Any], bool], expected: str) -> None:
        self.predicate, self.expected = predicate, expected

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except (TypeError, ValueError):
            return False


# ----------------------------------------------------------------- functions
def check_int(
    name: str,
    value: Any,
    low: int | None = 1,
    high: int | None = None,
    *,
    none: bool = False,
    expected: str | None = None,
) -> int | None:
    """``value`` as an ``int`` if it is an integer in ``[low, high]`` (see :class:`Integer`)."""
    Integer(low, high, none=none, expected=expected).check(name, value)
    return None if value is None else int(value)


def check_number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    none: bool = False,
    expected: str | None = None,
) -> float | None:
    """``value`` as a ``float`` if it is a finite number in range (see :class:`Number`)."""
    Number(low, high, low_open=low_open, high_open=high_open, none=none, expected=expected).check(
        name, value
    )
    return None if value is None else float(value)


def check_k(k: Any, name: str = "k") -> int:
    """A cut-off: a positive integer, returned as ``int``."""
    Integer(1, expected="a positive integer").check(name, k)
    return int(k)


def check_seed(value: Any, name: str = "random_state") -> None:
    """``None`` or a non-negative integer."""
    Seed().check(name, value)


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False``."""
    Boolean().check(name, value)
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """One of ``choices``."""
    OneOf(*choices).check(name, value)
    return value


# -------------------------------------------------------------------- mixin
class Params:
    """Settings given to ``__init__``, declared constraints, one validation.

    Subclasses set ``_constraints`` (``{name: Constraint}``; a subclass's entries are
    added to its bases') and may override ``_check_params`` for rules that involve more
    than one setting. ``check_params`` is what ``fit``/``start``/``open`` call; it is
    public so a caller can check settings before any work starts.
    """

    _constraints: ClassVar[Mapping[str, Constraint]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """The names of ``__init__``'s arguments (the settings), in order."""
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @classmethod
    def constraints(cls) -> dict[str, Constraint]:
        """Every declared constraint of the class and its bases (the subclass wins)."""
        out: dict[str, Constraint] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("_constraints", {}))
        return out

    def get_params(self) -> dict[str, Any]:
        """Settings as given to ``__init__``."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def check_params(self) -> None:
        """Raise :class:`~lifelongrec.ParameterError` naming the first setting that is not
        what it must be: declared constraints in ``__init__`` order, then the class's
        own cross-setting rules."""
        constraints = self.constraints()
        names = self.param_names()
        for name in [*names, *(n for n in constraints if n not in names)]:
            if name in constraints:
                constraints[name].check(name, getattr(self, name))
        self._check_params()

    def _check_params(self) -> None:
        """Rules over several settings (override; the single ones are declared)."""

    def clone(self) -> Any:
        """A new object of the same class with (deep copies of) the same settings."""
        return type(self)(**copy.deepcopy(self.get_params()))
