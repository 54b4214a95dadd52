"""What a registry version is: its id, the fields of its manifest and :class:`VersionInfo`.

:func:`version_id` is the one reading of a version argument (``"v000003"``, ``3`` or
``"3"``); ``_jsonable`` and ``_check_window`` check what ``register`` stores in a
manifest (JSON dicts, the data window).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from lifelongrec._errors import ParameterError
from lifelongrec._params import is_int

__all__ = ["VersionInfo", "version_id"]

_FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^v\d{6}$")
_MODEL_DIR_RE = re.compile(r"^model(-r[1-9]\d*)?$")
_STATUSES = ("challenger", "rejected", "champion")
_MANIFEST_KEYS = ("id", "created_at", "parent", "model", "files", "status")


def version_id(version: Any) -> str:
    """The canonical id of a version: ``"v000003"`` from ``"v000003"``, ``3`` or ``"3"``.

    Raises
    ------
    ParameterError
        Anything else (a negative or zero number, another string, another type).
    """
    expected = "a version id like 'v000003' or its number (a positive integer)"
    if isinstance(version, str):
        text = version.strip()
        if _VERSION_RE.match(text):
            return text
        if text.isascii() and text.isdigit() and 0 < int(text) < 1_000_000:
            return f"v{int(text):06d}"
        raise ParameterError("version", version, expected)
    if is_int(version):
        if 0 < version < 1_000_000:
            return f"v{int(version):06d}"
    raise ParameterError("version", version, expected)


def _now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="microseconds")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (tuple, np.ndarray)):
        return list(o)
    if hasattr(o, "to_dict") and callable(o.to_dict):
        return o.to_dict()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _jsonable(name: str, value: Any) -> Any:
    """``value`` as plain JSON data (numpy scalars become numbers), or a ParameterError."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ParameterError(name, value, "None or a mapping (a dict) of JSON values")
    try:
        return json.loads(json.dumps(dict(value), default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            name, value, f"a dict of JSON values (str keys, finite numbers, str, lists): {exc}"
        ) from None


def _check_window(window: Any) -> dict[str, Any] | None:
    """``None``, ``{"label": str}`` or ``{"start": int, "end": int}`` from the argument."""
    expected = "None, a non-empty label, or (start, end) timestamps with start <= end"
    if window is None:
        return None
    if isinstance(window, str):
        if not window.strip():
            raise ParameterError("window", window, expected)
        return {"label": window}
    if isinstance(window, Sequence) and len(window) == 2:
        start, end = window
        ok = all(is_int(t) for t in (start, end))
        if ok and start <= end:
            return {"start": int(start), "end": int(end)}
    raise ParameterError("window", window, expected)


@dataclass(frozen=True)
class VersionInfo:
    """What the registry knows about one version (from its manifest and the champion file).

    Attributes
    ----------
    version
        The id, ``"v000001"`` and up.
    created_at
        When it was registered (ISO 8601, UTC).
    parent
        The version it was derived from, or ``None``.
    status
        Now: ``"champion"`` (the champion pointer names it), ``"retired"`` (it was
        champion once, no longer), ``"rejected"`` (registered as rejected by a gate and
        never promoted) or ``"challenger"`` (never champion).
    registered_as
        The status given at registration (``"challenger"``, ``"rejected"`` or
        ``"champion"``).
    model
        The model's short name (``"ease"``); ``model_class`` its full class path and
        ``params`` its hyperparameters.
    window
        The data window it learned: ``{"start": t0, "end": t1}`` (timestamps),
        ``{"label": text}``, or ``None``.
    metrics, data, tags, decision
        As given at registration (JSON data; ``decision`` is the gate's verdict when a
        gate judged it).
    files
        ``{relative path: {"sha256": hex, "bytes": n}}`` of the saved model files.
    path
        The version's folder.
    """

    version: str
    created_at: str
    parent: str | None
    status: str
    registered_as: str
    model: str
    model_class: str
    params: dict[str, Any]
    window: dict[str, Any] | None
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    files: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what ``lifelongrec models show --json`` prints)."""
        return asdict(self)
