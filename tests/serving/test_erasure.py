"""Erasure is final: after an acknowledged DELETE no model that serves or is saved holds
the user's events, history or row, whatever the interleaving with the learner, the
challenger, promotion, rollback and restarts. Each interleaving is forced (a DELETE
injected at the exact moment), not hoped for."""

import json
import os
import stat

import numpy as np
import pytest

from lifelongrec.serving import RecommenderService

VICTIM = "victim-user"
TS = 2_000_000_000


def _cfg(service_config, **over):
    # tolerance 1.0: every challenger is promoted (these tests are about erasure)
    return {**service_config, "gate_tolerance": 1.0, **over}


def _items(service):
    return sorted(service.live_model.known_items())


def _users(service):
    return sorted(service.live_model.known_users())


def _knows(model, user):
    return int(model.user_rows([user])[0]) >= 0


def _traffic(service, n, seed, start=TS, users=None):
    """``n`` events from many known users on many items (a fair holdout)."""
    rng = np.random.default_rng(seed)
    users = users or _users(service)[:60]
    items = _items(service)
    events = [
        {
            "user_id": users[int(rng.integers(len(users)))],
            "item_id": items[int(rng.integers(len(items)))],
            "timestamp": start + j,
        }
        for j in range(n)
    ]
    service.ingest(events)
    return start + n


def _victim_events(service, n=5, start=TS):
    items = _items(service)
    service.ingest(
        [{"user_id": VICTIM, "item_id": items[j], "timestamp": start + j} for j in range(n)]
    )


def _until(service, what, rounds=40):
    for _ in range(rounds):
        service.learn_step()
        if what():
            return
    raise AssertionError(f"not reached after {rounds} learner rounds: {service.counters}")


def _no_model_holds(service, user):
    """Neither the live model, the trainer, nor any registered version holds ``user``."""
    assert not _knows(service.live_model, user)
    assert not _knows(service.learner.trainer, user)
    for info in service.registry.versions():
        assert user not in service.registry.saved_user_ids(info.version), info.version
    out = service.recommend(user, k=5)
    assert out["cold_start"] is True


def _scrub_all(service):
    while service.learner.scrub_registry():
        pass


def test_delete_between_the_learners_read_and_its_learning(home, service_config):
    """The learner read a batch holding the user, the DELETE lands, then the learner
    learns the batch: the user must not come back (into the trainer, a challenger made
    from it, the registry, or the live model after promotion and after a restart)."""
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        _victim_events(service)
        assert _knows(service.live_model, VICTIM)
        read = service.store.read
        fired = []

        def read_then_delete(after_seq=0, limit=None):
            out = read(after_seq, limit)
            if not fired and (out["user_id"] == VICTIM).any():
                fired.append(service.delete_user(VICTIM))  # between read and observe
            return out

        service.store.read = read_then_delete
        service.learn_step()
        service.store.read = read
        assert fired and fired[0]["events_erased"] == 5
        assert not _knows(service.learner.trainer, VICTIM)
        # A challenger made from this trainer is judged, registered and promoted.
        ts = _traffic(service, 400, seed=1)
        _until(service, lambda: service.learner.challenger is not None)
        _traffic(service, 300, seed=2, start=ts)
        _until(service, lambda: service.counters["promotions"] >= 1)
        _no_model_holds(service, VICTIM)
    finally:
        service.close()
    again = RecommenderService.open(home, config=_cfg(service_config))
    try:
        _no_model_holds(again, VICTIM)
    finally:
        again.close()


def test_delete_while_the_challenger_is_judged(home, service_config):
    """The challenger (a copy of the trainer that learned the user) is being judged when
    the DELETE lands: it is registered and installed without the user."""
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        _victim_events(service)
        ts = _traffic(service, 400, seed=1, start=TS + 10)
        _until(service, lambda: service.learner.challenger is not None)
        assert _knows(service.learner.challenger, VICTIM)  # the copy holds the user
        ts = _traffic(service, 300, seed=2, start=ts)
        gate = service.gate
        decide = gate.decide
        fired = []

        def decide_then_delete(*args, **kwargs):
            out = decide(*args, **kwargs)
            fired.append(service.delete_user(VICTIM))  # after evaluation, before saving
            return out

        gate.decide = decide_then_delete
        _until(service, lambda: service.counters["challengers"] >= 1)
        gate.decide = decide
        assert fired and service.counters["promotions"] == 1
        _no_model_holds(service, VICTIM)
    finally:
        service.close()


