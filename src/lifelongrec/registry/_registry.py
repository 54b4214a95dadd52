"""Model versions on disk: atomic writes, a champion pointer, promotion and rollback.

Layout of a registry folder::

    root/
      registry.json          # marks the folder as a registry (format version)
      .lock                  # fcntl lock file: writers take it, readers never need it
      CHAMPION               # JSON: the champion version and the stack of earlier ones
      history.jsonl          # one JSON line per promotion or rollback (an audit log)
      versions/
        v000001/
          manifest.json      # what the version is (see ModelRegistry.register)
          model/             # the model as written by Recommender.save
        v000002/ ...

Why a crash never leaves a half-written version that a restart would load: a version is
written into a temporary sibling folder (``versions/.tmp-*``), every file is flushed to
disk, the manifest (with the SHA-256 of every model file) is written last, and only then
is the folder renamed to its ``vNNNNNN`` name (a rename within one file system is atomic
on POSIX). A reader lists only ``vNNNNNN`` folders with a readable manifest. The champion
pointer is replaced the same way (temporary file, fsync, ``os.replace``, fsync of the
folder). Leftover temporary folders and files are removed the next time the registry is
opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lifelongrec._errors import NotFittedError, ParameterError, UnknownIdError
from lifelongrec.models import Recommender
from lifelongrec.registry._errors import CorruptVersionError, RegistryError, RegistryWarning

__all__ = ["ModelRegistry", "VersionInfo", "version_id"]

_FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^v\d{6}$")
_MODEL_DIR_RE = re.compile(r"^model(-r[1-9]\d*)?$")
_TMP_PREFIX = ".tmp-"
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
    if isinstance(version, (int, np.integer)) and not isinstance(version, bool):
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
        ok = all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in (start, end))
        if ok and start <= end:
            return {"start": int(start), "end": int(end)}
    raise ParameterError("window", window, expected)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, text: str) -> None:
    """Write ``text`` to a new file and flush it to disk."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _replace_durable(path: Path, text: str) -> None:
    """Replace ``path`` by a file holding ``text`` atomically (tmp, fsync, replace, fsync dir)."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
    try:
        _write_durable(tmp, text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree_files(folder: Path) -> dict[str, Path]:
    """Every regular file under ``folder`` by its ``/``-separated relative path."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


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


