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

:func:`erase_user` is ``DELETE /users/{id}``; :func:`scrub_model` makes a model forget
the users erased after the store position it learned (a version loaded from the
registry, a challenger about to be registered); :class:`RegistryScrubber` rewrites
registered versions on disk without them (``HOME/scrubbed.json`` says which versions
were checked against which erasures). How these close every way back for an erased user
is told in :mod:`lifelongrec.serving._service` ("Erasure is final").
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from lifelongrec._errors import UnknownIdError
from lifelongrec.data import EventStore
from lifelongrec.models import Recommender
from lifelongrec.registry import ModelRegistry
from lifelongrec.serving._ingest import UserMemory
from lifelongrec.serving._live import LiveSlot
from lifelongrec.serving._shared import Locks, Timings, forget

__all__ = [
    "ERASURES_FILE",
    "ERASURE_KEY_FILE",
    "SCRUBBED_FILE",
    "ErasureLog",
    "RegistryScrubber",
    "erase_user",
    "forget_erased_elsewhere",
    "forget_held",
    "scrub_model",
]

log = logging.getLogger("lifelongrec.serving")

ERASURES_FILE = "erasures.jsonl"
ERASURE_KEY_FILE = "erasure.key"
SCRUBBED_FILE = "scrubbed.json"


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
        self._offset = 0  # bytes of the file read so far (whole lines only)
        migrated = self._read_new() if self.path.exists() else False
        if migrated or (self.path.exists() and self.path.stat().st_mode & 0o077):
            _write_private(self.path, self._text().encode())
            self._offset = self.path.stat().st_size

    def _read_new(self, fh: Any = None) -> bool:
        """Add the whole lines written after :attr:`_offset` (by this or another process)
        and move past them; returns whether a line held a plain user id (an older
        home). The caller holds the lock (or is the constructor)."""
        if fh is None:
            with open(self.path, "rb") as own:
                return self._read_new(own)
        fh.seek(self._offset)
        data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        migrated = False
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
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
        self._offset += end
        return migrated

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
        """How many erasures were recorded (grows by one per :meth:`record`, and by
        :meth:`refresh` with those another process recorded)."""
        return len(self._entries)

    def refresh(self) -> int:
        """Read the erasures other processes (another API replica, the API process
        beside a learner process) logged since the last read; returns how many. Cheap
        when there are none (one ``stat``)."""
        with self._lock:
            try:
                if self.path.stat().st_size <= self._offset:
                    return 0
            except FileNotFoundError:
                return 0
            before = len(self._entries)
            self._read_new()
            return len(self._entries) - before

    def record(self, user_id: str, seq: int) -> None:
        """Durably log that ``user_id`` was erased below store position ``seq``.

        Writers in several processes take turns (an exclusive ``flock`` on the log); each
        first reads what the others wrote, and a line left torn by a crashed writer is
        closed first, so it cannot swallow this one."""
        digest = self.digest(user_id)
        line = (json.dumps({"user": digest, "seq": int(seq)}) + "\n").encode()
        with self._lock:
            exists = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "r+b", buffering=0) as fh:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file is closed
                self._read_new(fh)
                size = os.fstat(fd).st_size
                if size > self._offset:  # a torn line: end it so this one stands alone
                    fh.write(b"\n")
                fh.write(line)
                os.fsync(fd)
                self._offset = os.fstat(fd).st_size
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

    def erased_rows(
        self,
        user_ids: Iterable[str],
        seqs: Iterable[int],
        digests: dict[str, int] | None = None,
    ):
        """A bool per event: its user is in ``digests`` (from :meth:`since`; ``None``:
        every erasure logged) and the event lies below that erasure (it was erased from
        the store)."""
        if digests is None:
            with self._lock:
                digests = dict(self._latest)
        cache: dict[str, int | None] = {}
        out = []
        for u, s in zip(user_ids, seqs, strict=True):
            if u not in cache:
                cache[u] = digests.get(self.digest(u))
            cut = cache[u]
            out.append(cut is not None and int(s) < cut)
        return out


# ------------------------------------------------------------------ erasing
class Trainer(Protocol):
    """What an erasure needs of the learner (:class:`~lifelongrec.serving.Learner`)."""

    @property
    def lock(self) -> threading.RLock:
        """The trainer's lock."""
        ...

    def forget_user(self, user_id: str) -> bool:
        """Remove the user from the trainer; whether it held them."""
        ...


