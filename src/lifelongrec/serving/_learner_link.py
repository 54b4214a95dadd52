"""The API process's side of a learner in another process.

:class:`LearnerLink` stands where the in-process
:class:`~lifelongrec.serving._learner.Learner` stands when the settings say
``learner_mode="process"`` (the default with ``background=True``: ``serve`` spawns
``lifelongrec learn`` beside itself) or ``"external"`` (the learner is started on its
own, e.g. on another machine sharing the home folder, or under a process supervisor).
Its thread, every :data:`FOLLOW_SECONDS`:

* **follows the champion**: when the registry's champion pointer moved (the learner
  promoted a challenger, or someone promoted or rolled back), the version is loaded,
  scrubbed, caught up with the store and made live in one reference swap
  (:meth:`ModelLifecycle.serve_champion`): requests keep being answered by the old
  version meanwhile, none fails;
* does the serving side's housekeeping the learner thread does in one process (index
  compaction, the popularity ranking of cold-start answers);
* in ``"process"`` mode **supervises the learner**: a learner that exited (killed,
  crashed) is started again, after a pause that doubles up to a minute while it keeps
  failing (``learner_restarts`` counts them).

The learner's figures (cursor, rounds, counters, phase times) come from the status file
it writes (``HOME/learner.json``); the link adds the learner's counters to the service's
(``challengers``, ``promotions``, ...), so ``/metrics`` counts across learner restarts.

:class:`ServiceHost` is the serving side's half in either case: the learner thread's
host in one process, and the housekeeping :class:`LearnerLink` runs when the learner
is elsewhere.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelongrec.data import EventStore
from lifelongrec.serving._learner_process import LEARNER_LOCK, LEARNER_STATUS
from lifelongrec.serving._shared import ServiceError
from lifelongrec.training import OnlineStats

if TYPE_CHECKING:
    from lifelongrec.serving._catalogue import Catalogue
    from lifelongrec.serving._ingest import UserMemory
    from lifelongrec.serving._lifecycle import ModelLifecycle
    from lifelongrec.serving._live import LiveSlot
    from lifelongrec.serving._shared import Timings

__all__ = ["FOLLOW_SECONDS", "LEARNER_COUNTERS", "LearnerLink", "ServiceHost"]

log = logging.getLogger("lifelongrec.serving")

FOLLOW_SECONDS = 0.1  # how often the registry's champion pointer is looked at
STALE_SECONDS = 10.0  # an external learner whose status is older counts as not running
#: The counters the learner keeps (added to the service's from its status file).
LEARNER_COUNTERS = (
    "challengers",
    "promotions",
    "learner_errors",
    "challengers_dropped",
    "versions_scrubbed",
)


class LearnerLink:
    """A learner in another process, seen from the API process (see the module
    docstring).

    Parameters
    ----------
    home
        The home folder the learner works on.
    mode
        ``"process"`` (spawn and supervise ``lifelongrec learn``) or ``"external"``.
    store
        The event store (the learner's lag is the store's newest position minus its
        cursor).
    champion_moved, serve_champion, maintain
        Callables of the service: whether the registry's champion differs from the live
        version; make it live; the serving side's housekeeping.
    counters
        The service's counters (the learner's are added in).
    torch_threads
        Threads for the spawned learner's torch.
    priority
        The spawned learner's ``--priority`` (``"idle"`` or ``"nice"``; the service's
        ``learner_priority``).
    """

    def __init__(
        self,
        home: Path,
        mode: str,
        store: EventStore,
        *,
        champion_moved: Callable[[], bool],
        serve_champion: Callable[[], Any],
        maintain: Callable[[], Any],
        counters: dict[str, float],
        torch_threads: int = 1,
        priority: str = "idle",
    ) -> None:
        self.home = home
        self.mode = mode
        self.store = store
        self._moved = champion_moved
        self._serve = serve_champion
        self._maintain = maintain
        self.counters = counters
        self.torch_threads = int(torch_threads)
        self.priority = priority
        self.lock = threading.RLock()  # what an erasure holds of "the trainer": nothing here
        self._proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 1.0
        self._restart_at = 0.0
        self._seen: dict[str, float] = {}  # the learner's counters as last added
        self._seen_pid: int | None = None
        self._status: dict[str, Any] = {}
        self._status_read = 0.0

    # ----------------------------------------------------------------- status
    def status(self, max_age: float = 0.2) -> dict[str, Any]:
        """The learner's status file (re-read when older than ``max_age`` seconds);
        ``{}`` before the learner wrote one."""
        now = time.monotonic()
        if now - self._status_read >= max_age:
            try:
                self._status = json.loads((self.home / LEARNER_STATUS).read_text())
            except (OSError, ValueError):
                pass  # none yet, or being replaced: keep the last one read
            self._status_read = now
        return self._status

    @property
    def pid(self) -> int | None:
        """The spawned learner's process id (``None`` in ``"external"`` mode or before
        :meth:`start`)."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the learner process is alive (spawned: it has not exited; external:
        its status says running and is at most :data:`STALE_SECONDS` old)."""
        if self._proc is not None:
            return self._proc.poll() is None
        st = self.status()
        return bool(st.get("running")) and time.time() - st.get("updated_at", 0) < STALE_SECONDS

    @property
    def cursor(self) -> int:
        """The store position the learner had read up to when it last wrote its status."""
        return int(self.status().get("cursor", 0))

    @property
    def rounds(self) -> int:
        return int(self.status().get("rounds", 0))

    def stats(self) -> dict[str, Any]:
        """The online learner's counters as the learner last wrote them (zeros before
        it wrote any)."""
        return {**OnlineStats().as_dict(), **self.status().get("stats", {})}

    def phase_seconds(self) -> dict[str, Any]:
        return dict(self.status().get("phase_seconds", {}))

    def lag(self) -> int:
        """Stored events the learner has not learned yet (its status is at most about
        half a second old, so this may overstate the lag by that much)."""
        st = self.status()
        if not st:
            return int(self.store.last_seq)
        behind = max(0, int(self.store.last_seq) - int(st.get("cursor", 0)))
        return behind + int(st.get("stats", {}).get("n_pending", 0))

    def wait_cursor(self, seq: int, timeout: float) -> bool:
        """Wait until the learner reports a cursor at or past ``seq``; False on
        ``timeout``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if int(self.status(max_age=0).get("cursor", -1)) >= seq:
                return True
            time.sleep(0.05)
        return False

    def forget_user(self, user_id: str) -> bool:
        """The learner process forgets erased users itself, from the erasure log."""
        return False

    def step(self, max_events: int = 5_000) -> bool:
        raise ServiceError(
            "the learner runs in its own process (learner_mode="
            f"{self.mode!r}); learn_step needs learner_mode='thread' or background=False"
        )

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Spawn the learner (``"process"`` mode) and start following the champion
        (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        if self.mode == "process" and (self._proc is None or self._proc.poll() is not None):
            if not self.learner_elsewhere():
                self._spawn()
        self._thread = threading.Thread(target=self._loop, name="champion-follower", daemon=True)
        self._thread.start()

    def learner_elsewhere(self) -> bool:
        """Whether another process (a learner another replica started, or one started
        by hand) holds the home folder's learner lock: then this service only follows,
        and takes over when that learner is gone."""
        fd = os.open(self.home / LEARNER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the lock if it was taken
        return False

    def _spawn(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "lifelongrec.cli",
            "learn",
            "--home",
            str(self.home),
            "--parent",
            str(os.getpid()),
            "--torch-threads",
            str(self.torch_threads),
            "--priority",
            self.priority,
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        log.info("learner process %d started", self._proc.pid)

    def stop(self, timeout: float = 30) -> None:
        """Stop following; stop a spawned learner (SIGTERM: it ends its round and writes
        its status; killed after ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("learner process %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait()
        if proc is not None:
            self._proc = proc  # its exit status stays readable (running: False)

    def _loop(self) -> None:
        while not self._stop.wait(FOLLOW_SECONDS):
            try:
                self.tick()
            except Exception:  # keep following; the error is logged
                log.exception("following the learner failed")

    def tick(self) -> None:
        """One look: champion, housekeeping, the learner's counters and health."""
        if self._moved():
            self._serve()
        self._maintain()
        self._add_counters()
        proc = self._proc
        if self.mode != "process":
            return
        if proc is None:  # another process's learner ran: take over when it is gone
            if not self._stop.is_set() and not self.learner_elsewhere():
                self._spawn()
            return
        if proc.poll() is not None:
            now = time.monotonic()
            if self.learner_elsewhere():  # ours lost the race to another replica's
                self._proc = None
                self._restart_at = 0.0
            elif self._restart_at == 0.0:
                log.warning(
                    "learner process %d exited (status %s); starting another in %.0f s",
                    proc.pid,
                    proc.returncode,
                    self._backoff,
                )
                self._restart_at = now + self._backoff
            elif now >= self._restart_at and not self._stop.is_set():
                self.counters["learner_restarts"] += 1
                self._spawn()
                self._backoff = min(60.0, self._backoff * 2)
                self._restart_at = 0.0
        elif proc is not None and self.status().get("pid") == proc.pid and self.rounds > 0:
            self._backoff = 1.0  # it runs again: the next failure waits a second

    def _add_counters(self) -> None:
        st = self.status()
        if not st:
            return
        pid, now = st.get("pid"), st.get("counters", {})
        if pid != self._seen_pid:  # a new learner counts from zero
            self._seen_pid, self._seen = pid, {}
        for key in LEARNER_COUNTERS:
            value = float(now.get(key, 0))
            delta = value - self._seen.get(key, 0.0)
            if delta > 0:
                self.counters[key] += delta
                self._seen[key] = value


class ServiceHost:
    """The learner's view of the service in the service's own process (a
    :class:`~lifelongrec.serving._learner.LearnerHost` for a learner thread), and the
    housekeeping the serving side does when the learner runs elsewhere
    (:meth:`maintain_apart`)."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        catalogue: Catalogue,
        users: UserMemory,
        slot: LiveSlot,
        timings: Timings,
    ) -> None:
        self.judge = lifecycle.judge
        self.take_items = catalogue.take_published
        self.take_evicted = users.take_evicted
        self._slot = slot
        self._timings = timings

    def maintain(self) -> bool:
        with self._timings.timed("index"):
            compacted = self._slot.compact_index()
        return compacted or self._slot.refresh_popularity()

    def maintain_apart(self) -> None:
        """The housekeeping while the learner runs in another process: the same, and
        nothing kept for a trainer that is not here."""
        self.maintain()
        self.take_evicted()
        self.take_items()
