"""The background learner with requests going on: challengers are gated and swapped in
while recommendation requests keep being answered, none failing.

The test synchronises on the learner's rounds and on the readers' answers, not on
time: after each batch of events it waits for a learner round that started after the
batch, so however slow the machine, the same rounds see the same events. The waits
have a hang guard (minutes) that only a broken service reaches.
"""

import threading

import numpy as np

from lifelongrec.serving import RecommenderService

HANG_GUARD = 600  # seconds; never reached unless the learner thread is stuck


def test_models_swap_under_load_without_failing_a_request(home, service_config):
    cfg = {
        **service_config,
        "background": True,
        "learner_mode": "thread",  # the learner process has its own test
        "learner_batch": 32,
        "challenger_every": 150,
        "holdout_events": 40,
        "gate_tolerance": 1.0,  # accept any challenger: this test is about the swap
    }
    service = RecommenderService.open(home, config=cfg)
    model = service.live_model
    first = service.live_version
    users = sorted(model.known_users())[:30]
    items = model.known_items()
    answers, failures, versions = [], [], set()
    stop = threading.Event()
    seen = threading.Condition()

    def ask():
        rng = np.random.default_rng(1)
        while not stop.is_set():
            try:
                out = service.recommend(users[int(rng.integers(len(users)))], k=10)
                answers.append(len(out["items"]))
                with seen:
                    versions.add(out["model_version"])
                    seen.notify_all()
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(exc))

    def answered_by(version):
        with seen:
            return seen.wait_for(lambda: version in versions or failures, HANG_GUARD)

    readers = [threading.Thread(target=ask) for _ in range(2)]
    try:
        for t in readers:
            t.start()
        assert answered_by(first)  # the readers are answering before anything changes
        rng = np.random.default_rng(0)
        ts = 2_000_000_000
        # Each challenger needs 150 learned events and a fair 40-event holdout after it:
        # about 4 batches. 200 batches is far more than two promotions need.
        for _ in range(200):
            if service.counters["promotions"] >= 2:
                break
            batch = [
                {
                    "user_id": users[int(rng.integers(len(users)))],
                    "item_id": items[int(rng.integers(len(items)))],
                    "timestamp": ts + j,
                }
                for j in range(50)
            ]
            ts += 50
            service.ingest(batch)
            assert service.learner.wait_round(HANG_GUARD), "the learner thread is stuck"
        assert answered_by(service.live_version)  # the readers see the last champion
    finally:
        stop.set()
        for t in readers:
            t.join()
        service.close()
    assert service.counters["promotions"] >= 2, service.counters
    assert service.counters["learner_errors"] == 0
    assert not failures, failures[:3]
    assert answers and min(answers) == 10
    assert len(versions) >= 2  # requests were answered by more than one model
    listing = service.registry.versions()
    assert [v.parent for v in listing[1:3]] == ["v000001", "v000002"]
