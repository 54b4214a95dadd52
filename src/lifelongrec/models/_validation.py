"""Hyperparameter checks shared by the model families (one wording for every model)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lifelongrec._errors import ParameterError

__all__ = ["check_int", "check_number", "check_seed"]


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_int(name: str, value: Any, low: int = 1, expected: str | None = None) -> None:
    """An integer (not a bool) ``>= low``; ``expected`` overrides the message's wording."""
    if not _is_int(value) or value < low:
        raise ParameterError(name, value, expected or f"an integer >= {low}")


def check_number(name: str, value: Any, *, positive: bool) -> None:
    """A finite real number (not a bool), ``> 0`` when ``positive`` else ``>= 0``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and np.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        raise ParameterError(name, value, "a finite number " + ("> 0" if positive else ">= 0"))


def check_seed(value: Any, name: str = "random_state") -> None:
    """``None`` or a non-negative integer."""
    if value is not None and (not _is_int(value) or value < 0):
        raise ParameterError(name, value, "None or a non-negative integer")
