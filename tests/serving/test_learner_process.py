"""The learner in a process of its own (``learner_mode="process"``, the default with
``background=True``, and ``"external"``).

Most tests run :class:`LearnerProcess` (what ``lifelongrec learn`` runs) in the test's
own process beside a service opened with ``learner_mode="external"``, and drive both by
hand: the learner's rounds (``step``) and the service's follower (``tick``), so every
interleaving is forced, not hoped for. Two tests spawn the real process: one follows
its promotions under requests and kills it with SIGKILL, one checks the command line.
"""

import contextlib
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from lifelongrec.cli import app
from lifelongrec.serving import RecommenderService, ServiceError
from lifelongrec.serving import _learner_process as learner_process
from lifelongrec.serving._learner_process import NICE, LearnerBusyError, LearnerProcess

VICTIM = "victim-user"
TS = 2_000_000_000
DEADLINE = 180  # seconds; a hang guard that only a broken learner reaches


def _open(home, service_config, **over):
    cfg = {
        **service_config,
        "background": True,
        "learner_mode": "external",
        "gate_tolerance": 1.0,  # every challenger is promoted: these tests are about flow
        **over,
    }
    return RecommenderService.open(home, config=cfg, start=False)


def _traffic(service, n, seed, start=TS, users=None):
    rng = np.random.default_rng(seed)
    users = users or sorted(service.live_model.known_users())[:60]
    items = sorted(service.live_model.known_items())
    service.ingest(
        [
            {
                "user_id": users[int(rng.integers(len(users)))],
                "item_id": items[int(rng.integers(len(items)))],
                "timestamp": start + j,
            }
            for j in range(n)
        ]
    )
    return start + n


def _knows(model, user):
    return int(model.user_rows([user])[0]) >= 0


def _until(learner, what, rounds=60):
    for _ in range(rounds):
        learner.step()
        if what():
            return
    raise AssertionError(f"not reached after {rounds} rounds: {learner.counters}")


def _follow(service):
    service.learner.status(max_age=0)  # read the status the learner just wrote
    service.learner.tick()


def test_the_service_serves_what_the_learner_process_promotes(home, service_config):
    service = _open(home, service_config)
    learner = LearnerProcess(home)
    try:
        first = service.live_version
        assert (
            service.learner_mode == "external" and learner.learner.cursor == service.store.last_seq
        )
        ts = _traffic(service, 400, seed=1)
        _until(learner, lambda: learner.learner.challenger is not None)
        _traffic(service, 300, seed=2, start=ts)
        _until(learner, lambda: learner.counters["promotions"] >= 1)
        champion = service.registry.champion()
        assert champion != first and service.live_version == first  # not followed yet
        learner.write_status()
        _follow(service)
        assert service.live_version == champion
        user = sorted(service.live_model.known_users())[0]
        assert service.recommend(user, k=5)["model_version"] == champion
        # The learner's counters and cursor reach /health through its status file.
        assert service.counters["challengers"] == learner.counters["challengers"] >= 1
        assert service.counters["promotions"] == learner.counters["promotions"]
        health = service.health()
        assert health["learner_mode"] == "external" and health["learner_running"] is True
        assert health["learner_lag_events"] == 0
        assert "observe" in health["learner_phase_seconds"]
        # A promotion through the API is followed by the learner's host too: its next
        # challenger is judged against the registry's champion, not its own last one.
        service.promote(first)
        assert service.live_version == first
        assert learner.learner.host.champion()[0] == first
    finally:
        learner.close()
        service.close()
    status = json.loads((home / "learner.json").read_text())
    assert status["running"] is False and status["cursor"] == learner.learner.cursor


def test_an_erasure_between_the_learners_read_and_its_learning(home, service_config):
    """The DELETE lands (in the API process) after the learner process read a batch
    holding the user and before it learns it: the trainer forgets the user, the
    batch's events of the user are not learned, and no version it registers holds
    them."""
    service = _open(home, service_config)
    learner = LearnerProcess(home)
    try:
        items = sorted(service.live_model.known_items())

        def victim(start):
            service.ingest(
                [{"user_id": VICTIM, "item_id": items[j], "timestamp": start + j} for j in range(5)]
            )

        victim(TS)
        learner.step()
        trainer = learner.learner.trainer
        assert _knows(trainer, VICTIM)
        victim(TS + 10)
        read, fired = learner.store.read, []

        def read_then_delete(after_seq=0, limit=None):
            out = read(after_seq, limit)
            if not fired and (out["user_id"] == VICTIM).any():
                fired.append(service.delete_user(VICTIM))
            return out

        learner.store.read = read_then_delete
        learner.step()
        learner.store.read = read
        assert fired and fired[0]["events_erased"] == 10
        assert not _knows(trainer, VICTIM)
        ts = _traffic(service, 400, seed=1)
        _until(learner, lambda: learner.learner.challenger is not None)
        _traffic(service, 300, seed=2, start=ts)
        _until(learner, lambda: learner.counters["promotions"] >= 1)
        while learner.learner.scrub_registry():
            pass
        for info in service.registry.versions():
            assert VICTIM not in service.registry.saved_user_ids(info.version), info.version
        _follow(service)
        assert not _knows(service.live_model, VICTIM)
        assert service.recommend(VICTIM, k=5)["cold_start"] is True
    finally:
        learner.close()
        service.close()