class ModelRegistry:
    """A folder of model versions with a champion, promotion, rollback and lineage.

    Parameters
    ----------
    root
        The registry folder. Created (with parents) when it does not exist and
        ``create`` is true; an existing folder must be empty or already a registry.
    create
        Make a new registry when ``root`` is missing or empty; when false, a folder that
        is not a registry raises :class:`RegistryError`.
    lock_timeout
        Seconds a write waits for another process (or thread) holding the registry lock
        before raising :class:`RegistryError` (non-negative number).

    Notes
    -----
    Writers (``register``, ``promote``, ``rollback`` and opening, which cleans up
    after a crash) hold an exclusive ``fcntl.flock`` on ``root/.lock``, so two processes
    never allocate the same id or interleave champion changes. Readers need no lock:
    every file they read is replaced atomically. The lock is POSIX-only and needs a local
    file system (``flock`` is unreliable on some network file systems).

    Examples
    --------
    >>> import tempfile
    >>> from lifelongrec.data import make_events
    >>> from lifelongrec.models import Popularity
    >>> reg = ModelRegistry(tempfile.mkdtemp())
    >>> model = Popularity().fit(make_events(["a", "b"], ["x", "x"], [1, 2]))
    >>> v1 = reg.register(model, window=(1, 2), status="champion")
    >>> v2 = reg.register(model, parent=v1.version, window=(1, 2))
    >>> reg.champion(), reg.promote(v2.version, reason="better").status
    ('v000001', 'champion')
    >>> reg.rollback().version, reg.lineage("v000002")
    ('v000001', ['v000002', 'v000001'])
    """

    def __init__(
        self, root: str | os.PathLike, *, create: bool = True, lock_timeout: float = 60.0
    ) -> None:
        if isinstance(lock_timeout, bool) or not isinstance(
            lock_timeout, (int, float, np.integer, np.floating)
        ):
            raise ParameterError("lock_timeout", lock_timeout, "a non-negative number of seconds")
        if not math.isfinite(lock_timeout) or lock_timeout < 0:
            raise ParameterError("lock_timeout", lock_timeout, "a non-negative number of seconds")
        self.root = Path(root)
        self.lock_timeout = float(lock_timeout)
        self._local = threading.local()
        self._warned: set[str] = set()
        marker = self.root / "registry.json"
        if self.root.exists() and not self.root.is_dir():
            raise RegistryError(f"{self.root}: not a folder; a model registry is a folder")
        is_registry = marker.is_file()
        if not is_registry:
            if not create:
                raise RegistryError(
                    f"{self.root}: not a model registry (no registry.json); create one with "
                    "ModelRegistry(path) or register a model there first"
                )
            # What a registry being created by another process may already hold.
            own = {".lock", "versions", "registry.json"}
            foreign = [
                p.name
                for p in (self.root.iterdir() if self.root.exists() else [])
                if p.name not in own and not p.name.startswith(_TMP_PREFIX)
            ]
            if foreign:
                raise RegistryError(
                    f"{self.root}: the folder is not empty and not a model registry (no "
                    "registry.json); use an empty or new folder"
                )
            self.root.mkdir(parents=True, exist_ok=True)
        #: Names of temporary leftovers of interrupted writes removed on opening.
        self.recovered_: list[str] = []
        if not is_registry:
            with self._locked():
                if not marker.is_file():
                    (self.root / "versions").mkdir(exist_ok=True)
                    _replace_durable(
                        marker,
                        json.dumps({"format_version": _FORMAT_VERSION, "created_at": _now()}),
                    )
        self._check_format(marker)
        # Clean up after a crash, unless a writer is at work right now (its temporary
        # folder is not a leftover; the next opening cleans up): readers never wait.
        with self._locked(wait=False) as locked:
            if locked:
                (self.root / "versions").mkdir(exist_ok=True)
                self.recovered_ = self._clean_leftovers()
        if self.recovered_:
            warnings.warn(
                f"{self.root}: removed {len(self.recovered_)} leftover(s) of interrupted "
                f"writes: {', '.join(self.recovered_)}",
                RegistryWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # ------------------------------------------------------------- plumbing
    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def _champion_file(self) -> Path:
        return self.root / "CHAMPION"

    @property
    def _history_file(self) -> Path:
        return self.root / "history.jsonl"

    def _check_format(self, marker: Path) -> None:
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorruptVersionError(f"{marker}: unreadable registry marker ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format_version") != _FORMAT_VERSION:
            got = meta.get("format_version") if isinstance(meta, dict) else meta
            raise RegistryError(
                f"{marker}: registry format version {got!r} is not supported; expected "
                f"{_FORMAT_VERSION}"
            )

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the exclusive registry lock (re-entrant within one thread); yields
        whether it is held, which is always so with ``wait`` (else RegistryError after
        ``lock_timeout``) and so without it only when nobody else held it."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield True
            finally:
                self._local.depth -= 1
            return
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait:
                        yield False
                        return
                    if time.monotonic() >= deadline:
                        raise RegistryError(
                            f"{self.root}: another writer has held the registry lock for "
                            f"more than lock_timeout={self.lock_timeout} s; retry later or "
                            "raise lock_timeout"
                        ) from None
                    time.sleep(0.02)
            self._local.depth = 1
            try:
                yield True
            finally:
                self._local.depth = 0
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _clean_leftovers(self) -> list[str]:
        """Remove temporary folders and files of interrupted writes (lock held)."""
        removed = []
        for folder in (self.root, self._versions_dir):
            for p in sorted(folder.glob(f"{_TMP_PREFIX}*")):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()
                removed.append(p.relative_to(self.root).as_posix())
        for folder in self._version_dirs():  # what an interrupted rewrite left behind
            try:
                current = self._model_dir(folder.name, self._read_manifest(folder.name)).name
            except (CorruptVersionError, UnknownIdError):
                continue  # reported when the version is used; never delete evidence
            for p in sorted(folder.iterdir()):
                stale = p.name.startswith(_TMP_PREFIX) or (
                    p.is_dir() and _MODEL_DIR_RE.match(p.name) and p.name != current
                )
                if stale:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            p.unlink()
                    removed.append(p.relative_to(self.root).as_posix())
        return removed

    def _version_dirs(self) -> list[Path]:
        return sorted(
            p for p in self._versions_dir.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)
        )

    def _read_manifest(self, vid: str) -> dict[str, Any]:
        folder = self._versions_dir / vid
        if not folder.is_dir():
            raise UnknownIdError("version", vid, hint=self._known_hint())
        file = folder / "manifest.json"
        try:
            manifest = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorruptVersionError(
                f"version {vid}: {file} is missing; the version is incomplete and cannot be used"
            ) from None
        except (OSError, ValueError) as exc:
            raise CorruptVersionError(
                f"version {vid}: {file} is unreadable ({exc}); expected the JSON manifest "
                "written at registration"
            ) from None
        missing = [k for k in _MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
        if missing:
            raise CorruptVersionError(
                f"version {vid}: {file} lacks {missing}; expected a complete manifest"
            )
        if manifest["id"] != vid:
            raise CorruptVersionError(
                f"version {vid}: {file} names version {manifest['id']!r}; expected {vid!r}"
            )
        return manifest

    def _model_dir(self, vid: str, manifest: dict[str, Any]) -> Path:
        """The folder of a version's model files (``model``, or the folder a
        :meth:`rewrite` put in its place)."""
        name = manifest.get("model_dir", "model")
        if not isinstance(name, str) or not _MODEL_DIR_RE.match(name):
            raise CorruptVersionError(
                f"version {vid}: its manifest names the model folder {name!r}; expected "
                "'model' or 'model-rN'"
            )
        return self._versions_dir / vid / name

    def _known_hint(self) -> str:
        ids = [p.name for p in self._version_dirs()]
        if not ids:
            return f"the registry {self.root} holds no versions"
        return f"the registry {self.root} holds {len(ids)} version(s), {ids[0]}..{ids[-1]}"

    def _read_pointer(self) -> dict[str, Any] | None:
        try:
            text = self._champion_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            pointer = json.loads(text)
            vid = pointer["version"]
            stack = pointer["stack"]
            if not (isinstance(vid, str) and _VERSION_RE.match(vid) and isinstance(stack, list)):
                raise ValueError("bad fields")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptVersionError(
                f"{self._champion_file}: unreadable champion pointer ({exc}); expected JSON "
                "with 'version' and 'stack'"
            ) from None
        return pointer

    def _ever_champion(self) -> set[str]:
        seen = {r.get("version") for r in self.history()}
        pointer = self._read_pointer()
        if pointer is not None:
            seen.update(pointer["stack"])
            seen.add(pointer["version"])
        return seen

    def _info(self, manifest: dict[str, Any], champion: str | None, ever: set[str]) -> VersionInfo:
        vid = manifest["id"]
        if vid == champion:
            status = "champion"
        elif vid in ever:
            status = "retired"
        elif manifest["status"] == "rejected":
            status = "rejected"
        else:
            status = "challenger"
        model = manifest["model"]
        return VersionInfo(
            version=vid,
            created_at=manifest["created_at"],
            parent=manifest["parent"],
            status=status,
            registered_as=manifest["status"],
            model=model.get("name", ""),
            model_class=model.get("class", ""),
            params=model.get("params", {}),
            window=manifest.get("window"),
            metrics=manifest.get("metrics") or {},
            data=manifest.get("data") or {},
            tags=manifest.get("tags") or {},
            decision=manifest.get("decision"),
            files=manifest["files"],
            path=str(self._versions_dir / vid),
        )

    # ---------------------------------------------------------------- reads
    def versions(self) -> list[VersionInfo]:
        """Every complete version, oldest first.

        A version folder without a readable, complete manifest is not listed (it cannot
        have been written by :meth:`register`, whose rename happens after the manifest
        is on disk); a :class:`RegistryWarning` names it once per registry object.
        """
        champion = self.champion()
        ever = self._ever_champion()
        out = []
        for folder in self._version_dirs():
            try:
                manifest = self._read_manifest(folder.name)
            except CorruptVersionError as exc:
                if folder.name not in self._warned:
                    self._warned.add(folder.name)
                    warnings.warn(f"skipped: {exc}", RegistryWarning, stacklevel=2)
                continue
            out.append(self._info(manifest, champion, ever))
        return out

    def info(self, version: Any) -> VersionInfo:
        """The :class:`VersionInfo` of one version.

        Raises
        ------
        ParameterError
            ``version`` is not a version id (see :func:`version_id`).
        UnknownIdError
            No such version.
        CorruptVersionError
            Its manifest is missing, unreadable or incomplete.
        """
        vid = version_id(version)
        return self._info(self._read_manifest(vid), self.champion(), self._ever_champion())

    def champion(self) -> str | None:
        """The champion's version id, or ``None`` when nothing was promoted yet."""
        pointer = self._read_pointer()
        return None if pointer is None else pointer["version"]

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rollback, oldest first: dicts with ``time``, ``action``
        (``"promote"`` or ``"rollback"``), ``version``, ``previous`` and ``reason``.

        The log is an audit trail; the champion pointer is the authority. A last line cut
        short by a crash is skipped with a :class:`RegistryWarning`.
        """
        try:
            lines = self._history_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                if i == len(lines) - 1:
                    warnings.warn(
                        f"{self._history_file}: skipped an incomplete last line (a write "
                        "was interrupted)",
                        RegistryWarning,
                        stacklevel=2,
                    )
                    continue
                raise CorruptVersionError(
                    f"{self._history_file}, line {i + 1}: not JSON; expected one record per line"
                ) from None
        return out

    def lineage(self, version: Any) -> list[str]:
        """The chain of parents: ``[version, its parent, the parent's parent, ...]``."""
        vid = version_id(version)
        chain = [vid]
        parent = self._read_manifest(vid)["parent"]
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = self._read_manifest(parent)["parent"]
        return chain

    def verify(self, version: Any) -> None:
        """Check a version's files against the SHA-256 sums in its manifest.

        Raises
        ------
        CorruptVersionError
            A manifest problem, or files that are missing, unexpected or changed (all
            named).
        UnknownIdError, ParameterError
            As in :meth:`info`.
        """
        vid = version_id(version)
        manifest = self._read_manifest(vid)
        model_dir = self._model_dir(vid, manifest)
        expected = manifest["files"]
        found = _tree_files(model_dir) if model_dir.is_dir() else {}
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        changed = sorted(
            name
            for name in set(expected) & set(found)
            if _sha256(found[name]) != expected[name].get("sha256")
        )
        if missing or extra or changed:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if changed:
                parts.append(f"changed (SHA-256 differs) {changed}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise CorruptVersionError(
                f"version {vid} in {self.root}: files do not match the manifest: {'; '.join(parts)}"
            )

    def load(self, version: Any, *, verify: bool = True) -> Recommender:
        """The model of a version (checked against its SHA-256 sums first unless
        ``verify=False``)."""
        vid = version_id(version)
        if verify:
            self.verify(vid)
        return Recommender.load(self._model_dir(vid, self._read_manifest(vid)))

    def saved_user_ids(self, version: Any) -> list[str]:
        """The user ids a version's model holds rows for, read from its files without
        loading the model (an erasure check over many versions stays cheap)."""
        vid = version_id(version)
        arrays = self._model_dir(vid, self._read_manifest(vid)) / "arrays.npz"
        try:
            with np.load(arrays, allow_pickle=False) as npz:
                return [str(u) for u in npz["_user_ids"].tolist()]
        except (OSError, KeyError, ValueError) as exc:
            raise CorruptVersionError(
                f"version {vid}: cannot read its user ids from {arrays.name} ({exc})"
            ) from None

    def load_champion(self, *, verify: bool = True) -> Recommender:
        """The champion's model; :class:`RegistryError` when there is none yet."""
        vid = self.champion()
        if vid is None:
            raise RegistryError(
                f"{self.root}: no champion yet; register a model and promote it first"
            )
        return self.load(vid, verify=verify)

    # --------------------------------------------------------------- writes
    def register(
        self,
        model: Recommender,
        *,
        parent: Any = None,
        window: Any = None,
        metrics: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        decision: Any = None,
        status: str = "challenger",
        reason: str = "",
    ) -> VersionInfo:
        """Save a fitted model as a new version (atomically) and return its info.

        Parameters
        ----------
        model
            A fitted :class:`~lifelongrec.models.Recommender`; written with its own
            ``save`` and read back with ``Recommender.load``.
        parent
            The version it was derived from (must exist), or ``None``.
        window
            The data it learned: ``(start, end)`` timestamps (integers, start <= end) or
            a label, or ``None``.
        metrics, data, tags
            JSON dicts stored in the manifest: figures (e.g. ``{"ndcg@10": 0.31}``), a
            summary of the data (``{"n_events": 1200}``), free labels.
        decision
            The promotion gate's verdict (a :class:`~lifelongrec.registry.GateDecision`
            or a dict), or ``None``.
        status
            ``"challenger"`` (default), ``"rejected"`` (kept for the record, e.g. turned
            down by a gate) or ``"champion"`` (register and promote in one locked step).
        reason
            Why, for the history log when ``status="champion"``.

        Returns
        -------
        VersionInfo
            The new version (ids count up from ``v000001`` and are never reused).

        Raises
        ------
        ParameterError
            ``model`` is not a Recommender, or a bad ``window``, ``status``, ``parent``
            id, ``metrics``, ``data``, ``tags`` or ``decision``.
        NotFittedError
            ``model`` is not fitted.
        UnknownIdError
            ``parent`` names no version.
        RegistryError
            The lock could not be taken in time.
        """
        if not isinstance(model, Recommender):
            raise ParameterError("model", type(model).__name__, "a lifelongrec Recommender")
        if not model.is_fitted:
            raise NotFittedError(
                f"cannot register an unfitted {type(model).__name__}; fit it first"
            )
        if status not in _STATUSES:
            raise ParameterError("status", status, f"one of {list(_STATUSES)}")
        if not isinstance(reason, str):
            raise ParameterError("reason", reason, "a string")
        parent_id = None if parent is None else version_id(parent)
        window_rec = _check_window(window)
        extras = {
            "metrics": _jsonable("metrics", metrics),
            "data": _jsonable("data", data),
            "tags": _jsonable("tags", tags),
            "decision": _jsonable(
                "decision", decision.to_dict() if hasattr(decision, "to_dict") else decision
            ),
        }
        with self._locked():
            if parent_id is not None:
                self._read_manifest(parent_id)  # UnknownIdError / CorruptVersionError
            existing = [int(p.name[1:]) for p in self._version_dirs()]
            vid = f"v{(max(existing) + 1 if existing else 1):06d}"
            tmp = self._versions_dir / f"{_TMP_PREFIX}{vid}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                tmp.mkdir()
                model.save(tmp / "model")
                files = {}
                for name, path in _tree_files(tmp / "model").items():
                    with open(path, "rb") as fh:
                        os.fsync(fh.fileno())
                    files[name] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
                manifest = {
                    "format_version": _FORMAT_VERSION,
                    "id": vid,
                    "created_at": _now(),
                    "parent": parent_id,
                    "status": status,
                    "window": window_rec,
                    "model": {
                        "name": type(model).name,
                        "class": f"{type(model).__module__}.{type(model).__qualname__}",
                        "params": _jsonable("params", model.get_params()),
                    },
                    **extras,
                    "files": files,
                }
                for folder in sorted({p.parent for p in (tmp / "model").rglob("*")}):
                    _fsync_dir(folder)
                _write_durable(tmp / "manifest.json", json.dumps(manifest, indent=2))
                _fsync_dir(tmp)
                os.rename(tmp, self._versions_dir / vid)
                _fsync_dir(self._versions_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if status == "champion":
                self._set_champion(vid, "promote", reason or "registered as champion")
        return self.info(vid)

    def rewrite(self, version: Any, model: Recommender, reason: str) -> VersionInfo:
        """Replace a version's model files by ``model`` (e.g. the same model with erased
        users removed), keeping its id, lineage, figures and place in the history.

        The new files go to a new folder and the manifest (with their SHA-256 sums and a
        ``rewrites`` entry saying when and why) is replaced atomically, then the old
        folder is deleted: a crash leaves either the old version or the new one, never a
        mix (the next opening removes the leftover folder).

        Raises
        ------
        ParameterError
            ``model`` is not a fitted Recommender of the version's class, or ``reason``
            is not a non-empty string.
        UnknownIdError, CorruptVersionError
            As in :meth:`info`.
        """
        if not isinstance(model, Recommender) or not model.is_fitted:
            raise ParameterError("model", type(model).__name__, "a fitted lifelongrec Recommender")
        if not isinstance(reason, str) or not reason:
            raise ParameterError("reason", reason, "a non-empty string")
        vid = version_id(version)
        with self._locked():
            manifest = self._read_manifest(vid)
            klass = f"{type(model).__module__}.{type(model).__qualname__}"
            if manifest["model"].get("class") != klass:
                raise ParameterError(
                    "model", klass, f"a {manifest['model'].get('class')} like the version's"
                )
            folder = self._versions_dir / vid
            old_dir = self._model_dir(vid, manifest)
            rewrites = list(manifest.get("rewrites") or [])
            name = f"model-r{len(rewrites) + 1}"
            tmp = folder / f"{_TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            try:
                model.save(tmp)
                files = {}
                for rel, path in _tree_files(tmp).items():
                    with open(path, "rb") as fh:
                        os.fsync(fh.fileno())
                    files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
                for sub in sorted({p.parent for p in tmp.rglob("*")}):
                    _fsync_dir(sub)
                os.rename(tmp, folder / name)
                _fsync_dir(folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            rewrites.append({"time": _now(), "reason": reason, "model_dir": name})
            manifest = {**manifest, "files": files, "model_dir": name, "rewrites": rewrites}
            _replace_durable(folder / "manifest.json", json.dumps(manifest, indent=2))
            if old_dir.name != name:
                shutil.rmtree(old_dir, ignore_errors=True)
        return self.info(vid)

    def promote(self, version: Any, reason: str = "") -> VersionInfo:
        """Make ``version`` the champion (its files are verified first).

        Promoting the current champion changes nothing and logs nothing.

        Raises
        ------
        UnknownIdError, ParameterError
            As in :meth:`info`.
        CorruptVersionError
            The version's files do not match its manifest (it is not promoted).
        """
        vid = version_id(version)
        if not isinstance(reason, str):
            raise ParameterError("reason", reason, "a string")
        with self._locked():
            self.verify(vid)
            if self.champion() != vid:
                self._set_champion(vid, "promote", reason)
        return self.info(vid)

    def rollback(self, to: Any = None, reason: str = "") -> VersionInfo:
        """Make an earlier version the champion again.

        The registry keeps the stack of champions that led to the current one. With
        ``to=None`` the current champion is dropped and the one before it returns (a
        second rollback goes one further back). With ``to`` given, any complete version
        becomes champion: when it is on the stack, the champions after it are dropped;
        otherwise it is put on top (like a promotion, logged as a rollback).

        Raises
        ------
        RegistryError
            ``to=None`` and no champion yet, or no earlier champion.
        UnknownIdError, ParameterError, CorruptVersionError
            As in :meth:`promote`, for ``to``.
        """
        if not isinstance(reason, str):
            raise ParameterError("reason", reason, "a string")
        target = None if to is None else version_id(to)
        with self._locked():
            pointer = self._read_pointer()
            if target is None and pointer is None:
                raise RegistryError(
                    f"{self.root}: nothing to roll back: no version was ever promoted"
                )
            if target is None:
                stack = pointer["stack"]
                if not stack:
                    raise RegistryError(
                        f"{self.root}: nothing to roll back to: {pointer['version']} is the "
                        "first champion; pass to=VERSION to choose any version"
                    )
                target = stack[-1]
            self.verify(target)
            self._set_champion(target, "rollback", reason)
        return self.info(target)

    def _set_champion(self, vid: str, action: str, reason: str) -> None:
        """Point the champion at ``vid`` (lock held, version verified) and log it."""
        pointer = self._read_pointer()
        previous = None if pointer is None else pointer["version"]
        stack = [] if pointer is None else [*pointer["stack"], previous]
        if vid in stack:
            stack = stack[: stack.index(vid)]  # back to an earlier reign
        record = {
            "time": _now(),
            "action": action,
            "version": vid,
            "previous": previous,
            "reason": reason,
        }
        _replace_durable(
            self._champion_file,
            json.dumps({"version": vid, "stack": stack, "updated_at": record["time"]}),
        )
        # The pointer is the authority; the log follows it (a crash between the two
        # loses at most this log line, never the champion).
        with open(self._history_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
