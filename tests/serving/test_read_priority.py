"""Ingestion gives way to the serving reads in flight: the gate itself, the app counting
the reads, and the service waiting (bounded) before each step of a batch."""

import threading
import time

import pytest

from lifelongrec import ParameterError
from lifelongrec.serving import RecommenderService, ServiceConfig
from lifelongrec.serving._shared import ReadGate

T0 = 2_000_000_000


# ------------------------------------------------------------------- the gate
def test_a_gate_without_reads_in_flight_never_waits():
    gate = ReadGate(max_wait=5.0)
    t0 = time.perf_counter()
    assert gate.give_way() == 0.0
    assert time.perf_counter() - t0 < 0.5
    assert gate.active == 0


def test_a_step_waits_for_the_read_in_flight_to_end():
    gate = ReadGate(max_wait=5.0)
    gate.enter()
    timer = threading.Timer(0.2, gate.exit)
    timer.start()
    waited = gate.give_way()
    timer.join()
    assert 0.15 <= waited < 4.0  # until the read ended, not the longest wait
    assert gate.active == 0


def test_every_read_in_flight_must_end():
    gate = ReadGate(max_wait=5.0)
    gate.enter()
    gate.enter()

    def end_both() -> None:
        time.sleep(0.05)
        gate.exit()
        time.sleep(0.2)
        gate.exit()

    t = threading.Thread(target=end_both)
    t.start()
    waited = gate.give_way()
    t.join()
    assert waited >= 0.2  # not woken by the first of the two
    assert gate.active == 0


def test_a_read_that_does_not_end_holds_a_step_at_most_max_wait():
    gate = ReadGate(max_wait=0.1)
    gate.enter()
    waited = gate.give_way()
    assert 0.09 <= waited < 2.0
    assert gate.active == 1  # the read itself is left alone
    gate.exit()


def test_max_wait_zero_turns_the_gate_off():
    gate = ReadGate(max_wait=0.0)
    gate.enter()
    assert gate.give_way() == 0.0


def test_a_read_steps_aside_while_it_waits_for_ingestion():
    gate = ReadGate(max_wait=5.0)
    with gate.aside():  # not in a read: nothing to step aside from
        assert gate.active == 0
    with gate.reading():
        assert gate.active == 1
        with gate.aside():
            assert gate.active == 0
            assert _aside_active(gate) == 0  # nested: stepped aside once, not twice
            done = []
            t = threading.Thread(target=lambda: done.append(gate.give_way()))
            t.start()
            t.join(timeout=2.0)
            assert done == [0.0]  # ingestion does not wait for a read that waits for it
        assert gate.active == 1
    assert gate.active == 0
    other = []  # another thread's context is not a read
    t = threading.Thread(target=lambda: other.append(_aside_active(gate)))
    with gate.reading():
        t.start()
        t.join()
    assert other == [1]


def _aside_active(gate):
    with gate.aside():
        return gate.active


# ------------------------------------------------------------------ the setting
def test_the_setting_defaults_to_20_ms_and_rejects_negative_waits():
    assert ServiceConfig().limits.read_priority_ms == ServiceConfig().read_priority_ms == 20.0
    assert ServiceConfig.from_dict({"read_priority_ms": 0}).limits.read_priority_ms == 0
    with pytest.raises(ParameterError, match="read_priority_ms"):
        ServiceConfig.from_dict({"limits": {"read_priority_ms": -1}})
    with pytest.raises(ParameterError, match="read_priority_ms"):
        ServiceConfig.from_dict({"read_priority_ms": "soon"})


# ---------------------------------------------------------------- the service
def _event(service, j=0):
    user = service.live_model.known_users()[j]
    item = service.live_model.known_items()[j]
    return {"user_id": user, "item_id": item, "timestamp": T0 + j}


def test_ingestion_waits_for_a_read_then_stores_and_reflects_the_event(home, service_config):
    config = {**service_config, "read_priority_ms": 2_000}
    with RecommenderService.open(home, config=config) as service:
        user = service.live_model.known_users()[0]
        top = service.recommend(user, k=1)["items"][0]["item_id"]
        event = {"user_id": user, "item_id": top, "timestamp": T0}
        before = service.store.last_seq
        service.read_gate.enter()
        timer = threading.Timer(0.3, service.read_gate.exit)
        timer.start()
        t0 = time.perf_counter()
        result = service.ingest(event)
        took = time.perf_counter() - t0
        timer.join()
        assert result["n_written"] == 1 and service.store.last_seq == before + 1
        assert 0.25 <= took < 1.9  # waited for the read, not for the longest wait
        assert service.counters["ingest_read_waits"] >= 1
        assert service.counters["ingest_read_wait_seconds"] >= 0.25
        # observed by the live model: the user's top item, now seen, is left out
        answer = service.recommend(user, k=10)
        assert top not in [r["item_id"] for r in answer["items"]]


def test_with_the_gate_off_ingestion_does_not_wait(home, service_config):
    config = {**service_config, "read_priority_ms": 0}
    with RecommenderService.open(home, config=config) as service:
        service.read_gate.enter()  # a read that never ends
        t0 = time.perf_counter()
        assert service.ingest(_event(service))["n_written"] == 1
        assert time.perf_counter() - t0 < 5.0
        assert service.counters["ingest_read_waits"] == 0
        service.read_gate.exit()


def test_the_app_counts_serving_reads_and_nothing_else(service, client, monkeypatch):
    """A GET under /users/ or /items/ is in flight while it runs; a write, /health and
    a failed read are not left counted."""
    seen = {}
    gate = service.read_gate
    for name in ("recommend", "similar", "health"):
        real = getattr(service, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            # in flight, and marked as a read (stepping aside takes it out of the count)
            seen[_name] = (gate.active, _aside_active(gate))
            return _real(*args, **kwargs)

        monkeypatch.setattr(service, name, spy)
    user = service.live_model.known_users()[0]
    item = service.live_model.known_items()[0]
    assert client.get(f"/users/{user}/recommendations?k=3").status_code == 200
    assert client.get(f"/items/{item}/similar?k=3").status_code == 200
    assert client.get("/health").status_code == 200
    assert seen == {"recommend": (1, 0), "similar": (1, 0), "health": (0, 0)}
    assert client.get("/users/nobody/recommendations?k=0").status_code == 422
    assert client.get("/items/no-such-item/similar").status_code == 404
    assert client.post("/events", json=_event(service)).status_code == 201
    assert gate.active == 0  # every read that began has ended, errors included
    metrics = client.get("/metrics").text
    assert "lifelongrec_ingest_read_waits " in metrics
    assert "lifelongrec_ingest_read_wait_seconds " in metrics
