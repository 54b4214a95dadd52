"""The background learner with requests going on: challengers are gated and swapped in
while recommendation requests keep being answered, none failing."""

import threading
import time

import numpy as np

from lifelongrec.serving import RecommenderService


def test_models_swap_under_load_without_failing_a_request(home, service_config):
    cfg = {
        **service_config,
        "background": True,
        "learner_batch": 32,
        "challenger_every": 150,
        "holdout_events": 40,
        "gate_tolerance": 1.0,  # accept any challenger: this test is about the swap
    }
    service = RecommenderService.open(home, config=cfg)
    model = service._live.model
    users = sorted(u for u in model.user_ids_ if isinstance(u, str))[:30]
    items = [i for i in model.item_ids_ if isinstance(i, str)]
    answers, failures, versions = [], [], set()
    stop = threading.Event()

    def ask():
        rng = np.random.default_rng(1)
        while not stop.is_set():
            try:
                out = service.recommend(users[int(rng.integers(len(users)))], k=10)
                answers.append(len(out["items"]))
                versions.add(out["model_version"])
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(exc))

    readers = [threading.Thread(target=ask) for _ in range(2)]
    try:
        for t in readers:
            t.start()
        rng = np.random.default_rng(0)
        ts = 2_000_000_000
        deadline = time.monotonic() + 90
        while service.counters["promotions"] < 2 and time.monotonic() < deadline:
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
            time.sleep(0.05)
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