def test_catalogue_upserts_and_the_user_cap_in_the_learner_process(home, service_config):
    service = _open(home, service_config, max_users=20)
    learner = LearnerProcess(home)
    try:
        service.upsert_items(
            [{"item_id": "brand-new", "title": "A brand new thing", "categories": ["new"]}]
        )
        learner.step()
        trainer = learner.learner.trainer
        assert "brand-new" in trainer.known_items()
        users = sorted(service.store.read()["user_id"].unique())[:40]
        _traffic(service, 400, seed=3, users=users)
        learner.step()
        kept = set(trainer.known_users())
        assert len(kept) == 20
        last = service.store.read(after_seq=service.store.last_seq - 400)["user_id"]
        recent = list(dict.fromkeys(reversed(last.tolist())))
        assert len(recent) > 20 and kept == set(recent[:20])  # the 20 most recently active
    finally:
        learner.close()
        service.close()


def test_one_learner_per_home_and_what_a_process_mode_service_refuses(home, service_config):
    service = _open(home, service_config)
    learner = LearnerProcess(home)
    try:
        with pytest.raises(LearnerBusyError, match=f"pid {os.getpid()}"):
            LearnerProcess(home)
        with pytest.raises(ServiceError, match="own process"):
            service.learn_step()
        # A learner whose parent is gone stops at once.
        learner.run(threading.Event(), parent=os.getppid() + 1_000_000)
    finally:
        learner.close()
        service.close()
    LearnerProcess(home).close()  # the lock went with the first


def test_health_and_metrics_before_the_learner_wrote_its_status(home, service_config, keys):
    from fastapi.testclient import TestClient

    from lifelongrec.serving import create_app

    service = _open(home, service_config)
    try:
        with TestClient(create_app(service, keys)) as client:
            headers = {"X-API-Key": "read-key-0123456789"}
            r = client.get("/metrics", headers=headers)
            assert r.status_code == 200
            assert "lifelongrec_learner_n_batches 0.0" in r.text
            h = client.get("/health", headers=headers).json()
            assert h["learner_running"] is False and h["learner_mode"] == "external"
            assert h["learner_lag_events"] == service.store.last_seq  # nothing learned yet
    finally:
        service.close()


