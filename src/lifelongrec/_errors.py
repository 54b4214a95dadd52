"""Typed errors shared by every package.

Each error says what was wrong, where, and what was expected, so a user can fix the
input without reading our code. Custom errors subclass the built-in they refine
(``DataError`` is a ``ValueError``, ``UnknownIdError`` a ``KeyError``) so existing
``except`` clauses keep working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LifelongrecError",
    "DataError",
    "NotFittedError",
    "UnknownIdError",
    "ParameterError",
]


class LifelongrecError(Exception):
    """Base class of every error raised on purpose by lifelongrec."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DataError(LifelongrecError, ValueError):
    """Input data is malformed: names the file, line, column, value and what was expected.

    Parameters
    ----------
    problem
        What is wrong, in a few words ("non-numeric timestamp", "missing column").
    path, line, column
        Where: the file (or dataset name), the 1-based line number in that file, the column.
    value
        The offending value as read.
    expected
        What would have been accepted.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: Any = None,
        line: int | None = None,
        column: str | None = None,
        value: Any = None,
        expected: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        self.value = value
        self.expected = expected
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        parts = [", ".join(where) + ": " if where else "", problem]
        if value is not None:
            parts.append(f": got {_short(value)}")
        if expected is not None:
            parts.append(f"; expected {expected}")
        super().__init__("".join(parts))


class NotFittedError(LifelongrecError, ValueError, AttributeError):
    """A model method that needs learned state was called before ``fit``."""


class UnknownIdError(LifelongrecError, KeyError):
    """An external id (user or item) that the model or store has never seen."""

    def __init__(self, kind: str, ids: Any, hint: str = "") -> None:
        self.kind = kind
        self.ids = list(ids) if isinstance(ids, (list, tuple)) else [ids]
        shown = ", ".join(_short(i, 40) for i in self.ids[:5])
        more = f" (and {len(self.ids) - 5} more)" if len(self.ids) > 5 else ""
        self.message = f"unknown {kind} id{'s' if len(self.ids) > 1 else ''}: {shown}{more}"
        if hint:
            self.message += f"; {hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.message


class ParameterError(LifelongrecError, ValueError):
    """A hyperparameter or function argument has a value outside what is allowed."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        super().__init__(f"parameter {name!r} must be {expected}; got {_short(value)}")
