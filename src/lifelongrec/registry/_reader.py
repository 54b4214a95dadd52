"""The read side of a model registry: its folders, manifests, champion pointer and
history, read without any lock (every file a reader reads is replaced atomically).

:class:`RegistryReader` is the part of :class:`~lifelongrec.registry.ModelRegistry`
that lists versions, describes them (:class:`~lifelongrec.registry.VersionInfo`),
follows lineage, verifies files against their checksums and loads models; the writes
(under the lock) are in :mod:`lifelongrec.registry._registry`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lifelongrec._errors import UnknownIdError
from lifelongrec.models import Recommender
from lifelongrec.registry._durable import _sha256, _tree_files
from lifelongrec.registry._errors import CorruptVersionError, RegistryError, RegistryWarning
from lifelongrec.registry._manifest import (
    _MANIFEST_KEYS,
    _MODEL_DIR_RE,
    _VERSION_RE,
    VersionInfo,
    version_id,
)

__all__ = ["RegistryReader"]


class RegistryReader:
    """What :class:`~lifelongrec.registry.ModelRegistry` reads (a part of that class, not
    usable alone: it reads ``self.root``)."""

    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def _champion_file(self) -> Path:
        return self.root / "CHAMPION"

    @property
    def _history_file(self) -> Path:
        return self.root / "history.jsonl"

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