def test_learn_on_a_folder_that_is_no_home_says_what_to_do(tmp_path, monkeypatch):
    lowered = []  # in this process: leave the test run's own priority alone
    monkeypatch.setattr(learner_process, "lower_priority", lambda *a, **kw: lowered.append(kw))
    result = CliRunner().invoke(app, ["learn", "--home", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "not a service home folder yet" in result.output
    assert "lifelongrec serve" in result.output
    assert lowered == [{"idle": True}]  # the default: SCHED_IDLE
    result = CliRunner().invoke(
        app, ["learn", "--home", str(tmp_path / "nothing"), "--priority", "fast"]
    )
    assert result.exit_code == 2 and lowered == [{"idle": True}]  # refused before it
    assert "'--priority' must be one of ['idle', 'nice']; got 'fast'" in result.output


def test_a_spawned_learner_is_followed_and_survives_sigkill(home, service_config):
    """``learner_mode="process"`` (the default): the service spawns the learner, serves
    what it promotes while requests go on (none fails), starts it again after SIGKILL,
    and the new learner learns each event after the champion's position exactly once."""
    cfg = {
        **service_config,
        "background": True,
        "gate_tolerance": 1.0,
        "challenger_every": 150,
        "holdout_events": 40,
    }
    service = RecommenderService.open(home, config=cfg)
    link = service.learner
    failures, stop = [], threading.Event()
    users = sorted(service.live_model.known_users())[:30]

    def ask():
        rng = np.random.default_rng(1)
        while not stop.is_set():
            try:
                service.recommend(users[int(rng.integers(len(users)))], k=10)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(exc))
            stop.wait(0.005)  # about 200 requests a second, as a load test sends

    reader = threading.Thread(target=ask)
    reader.start()
    try:
        assert service.learner_mode == "process" and link.running
        first, ts, sent = service.live_version, TS, service.store.n_events
        end = time.monotonic() + DEADLINE
        while service.live_version == first and time.monotonic() < end:
            ts = _traffic(service, 50, seed=ts, start=ts, users=users)
            sent += 50
            time.sleep(0.1)
        assert service.live_version != first, "the spawned learner's champion never went live"
        old = link.pid
        if os.path.isdir(f"/proc/{old}/task"):  # every thread of it below the API's priority
            want = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
            idle = getattr(os, "SCHED_IDLE", None)  # learner_priority "idle", the default
            for tid in os.listdir(f"/proc/{old}/task"):
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    assert os.getpriority(os.PRIO_PROCESS, int(tid)) == want, tid
                    assert idle is None or os.sched_getscheduler(int(tid)) == idle, tid
        os.kill(old, signal.SIGKILL)
        time.sleep(0.2)  # gone: it promotes nothing more
        seq0 = int(service.registry.info(service.registry.champion()).data["last_seq"])
        ts = _traffic(service, 50, seed=7, start=ts, users=users)  # acknowledged meanwhile
        sent += 50
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and not (
            link.pid != old and link.status(max_age=0).get("pid") == link.pid
        ):
            time.sleep(0.1)
        assert link.pid != old and service.counters["learner_restarts"] == 1
        assert service.store.n_events == sent  # no acknowledged event lost
        last = service.store.last_seq
        assert link.wait_cursor(last, DEADLINE)
        status = link.status(max_age=0)
        # Every event after the champion's position, learned once by the new learner.
        assert status["stats"]["n_events"] == last - seq0
    finally:
        stop.set()
        reader.join()
        service.close()
    assert not failures
    assert not link.running


def test_a_store_outage_pauses_the_learner_without_counting_errors(
    home, service_config, caplog, monkeypatch
):
    """While the store cannot be reached the learner says so once, waits a second
    between tries and counts no failed rounds; it says when it learns again."""
    import logging

    from lifelongrec.data import StoreUnavailableError

    service = _open(home, service_config)
    learner = LearnerProcess(home)
    calls, stop = [], threading.Event()
    real = learner.step

    def step(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise StoreUnavailableError("the event store is unavailable (a test)")
        stop.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(learner, "step", step)
    try:
        with caplog.at_level(logging.WARNING, logger="lifelongrec"):
            learner.run(stop)
    finally:
        learner.close()
        service.close()
    assert len(calls) == 3 and calls[2] - calls[0] >= 1.9  # a second between tries
    assert learner.counters["learner_errors"] == 0
    said = [r.getMessage() for r in caplog.records]
    assert sum("learning paused" in m for m in said) == 1
    assert any("learning again" in m for m in said)


LOWER = """
import json, os, sys, threading
from lifelongrec.serving._learner_process import lower_priority
ready, done = threading.Event(), threading.Event()
ids = []
def wait():
    ids.append(threading.get_native_id())
    ready.set()
    done.wait()
t = threading.Thread(target=wait)
t.start()
ready.wait()
tids = (os.getpid(), ids[0])
def policies():
    return [os.sched_getscheduler(tid) == os.SCHED_IDLE for tid in tids]
before = [os.getpriority(os.PRIO_PROCESS, tid) for tid in tids]
idle_before = policies()
lower_priority(3, idle=sys.argv[1] == "idle")
after = [os.getpriority(os.PRIO_PROCESS, tid) for tid in tids]
idle_after = policies()
later = []
def new():
    later.append(os.getpriority(os.PRIO_PROCESS, 0))
    later.append(os.sched_getscheduler(0) == os.SCHED_IDLE)
t2 = threading.Thread(target=new)
t2.start()
t2.join()
done.set()
t.join()
print(json.dumps({"before": before, "after": after, "later": later, "idle_before": idle_before,
                  "idle_after": idle_after}))
"""


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/task") or not hasattr(os, "SCHED_IDLE"),
    reason="per-thread nice and SCHED_IDLE are Linux's",
)
def test_the_learner_lowers_the_priority_of_every_thread_it_has():
    """``os.nice`` alone leaves the threads started before it at the API's priority."""
    import subprocess
    import sys

    for priority in ("idle", "nice"):
        out = subprocess.run(
            [sys.executable, "-c", LOWER, priority],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        got = json.loads(out.stdout.strip().splitlines()[-1])
        main, thread = got["before"]
        assert got["after"] == [main + 3, thread + 3]  # the thread started before too
        assert got["idle_before"] == [False, False]
        idle = priority == "idle"
        assert got["idle_after"] == [idle, idle]  # SCHED_IDLE on every thread, or none
        assert got["later"] == [main + 3, idle]  # a thread started after inherits both
