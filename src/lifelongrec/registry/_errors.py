"""Errors and warnings of the model registry.

They refine :class:`lifelongrec.LifelongrecError`, so ``except LifelongrecError`` (the
CLI, the service) catches them too. An unknown version is an
:class:`~lifelongrec.UnknownIdError` of kind ``"version"``.
"""

from __future__ import annotations

from lifelongrec._errors import LifelongrecError

__all__ = ["CorruptVersionError", "RegistryError", "RegistryWarning"]


class RegistryError(LifelongrecError, RuntimeError):
    """The registry cannot do what was asked in its current state.

    For example: there is no champion to load, no earlier champion to roll back to, the
    folder is not a registry, or another process holds the registry lock for too long.
    """


class CorruptVersionError(RegistryError):
    """A stored version (or the champion pointer) does not match what was written.

    The message names the version, the file and what differs (a missing or unreadable
    manifest, a file whose SHA-256 changed, a missing or unexpected file).
    """


class RegistryWarning(UserWarning):
    """Something in the registry folder was skipped or cleaned up (the message says what)."""
