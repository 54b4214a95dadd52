"""The erasure log: which users were erased, as keyed hashes, and from which store
position on.

``HOME/erasures.jsonl`` holds one line per acknowledged ``DELETE /users/{id}``:
``{"user": HMAC-SHA256(key, user id) in hex, "seq": N}``, where ``N`` is the first store
sequence number written after the erasure (every event of the user below ``N`` is gone;
events from ``N`` on are the user coming back). The key lives in ``HOME/erasure.key``
(32 random bytes, mode 0600); without it the log does not say who was erased, with it a
given id can be checked. The log is what makes erasure final across versions: a model
that learned the store up to position ``S`` must not hold a user erased at ``N > S``
(:meth:`ErasureLog.erased_among`).

Older homes kept the ids in plain text (``{"user_id": ..., "seq": N}``); opening the log
rewrites such lines as hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ErasureLog", "ERASURES_FILE", "ERASURE_KEY_FILE"]

ERASURES_FILE = "erasures.jsonl"
ERASURE_KEY_FILE = "erasure.key"


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ErasureLog:
    """The erasures of one home folder (see the module docstring). Thread-safe."""

    def __init__(self, home: Path) -> None:
        self.path = home / ERASURES_FILE
        key_file = home / ERASURE_KEY_FILE
        if not key_file.exists():
            _write_private(key_file, secrets.token_bytes(32))
        self._key = key_file.read_bytes()
        self._lock = threading.Lock()
        self._entries: list[tuple[str, int]] = []
        self._latest: dict[str, int] = {}  # digest -> the latest erasure's seq
        migrated = False
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    doc = json.loads(line)
                    seq = int(doc["seq"])
                    if "user" in doc:
                        digest = str(doc["user"])
                    else:
                        digest, migrated = self.digest(str(doc["user_id"])), True
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash: its deletion was not acknowledged
                self._add(digest, seq)
        if migrated or (self.path.exists() and self.path.stat().st_mode & 0o077):
            _write_private(self.path, self._text().encode())

    def _text(self) -> str:
        return "".join(json.dumps({"user": d, "seq": s}) + "\n" for d, s in self._entries)

    def _add(self, digest: str, seq: int) -> None:
        self._entries.append((digest, seq))
        self._latest[digest] = max(seq, self._latest.get(digest, seq))

    def digest(self, user_id: str) -> str:
        """The keyed hash of a user id as the log stores it."""
        return hmac.new(self._key, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()

    @property
    def generation(self) -> int:
        """How many erasures were recorded (grows by one per :meth:`record`)."""
        return len(self._entries)

    def record(self, user_id: str, seq: int) -> None:
        """Durably log that ``user_id`` was erased below store position ``seq``."""
        digest = self.digest(user_id)
        with self._lock:
            exists = self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"user": digest, "seq": int(seq)}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if not exists:
                os.chmod(self.path, 0o600)
            self._add(digest, int(seq))

    def since(self, generation: int) -> dict[str, int]:
        """The erasures recorded after the first ``generation`` ones: digest -> seq."""
        with self._lock:
            out: dict[str, int] = {}
            for d, s in self._entries[generation:]:
                out[d] = max(s, out.get(d, s))
            return out

    def erased_among(self, user_ids: Iterable[str], after_seq: int) -> list[str]:
        """Of ``user_ids``, those erased at a position above ``after_seq`` (a model that
        learned the store up to ``after_seq`` must forget them)."""
        with self._lock:
            latest = dict(self._latest)
        if not latest or max(latest.values()) <= after_seq:
            return []
        wanted = {d for d, s in latest.items() if s > after_seq}
        return [u for u in user_ids if self.digest(u) in wanted]

    def erased_rows(self, user_ids: Iterable[str], seqs: Iterable[int], digests: dict[str, int]):
        """A bool per event: its user is in ``digests`` (from :meth:`since`) and the
        event lies below that erasure (it was erased from the store)."""
        cache: dict[str, int | None] = {}
        out = []
        for u, s in zip(user_ids, seqs, strict=True):
            if u not in cache:
                cache[u] = digests.get(self.digest(u))
            cut = cache[u]
            out.append(cut is not None and int(s) < cut)
        return out
