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

:class:`ModelRegistry` writes (``register``, ``rewrite``, ``promote``, ``rollback``,
under the lock) here; what it reads (manifests, the champion pointer, the history,
checksums) is :class:`~lifelongrec.registry._reader.RegistryReader`, what a version is
(its id, :class:`VersionInfo`, the manifest's fields) is in
:mod:`~lifelongrec.registry._manifest`, and the durable file writes in
:mod:`~lifelongrec.registry._durable`. Every name this module had is still importable
from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lifelongrec._errors import NotFittedError, ParameterError, UnknownIdError
from lifelongrec._params import check_number
from lifelongrec.models import Recommender
from lifelongrec.registry._durable import _TMP_PREFIX as _TMP_PREFIX
from lifelongrec.registry._durable import _fsync_dir as _fsync_dir
from lifelongrec.registry._durable import _replace_durable as _replace_durable
from lifelongrec.registry._durable import _sha256 as _sha256
from lifelongrec.registry._durable import _tree_files as _tree_files
from lifelongrec.registry._durable import _write_durable as _write_durable
from lifelongrec.registry._errors import CorruptVersionError, RegistryError, RegistryWarning
from lifelongrec.registry._manifest import _FORMAT_VERSION as _FORMAT_VERSION
from lifelongrec.registry._manifest import _MANIFEST_KEYS as _MANIFEST_KEYS
from lifelongrec.registry._manifest import _MODEL_DIR_RE as _MODEL_DIR_RE
from lifelongrec.registry._manifest import _STATUSES as _STATUSES
from lifelongrec.registry._manifest import _VERSION_RE as _VERSION_RE
from lifelongrec.registry._manifest import VersionInfo as VersionInfo
from lifelongrec.registry._manifest import _check_window as _check_window
from lifelongrec.registry._manifest import _json_default as _json_default
from lifelongrec.registry._manifest import _jsonable as _jsonable
from lifelongrec.registry._manifest import _now as _now
from lifelongrec.registry._manifest import version_id as version_id
from lifelongrec.registry._reader import RegistryReader

__all__ = ["ModelRegistry", "VersionInfo", "version_id"]


class ModelRegistry(RegistryReader):
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
        lock_timeout = check_number(
            "lock_timeout", lock_timeout, 0, expected="a non-negative number of seconds"
        )
        self.root = Path(root)
        self.lock_timeout = lock_timeout
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