def _version_holding_victim(service):
    """A registered (promoted) version that learned the victim."""
    _victim_events(service)
    ts = _traffic(service, 400, seed=1, start=TS + 10)
    _until(service, lambda: service.learner.challenger is not None)
    _traffic(service, 300, seed=2, start=ts)
    _until(service, lambda: service.counters["promotions"] >= 1)
    version = service.live_version
    assert VICTIM in service.registry.saved_user_ids(version)
    return version


def test_promotion_and_rollback_after_the_delete_serve_no_erased_user(home, service_config):
    """Versions saved before the erasure hold the user on disk: promoting one (or rolling
    back to one) right after the DELETE serves it without the user, and the learner
    rewrites every such version on disk (verified against its new checksums)."""
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        holding = _version_holding_victim(service)
        service.rollback()  # back to v000001
        service.promote(holding)  # v000001 -> holding: a rollback target exists again
        assert service.live_version == holding
        service.delete_user(VICTIM)
        service.rollback()  # to v000001, which never saw the victim
        assert not _knows(service.live_model, VICTIM)
        service.promote(holding)  # saved before the erasure: scrubbed on loading
        assert service.live_version == holding
        assert not _knows(service.live_model, VICTIM)
        assert VICTIM in service.registry.saved_user_ids(holding)  # not rewritten yet
        _scrub_all(service)
        _no_model_holds(service, VICTIM)
        service.registry.verify(holding)  # the rewritten files match the manifest
        rewrites = json.loads(
            (service.registry.root / "versions" / holding / "manifest.json").read_text()
        )["rewrites"]
        assert len(rewrites) == 1 and "erased 1 user" in rewrites[0]["reason"]
        assert VICTIM not in json.dumps(rewrites)
    finally:
        service.close()


def test_a_restart_before_the_rewrite_still_serves_no_erased_user(home, service_config):
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        holding = _version_holding_victim(service)
        service.delete_user(VICTIM)
    finally:
        service.close()  # killed before the learner rewrote the version
    again = RecommenderService.open(home, config=_cfg(service_config))
    try:
        assert again.live_version == holding
        assert not _knows(again.live_model, VICTIM)
        assert not _knows(again.learner.trainer, VICTIM)
        _scrub_all(again)  # the rewrite is still owed after the restart, and done
        _no_model_holds(again, VICTIM)
    finally:
        again.close()


def test_an_erased_user_who_comes_back_is_a_new_user(home, service_config):
    """Events after the erasure are the user's new life: a version saved before the
    erasure, promoted afterwards, holds only those."""
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        holding = _version_holding_victim(service)
        service.rollback()
        service.delete_user(VICTIM)
        item = _items(service)[-1]
        service.ingest({"user_id": VICTIM, "item_id": item, "timestamp": TS + 10_000})
        service.promote(holding)
        model = service.live_model
        row = int(model.user_rows([VICTIM])[0])
        seen = model.user_items_[row].indices
        assert [model.item_ids_[j] for j in seen] == [item]
    finally:
        service.close()


def test_a_degenerate_holdout_does_not_decide(home, service_config):
    """A burst of events by one user on one item after a snapshot is no ground to
    judge on: the gate waits for enough distinct users and items, and at
    holdout_max_events drops the challenger unjudged."""
    cfg = _cfg(service_config, holdout_events=100, holdout_max_events=400)
    service = RecommenderService.open(home, config=cfg)
    try:
        ts = _traffic(service, 400, seed=1)
        _until(service, lambda: service.learner.challenger is not None)
        user, item = _users(service)[0], _items(service)[0]
        burst = [{"user_id": user, "item_id": item, "timestamp": ts + j} for j in range(300)]
        service.ingest(burst)
        for _ in range(5):
            service.learn_step()
        assert service.counters["challengers"] == 0  # waited instead of deciding
        assert service.learner.challenger is not None
        service.ingest(burst)  # now past holdout_max_events, still one user and item
        service.learn_step()
        assert service.learner.challenger is None
        assert service.counters["challengers"] == 0
        assert service.counters["challengers_dropped"] == 1
    finally:
        service.close()


