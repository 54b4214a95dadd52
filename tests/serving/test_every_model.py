"""Every model ``lifelongrec models`` lists serves in the real-time service.

For each model a service is opened on a small synthetic world (no background thread) and
driven the way the HTTP layer drives it: a recommendation for a known user, an event
that shows in that user's very next answer, a brand-new user served after their first
event, similar items, an erasure after which the user is cold, learner rounds, and a
memory cap that evicts idle users (forget) and brings them back from the store (observe).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lifelongrec.cli import app
from lifelongrec.data import synthetic
from lifelongrec.models import MODELS
from lifelongrec.serving import RecommenderService

#: Small fits: the whole file runs in seconds per model.
PARAMS: dict[str, dict] = {
    "ease": {"l2": 10.0},
    "als": {"factors": 8, "iterations": 3},
    "bpr": {"factors": 8, "iterations": 20},
    "hybrid": {"component_params": {"ease": {"l2": 10.0}}},
    "sequential": {
        "dim": 16,
        "n_heads": 1,
        "n_layers": 1,
        "max_len": 8,
        "epochs": 2,
        "text_encoder": None,
        "validation": False,
        "verbose": False,
    },
}
NAMES = sorted(MODELS)
#: Variants served beside the models' own small fits: ``name:variant`` -> model params.
#: ``item_age`` and ``release_attribute`` widen the vectors the index holds by the
#: age-bias column (the synthetic catalogue's ``arrival`` is each item's release).
VARIANTS = {
    "sequential:item_age": {**PARAMS["sequential"], "item_age": True},
    "sequential:release": {**PARAMS["sequential"], "release_attribute": "arrival"},
}


def config(name: str, **extra) -> dict:
    return {
        "model": name.split(":")[0],
        "model_params": VARIANTS.get(name, PARAMS.get(name, {})),
        "background": False,
        "learner_batch": 16,
        "challenger_every": 0,
        "learner_share": 1.0,
        "max_batch": 500,
        **extra,
    }


@pytest.fixture(scope="module")
def world():
    return synthetic(n_events=3_000, seed=0)


def ids_of(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def test_the_listed_models_are_the_ones_checked_here():
    out = CliRunner().invoke(app, ["models"])
    assert out.exit_code == 0, out.output
    listed = sorted(line.split()[0] for line in out.output.splitlines() if line.strip())
    assert listed == NAMES


@pytest.mark.parametrize("name", [*NAMES, *VARIANTS])
def test_model_serves_ingests_and_erases(name, world, tmp_path):
    ev = world.events
    user = str(ev["user_id"].value_counts().index[0])  # the most active user
    t = int(ev["timestamp"].max()) + 100
    with RecommenderService.open(tmp_path / "home", data=world, config=config(name)) as service:
        first = service.recommend(user, k=5)
        assert not first["cold_start"] and len(first["items"]) == 5
        top = ids_of(first)[0]

        # an event shows in the user's very next answer
        assert service.ingest({"user_id": user, "item_id": top, "timestamp": t})["n_written"] == 1
        after = service.recommend(user, k=5)
        assert not after["cold_start"] and len(after["items"]) == 5
        assert top not in ids_of(after)
        assert ids_of(after) != ids_of(first)

        # a brand-new user: cold before, served from their first event after
        new = "user-never-seen-before"
        assert service.recommend(new, k=5)["cold_start"]
        service.ingest({"user_id": new, "item_id": top, "timestamp": t + 1})
        fresh = service.recommend(new, k=5)
        assert not fresh["cold_start"] and len(fresh["items"]) == 5
        assert top not in ids_of(fresh)

        similar = service.similar(top, k=5)
        assert len(similar["items"]) == 5 and top not in ids_of(similar)

        # the learner takes the stored events in (partial_fit, or the online path, whose
        # parameter step waits for a full batch)
        service.learn_step()
        assert service.learner_stats()["n_events"] >= 2

        # erasure: the user is cold at once, in the live model and in the trainer
        out = service.delete_user(user)
        assert out["state_erased"] and out["events_erased"] > 0
        gone = service.recommend(user, k=5)
        assert gone["cold_start"]
        assert int(service.learner.trainer.user_rows([user])[0]) == -1
        service.learn_step()
        assert service.recommend(user, k=5)["cold_start"]
        # ... and comes back as a new user with a new event
        service.ingest({"user_id": user, "item_id": top, "timestamp": t + 2})
        back = service.recommend(user, k=5)
        assert not back["cold_start"] and top not in ids_of(back)
        service.learn_step()
        assert service.learner_stats()["n_events"] >= 3


@pytest.mark.parametrize("name", [*NAMES, *VARIANTS])
def test_a_reopened_service_keeps_serving_and_erasing(name, world, tmp_path):
    home = tmp_path / "home"
    user = str(world.events["user_id"].iloc[0])
    t = int(world.events["timestamp"].max()) + 100
    with RecommenderService.open(home, data=world, config=config(name)) as service:
        service.delete_user(user)
        other = str(world.events["user_id"].iloc[-1])
        service.ingest({"user_id": other, "item_id": "i000001", "timestamp": t})
    # the champion on disk predates both: the reopened service catches up with the store
    with RecommenderService.open(home, config=config(name)) as service:
        assert service.recommend(user, k=5)["cold_start"]
        answer = service.recommend(other, k=5)
        assert not answer["cold_start"] and "i000001" not in ids_of(answer)


@pytest.mark.parametrize("name", NAMES)
def test_idle_users_are_evicted_and_come_back(name, world, tmp_path):
    cfg = config(name, max_users=20, rehydrate_events=50)
    with RecommenderService.open(tmp_path / "home", data=world, config=cfg) as service:
        model = service.live_model
        n_rows = model.n_users
        held = [u for u in model.known_users() if model.user_rows(u)[0] >= 0]
        assert len(held) <= 20
        evicted = sorted(set(world.events["user_id"].astype(str)) - set(held))
        assert evicted
        t = int(world.events["timestamp"].max()) + 100
        for j, user in enumerate(evicted[:10]):
            answer = service.recommend(user, k=5)  # restored from their stored events
            assert not answer["cold_start"]
            service.ingest({"user_id": user, "item_id": "i000002", "timestamp": t + j})
            assert "i000002" not in ids_of(service.recommend(user, k=5))
        service.learn_step()
        # erased or evicted rows are reused: memory does not grow with the churn
        assert service.live_model.n_users <= n_rows


@pytest.mark.parametrize("name", NAMES)
def test_a_challenger_is_judged_and_swapped_in(name, world, tmp_path):
    cfg = config(
        name,
        challenger_every=100,
        challenger_min_seconds=0,
        holdout_events=40,
        gate_min_users=1,
        gate_min_items=1,
        gate_tolerance=1.0,  # accept any challenger: this test is about the swap
    )
    ev = world.events
    users = sorted(set(ev["user_id"].astype(str)))[:25]
    items = sorted(set(ev["item_id"].astype(str)))[:40]
    t = int(ev["timestamp"].max()) + 100
    with RecommenderService.open(tmp_path / "home", data=world, config=cfg) as service:
        first = service.live_version
        for round_ in range(8):
            batch = [
                {
                    "user_id": users[(7 * j + round_) % len(users)],
                    "item_id": items[(11 * j + 3 * round_) % len(items)],
                    "timestamp": t + 50 * round_ + j,
                }
                for j in range(50)
            ]
            service.ingest(batch)
            for _ in range(3):
                service.learn_step()
            if service.counters["promotions"]:
                break
        assert service.counters["promotions"] >= 1 and service.live_version != first
        last = batch[-1]
        answer = service.recommend(last["user_id"], k=5)
        assert not answer["cold_start"] and last["item_id"] not in ids_of(answer)
        service.delete_user(last["user_id"])
        assert service.recommend(last["user_id"], k=5)["cold_start"]