def erase_user(
    user_id: str,
    *,
    store: EventStore,
    erasures: ErasureLog,
    slot: LiveSlot,
    users: UserMemory,
    learner: Trainer,
    locks: Locks,
) -> dict[str, Any]:
    """Erase a user's events from the store and their state from the live model and the
    trainer, and log the erasure, atomically with respect to the trainer and to any
    model being registered or installed (the erase lock, then the learner's, then the
    ingestion lock). See :meth:`RecommenderService.delete_user`."""
    uid = str(user_id)
    with locks.erase, learner.lock, locks.ingest:
        n = store.delete_user(uid)
        # Every event of the user is below this position now; registered versions that
        # learned less forget the user when loaded (and are rewritten).
        erasures.record(uid, int(store.last_seq) + 1)
        erased = forget_held([uid], slot=slot, users=users, learner=learner, locks=locks)
    if n == 0 and not erased:
        raise UnknownIdError("user", [uid], hint="no events or state of this user")
    return {"user_id": uid, "events_erased": int(n), "state_erased": bool(erased)}


def forget_held(
    user_ids: list[str], *, slot: LiveSlot, users: UserMemory, learner: Trainer, locks: Locks
) -> bool:
    """Remove users from the live model, its cached vectors, the trainer and the users in
    memory; whether any was held. The caller holds the erase lock, the learner's and the
    ingestion lock."""
    live = slot.current
    with locks.model:
        held = [forget(live.model, u) for u in user_ids]
        live.forget_vectors(user_ids)
    for u in user_ids:
        held.append(learner.forget_user(u))
        users.discard(u)
    return any(held)


def forget_erased_elsewhere(
    erasures: ErasureLog,
    since: int,
    *,
    slot: LiveSlot,
    users: UserMemory,
    learner: Trainer,
    locks: Locks,
) -> list[str]:
    """Forget the users in memory erased since generation ``since`` (by another process
    on the home folder: its erasures reach this one through the log); returns them."""
    with locks.erase:
        erased = erasures.since(since)
        digest = erasures.digest
        gone = [u for u in users.users() if digest(u) in erased]
        if gone:
            with learner.lock, locks.ingest:
                forget_held(gone, slot=slot, users=users, learner=learner, locks=locks)
    return gone


def scrub_model(model: Recommender, erasures: ErasureLog, after_seq: int) -> list[str]:
    """Make a model that learned the store up to ``after_seq`` forget every user erased
    after that position; returns them."""
    erased = erasures.erased_among(model.known_users(), after_seq)
    for uid in erased:
        forget(model, uid)
    return erased


class RegistryScrubber:
    """Rewrites registered versions on disk without the users erased after the store
    position each learned, one version per round (the learner calls :meth:`scrub`).

    Parameters
    ----------
    home
        The home folder (``scrubbed.json`` lives there).
    registry, erasures
        The registry to rewrite and the erasure log to check against.
    lock
        The erase lock: held while checking and rewriting (no erasure, promotion or
        registration meanwhile).
    counters, timings
        The service's (``versions_scrubbed``; the ``scrub`` phase).
    """

    def __init__(
        self,
        home: Path,
        registry: ModelRegistry,
        erasures: ErasureLog,
        lock: threading.RLock,
        counters: dict[str, float],
        timings: Timings,
    ) -> None:
        self.path = home / SCRUBBED_FILE
        self.registry = registry
        self.erasures = erasures
        self.lock = lock
        self.counters = counters
        self.timings = timings
        self._scrubbed = self._read()  # version -> erasure generation checked
        self._through = -1  # the generation every version was checked against

    def _read(self) -> dict[str, int]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in doc.items()} if isinstance(doc, dict) else {}

    def mark(self, version: str, generation: int) -> None:
        """A version registered after ``generation`` erasures holds none of them (the
        erase lock is held)."""
        self._scrubbed[version] = int(generation)

    def scrub(self, checks: int = 50) -> bool:
        """Check registered versions against the erasures logged since each was last
        checked (reading only their saved user ids), and rewrite at most one that holds
        a user erased after the store position it learned. Called every learner round
        until every version is checked against every erasure. Returns whether there was
        work."""
        if self.erasures.generation in (0, self._through):
            return False  # no erasure, or every version checked against every erasure
        with self.lock, self.timings.timed("scrub"):
            generation = self.erasures.generation
            todo = [
                v for v in self.registry.versions() if self._scrubbed.get(v.version, 0) < generation
            ]
            if not todo:
                self._through = generation
                return False
            for info in todo[:checks]:
                seq = int(info.data.get("last_seq", 0))
                saved = self.registry.saved_user_ids(info.version)
                erased = self.erasures.erased_among(saved, seq)
                if erased:
                    model = self.registry.load(info.version)
                    for uid in erased:
                        forget(model, uid)
                    self.registry.rewrite(
                        info.version, model, reason=f"erased {len(erased)} user(s) on request"
                    )
                    self.counters["versions_scrubbed"] += 1
                    log.info(
                        "version %s rewritten without %d erased user(s)", info.version, len(erased)
                    )
                self._scrubbed[info.version] = generation
                if erased:
                    break  # one rewrite per round: the learner has other work too
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self._scrubbed, fh)
            os.replace(tmp, self.path)
        return True