def test_the_erasure_log_holds_no_ids_and_home_files_are_private(home, service_config):
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        user = _users(service)[0]
        service.delete_user(user)
        text = (home / "erasures.jsonl").read_text()
        assert user not in text
        entry = json.loads(text.splitlines()[-1])
        assert entry["user"] == service.erasures.digest(user) and len(entry["user"]) == 64
        for name in ("erasures.jsonl", "erasure.key", "events.sqlite", "service.json"):
            mode = stat.S_IMODE(os.stat(home / name).st_mode)
            assert mode == 0o600, (name, oct(mode))
    finally:
        service.close()


def test_a_new_home_is_private(tmp_path, trained_home, service_config):
    import shutil

    fresh = tmp_path / "new-home"
    service = RecommenderService.open(
        fresh, data="synthetic", config={**service_config, "synthetic_events": 500}
    )
    try:
        assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700
        for name in ("events.sqlite", "events.sqlite-wal"):
            path = fresh / name
            if path.exists():
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
    finally:
        service.close()
    shutil.rmtree(fresh)


def test_plain_text_erasure_logs_are_rewritten_as_hashes(home, service_config):
    (home / "erasures.jsonl").write_text(json.dumps({"user_id": "old-user", "seq": 5}) + "\n")
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        text = (home / "erasures.jsonl").read_text()
        assert "old-user" not in text
        assert service.erasures.erased_among(["old-user", "other"], after_seq=4) == ["old-user"]
        assert service.erasures.erased_among(["old-user"], after_seq=5) == []
    finally:
        service.close()


def test_files_an_older_home_left_readable_become_private(home, service_config):
    for name in ("events.sqlite", "service.json"):
        os.chmod(home / name, 0o644)
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        for name in ("events.sqlite", "service.json"):
            assert stat.S_IMODE(os.stat(home / name).st_mode) == 0o600, name
    finally:
        service.close()


@pytest.mark.parametrize("line", ["{not json", '{"user": "x"}', '{"seq": 3}'])
def test_a_torn_erasure_line_is_skipped(home, service_config, line):
    (home / "erasures.jsonl").write_text(json.dumps({"user": "ab", "seq": 2}) + "\n" + line)
    service = RecommenderService.open(home, config=_cfg(service_config))
    try:
        assert service.erasures.generation == 1
    finally:
        service.close()


def test_the_erasure_log_is_shared_between_processes(tmp_path):
    """Two logs on one home folder (an API process and the learner process, or two
    replicas): each reads what the other recorded, and a line torn by a writer that
    crashed cannot swallow the next erasure."""
    from lifelongrec.serving._erasure import ERASURES_FILE, ErasureLog

    a, b = ErasureLog(tmp_path), ErasureLog(tmp_path)
    a.record("u1", 10)
    assert b.generation == 0 and b.refresh() == 1 and b.refresh() == 0
    assert b.erased_among(["u1", "u2"], 5) == ["u1"]
    b.record("u2", 20)
    assert a.refresh() == 1 and a.generation == b.generation == 2
    assert a.since(0) == b.since(0) == {a.digest("u1"): 10, a.digest("u2"): 20}
    # A writer died mid-line: readers wait for the newline, the next writer ends it.
    with open(tmp_path / ERASURES_FILE, "ab") as fh:
        fh.write(b'{"user": "abc')
    assert a.refresh() == 0
    a.record("u3", 30)
    assert b.refresh() == 1 and b.erased_among(["u3"], 29) == ["u3"]
    assert ErasureLog(tmp_path).generation == 3  # the torn line is skipped on reading
