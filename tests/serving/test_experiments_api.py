"""Online experiments in the service: the HTTP API (create, list, get, stop) and its
errors, sticky A/B assignment, interleaved answers, counts that survive a restart, and
the automatic decision (a worse challenger rejected, a better one promoted, a guardrail
breach rejected)."""

import time

import pytest

from lifelongrec._errors import ParameterError
from lifelongrec.models import Popularity
from lifelongrec.serving import RecommenderService

READ_KEY = "read-key-0123456789"  # the keys fixture of conftest.py
WRITE_KEY = "write-key-0123456789"
FAST = {"experiment_min_impressions": 20}
# Latency of a tiny model on a busy test machine is noise: the decision tests turn the
# latency guardrails off (their own test checks them).
NO_GUARDRAILS = {"max_p99_ratio": None, "max_p99_ms": None}


def _challenger(service, kind="copy", gate_rejected=False):
    """Register a challenger version: a copy of the champion, or a popularity model of
    the stored events; optionally as the promotion gate's reject."""
    if kind == "copy":
        model = service.registry.load(service.live_version)
    else:
        events = service.store.read()
        model = Popularity().fit(events[["user_id", "item_id", "timestamp"]])
    extra = {}
    if gate_rejected:
        extra = {
            "status": "rejected",
            "decision": {"promoted": False, "reason": "ndcg@10 0.01 < 0.02 - tolerance"},
        }
    seq = service.store.last_seq
    info = service.registry.register(model, data={"last_seq": int(seq)}, **extra)
    return info.version


def _users(service, n=60):
    return sorted(service.live_model.known_users())[:n]


def _click(service, out, favour=None, every=True):
    """Click the items of an answer (all of them, or only those of arm ``favour``)."""
    arm = out.get("experiment", {}).get("arm")
    if favour is not None and arm != favour:
        return
    items = out["items"][: (len(out["items"]) if every else 1)]
    now = int(time.time())
    events = [
        {
            "user_id": out["user_id"],
            "item_id": i["item_id"],
            "timestamp": now,
            "event_type": "click",
        }
        for i in items
    ]
    if events:
        service.ingest(events, request_ids=[out["request_id"]] * len(events))


@pytest.fixture
def open_service(home, service_config):
    opened = []

    def open_(**settings):
        s = RecommenderService.open(home, config={**service_config, **FAST, **settings})
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def fast_service(open_service):
    return open_service()


@pytest.fixture
def api(fast_service, keys):
    from fastapi.testclient import TestClient

    from lifelongrec.serving import create_app

    with TestClient(create_app(fast_service, keys, max_body_bytes=200_000)) as c:
        c.headers["X-API-Key"] = WRITE_KEY
        yield c


# ---------------------------------------------------------------------- the API
def test_create_list_get_and_stop(api, fast_service):
    version = _challenger(fast_service)
    body = {"name": "copy vs champion", "arms": [{"name": "fresh", "version": version}]}
    r = api.post("/experiments", json=body)
    assert r.status_code == 201, r.text
    e = r.json()
    keys = {"id", "name", "design", "status", "primary_metric", "alpha", "auto"}
    keys |= {"created_at", "updated_at", "ended_at", "reason", "arms", "verdict"}
    assert keys <= set(e)
    assert e["status"] == "running" and e["design"] == "ab" and e["primary_metric"] == "ctr"
    assert e["alpha"] == 0.05 and e["auto"] is True and e["ended_at"] is None
    assert [a["name"] for a in e["arms"]] == ["champion", "fresh"]
    assert [a["share"] for a in e["arms"]] == [0.5, 0.5]
    assert e["arms"][0]["version"] == fast_service.live_version
    assert e["arms"][1]["version"] == version
    arm_keys = {"name", "version", "share", "impressions", "clicks", "conversions", "ctr"}
    arm_keys |= {"users", "requests", "errors", "p99_ms"}
    assert arm_keys <= set(e["arms"][0])
    assert {"decision", "p_value", "effect", "ci", "looks"} <= set(e["verdict"])

    assert api.get("/health").json()["experiment"] == e["id"]
    listed = api.get("/experiments", headers={"X-API-Key": READ_KEY}).json()["experiments"]
    assert [x["id"] for x in listed] == [e["id"]]
    got = api.get(f"/experiments/{e['id']}", headers={"X-API-Key": READ_KEY}).json()
    assert got["id"] == e["id"] and got["verdict"]["looks"] >= 1

    out = api.get(f"/users/{_users(fast_service)[0]}/recommendations?k=5").json()
    assert out["experiment"]["id"] == e["id"] and out["experiment"]["arm"] in ("champion", "fresh")

    stopped = api.post(f"/experiments/{e['id']}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped" and stopped.json()["ended_at"] is not None
    assert api.get("/health").json()["experiment"] is None
    again = api.post(f"/experiments/{e['id']}/stop")
    assert again.status_code == 409 and "ended already" in again.json()["detail"]
    # after the experiment: answers without one
    out = api.get(f"/users/{_users(fast_service)[0]}/recommendations?k=5").json()
    assert "experiment" not in out and out["model_version"] == fast_service.live_version


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"design": "split"}, "body.design"),
        (
            {"arms": [{"version": "v000002", "share": 0.3}, {"name": "champion", "share": 0.3}]},
            "arms.share",
        ),
        ({"arms": [{"version": "v000002", "share": 1.5}]}, "body.arms.0.share"),
        ({"arms": []}, "body.arms"),
        ({"arms": [{"name": "champion"}]}, "arms"),
        ({"arms": [{"name": "x"}]}, "arms.0"),
        ({"design": "interleaving", "arms": [{"version": "v000002", "share": 0.5}]}, "arms.share"),
        ({"primary_metric": "revenue"}, "body.primary_metric"),
        ({"alpha": 1.5}, "body.alpha"),
        ({"guardrails": {"max_error_rate": 2}}, "body.guardrails.max_error_rate"),
        ({"surprise": 1}, "body.surprise"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(api, fast_service, body, field):
    _challenger(fast_service)
    full = {"name": "bad", "arms": [{"version": "v000002"}], **body}
    r = api.post("/experiments", json=full)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_unknown_version_is_a_404(api):
    r = api.post("/experiments", json={"name": "x", "arms": [{"version": "v000099"}]})
    assert r.status_code == 404 and "v000099" in r.json()["detail"]
    r = api.post("/experiments", json={"name": "x", "arms": [{"version": "0"}]})
    assert r.status_code == 404
    assert api.get("/experiments/exp-nothing").status_code == 404
    assert api.post("/experiments/exp-nothing/stop").status_code == 404


def test_the_gate_is_the_first_filter(api, fast_service):
    rejected = _challenger(fast_service, gate_rejected=True)
    body = {"name": "x", "arms": [{"version": rejected}]}
    r = api.post("/experiments", json=body)
    assert r.status_code == 409
    assert "promotion gate rejected" in r.json()["detail"] and "force" in r.json()["detail"]
    r = api.post("/experiments", json={**body, "force": True})
    assert r.status_code == 201 and r.json()["forced"] is True
    # one experiment at a time; the champion is no challenger
    assert api.post("/experiments", json={**body, "force": True}).status_code == 409
    champ = {"name": "x", "arms": [{"version": fast_service.live_version}]}
    api.post(f"/experiments/{r.json()['id']}/stop")
    r = api.post("/experiments", json=champ)
    assert r.status_code == 409 and "champion already" in r.json()["detail"]


def test_a_read_key_cannot_create_or_stop(api, fast_service):
    version = _challenger(fast_service)
    body = {"name": "x", "arms": [{"version": version}]}
    r = api.post("/experiments", json=body, headers={"X-API-Key": READ_KEY})
    assert r.status_code == 403
    e = api.post("/experiments", json=body).json()
    r = api.post(f"/experiments/{e['id']}/stop", headers={"X-API-Key": READ_KEY})
    assert r.status_code == 403
    assert api.get("/experiments", headers={"X-API-Key": "nobody"}).status_code == 401


def test_python_callers_get_named_errors(fast_service):
    version = _challenger(fast_service)
    with pytest.raises(ParameterError, match="sum to 1"):
        fast_service.create_experiment("x", [{"version": version, "share": 0.2}, {"share": 0.2}])
    with pytest.raises(ParameterError, match="design"):
        fast_service.create_experiment("x", [{"version": version}], design="split")
    with pytest.raises(ParameterError, match="exactly one challenger"):
        fast_service.create_experiment(
            "x", [{"version": version}, {"version": "v000001"}], design="interleaving"
        )


# ------------------------------------------------------------------ serving
def test_assignment_is_sticky_and_follows_the_shares(fast_service):
    version = _challenger(fast_service)
    e = fast_service.create_experiment("x", [{"version": version, "share": 0.25}])
    # any user id has an arm: 1,000 visitors (cold start) and the known users
    users = [f"visitor-{j}" for j in range(1000)] + _users(fast_service)
    first = {u: fast_service.recommend(u, k=3)["experiment"]["arm"] for u in users}
    again = {u: fast_service.recommend(u, k=3)["experiment"]["arm"] for u in users}
    assert first == again
    share = sum(a != "champion" for a in first.values()) / len(users)
    assert 0.18 < share < 0.32  # > 4 sd
    out = fast_service.recommend(users[0], k=3)
    expected = version if first[users[0]] != "champion" else e["arms"][0]["version"]
    assert out["model_version"] == expected
    fast_service.flush_impressions()
    shown = fast_service.store.impressions(request_id=out["request_id"])
    assert set(shown["arm"]) == {f"{e['id']}:{first[users[0]]}"}
    got = fast_service.experiment(e["id"])
    assert sum(a["requests"] for a in got["arms"]) == 2 * len(users) + 1
    assert sum(a["users"] for a in got["arms"]) == len(users)


def test_several_challengers_share_the_traffic(fast_service):
    first = _challenger(fast_service)
    second = _challenger(fast_service, kind="popularity")
    arms = [{"version": first, "share": 0.2}, {"version": second, "share": 0.3}]
    e = fast_service.create_experiment("x", arms)
    assert [a["share"] for a in e["arms"]] == pytest.approx([0.5, 0.2, 0.3])
    users = [f"visitor-{j}" for j in range(1000)]
    got = [fast_service.recommend(u, k=2) for u in users]
    names = [o["experiment"]["arm"] for o in got]
    for name, share in (("champion", 0.5), ("challenger-0", 0.2), ("challenger-1", 0.3)):
        assert abs(names.count(name) / len(users) - share) < 0.07  # > 4 sd
    versions = {o["experiment"]["arm"]: o["model_version"] for o in got}
    assert versions == {
        "champion": e["arms"][0]["version"],
        "challenger-0": first,
        "challenger-1": second,
    }


def test_an_interleaved_answer_merges_both_rankers(fast_service):
    version = _challenger(fast_service, kind="popularity")
    e = fast_service.create_experiment("x", [{"version": version}], design="interleaving")
    assert [a["share"] for a in e["arms"]] == [None, None]
    user = _users(fast_service)[0]
    out = fast_service.recommend(user, k=10, details=True)
    ids = [i["item_id"] for i in out["items"]]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert out["experiment"] == {"id": e["id"], "arm": "interleaved"}
    assert all("title" in i for i in out["items"])
    fast_service.flush_impressions()
    shown = fast_service.store.impressions(request_id=out["request_id"])
    assert shown["item_id"].tolist() == ids
    arms = set(shown["arm"])
    assert arms == {f"{e['id']}:champion", f"{e['id']}:challenger-0"}
    by_arm = dict(zip(shown["arm"], shown["model_version"], strict=True))
    assert by_arm[f"{e['id']}:challenger-0"] == version
    # a click is credited to the ranker that contributed the item
    clicked = shown[shown["arm"] == f"{e['id']}:challenger-0"]["item_id"].iloc[0]
    now = int(time.time())
    fast_service.ingest(
        [{"user_id": user, "item_id": clicked, "timestamp": now, "event_type": "click"}],
        request_ids=[out["request_id"]],
    )
    got = fast_service.experiment(e["id"])
    assert [a["clicks"] for a in got["arms"]] == [0, 1]
    assert got["credits"]["wins_challenger"] == 1


def test_experiment_and_counts_survive_a_restart(open_service):
    service = open_service()
    version = _challenger(service)
    e = service.create_experiment("x", [{"version": version}], auto=False)
    users = _users(service, 30)
    for u in users:
        _click(service, service.recommend(u, k=4), every=False)
    before = service.experiment(e["id"])
    # the store's online metrics, per arm, agree with the experiment's own counts
    rows = {r["arm"]: r for r in service.online_metrics() if r["arm"]}
    for a in before["arms"]:
        row = rows[f"{e['id']}:{a['name']}"]
        assert (row["impressions"], row["clicks"]) == (a["impressions"], a["clicks"])
        assert (row["requests"], row["users"]) == (a["requests"], a["users"])
    service.close()
    again = open_service()
    after = again.experiment(e["id"])
    assert after["status"] == "running"
    for a, b in zip(before["arms"], after["arms"], strict=True):
        for key in ("impressions", "clicks", "requests", "users"):
            assert a[key] == b[key], key
    assert sum(a["clicks"] for a in after["arms"]) == len(users)
    # the challenger serves again after the restart, and counting goes on
    out = again.recommend(users[0], k=4)
    assert out["experiment"]["id"] == e["id"]
    assert sum(a["requests"] for a in again.experiment(e["id"])["arms"]) == len(users) + 1


# ---------------------------------------------------------------- decisions
def _drive(service, favour, rounds=3, n=60):
    users = _users(service, n)
    for _ in range(rounds):
        for u in users:
            _click(service, service.recommend(u, k=5), favour=favour)


def test_a_worse_challenger_is_rejected(fast_service):
    version = _challenger(fast_service)
    champion = fast_service.live_version
    e = fast_service.create_experiment(
        "x", [{"version": version}], tau=0.1, guardrails=NO_GUARDRAILS
    )
    _drive(fast_service, favour="champion")
    got = fast_service.experiment(e["id"])
    assert got["status"] == "rejected", got
    assert got["verdict"]["decision"] == "challenger_worse"
    assert got["verdict"]["effect"] < 0 and got["verdict"]["p_value"] <= 0.05
    assert "significantly worse" in got["reason"] and got["arms"][1]["status"] == "rejected"
    assert fast_service.live_version == champion
    out = fast_service.recommend(_users(fast_service)[0], k=3)
    assert "experiment" not in out


def test_a_better_challenger_is_promoted(fast_service):
    version = _challenger(fast_service)
    arms = [{"version": version, "name": "better"}]
    e = fast_service.create_experiment("x", arms, tau=0.1, guardrails=NO_GUARDRAILS)
    _drive(fast_service, favour="better")
    fast_service.experiment_tick()
    got = fast_service.experiment(e["id"])
    assert got["status"] == "promoted", (got["reason"], got["verdict"], got["arms"])
    assert got["verdict"]["decision"] == "challenger_better" and got["verdict"]["effect"] > 0
    lo, hi = got["verdict"]["ci"]
    assert 0 < lo < got["verdict"]["effect"] < hi
    assert fast_service.live_version == version
    assert fast_service.registry.champion() == version


def test_nothing_is_decided_before_the_minimum_sample(open_service):
    service = open_service(experiment_min_impressions=10_000)
    version = _challenger(service)
    e = service.create_experiment("x", [{"version": version, "name": "better"}], tau=0.1)
    _drive(service, favour="better", rounds=2)
    got = service.experiment(e["id"])
    assert got["status"] == "running" and got["verdict"]["decision"] == "continue"
    assert got["verdict"]["p_value"] < 0.05  # significant already, but not enough data


def test_a_guardrail_breach_rejects_the_challenger(fast_service):
    version = _challenger(fast_service)
    e = fast_service.create_experiment(
        "x",
        [{"version": version, "share": 0.8}],
        guardrails={"max_p99_ms": 1e-6, "max_p99_ratio": None},
    )
    _drive(fast_service, favour=None, rounds=1)  # at most 60 requests per arm
    assert fast_service.experiment(e["id"])["status"] == "running"  # too few requests yet
    _drive(fast_service, favour=None, rounds=5)
    got = fast_service.experiment(e["id"])
    assert got["arms"][1]["requests"] >= 100
    assert got["status"] == "rejected" and got["verdict"]["decision"] == "guardrail_breached"
    assert "max_p99_ms" in got["reason"]


def test_max_seconds_stops_an_experiment(fast_service):
    version = _challenger(fast_service)
    e = fast_service.create_experiment("x", [{"version": version}], max_seconds=0.01)
    time.sleep(0.05)
    got = fast_service.experiment(e["id"])
    assert got["status"] == "stopped" and "max_seconds" in got["reason"]


def test_an_erased_user_leaves_the_challenger_too(fast_service):
    version = _challenger(fast_service)
    fast_service.create_experiment("x", [{"version": version, "share": 0.9}])
    user = _users(fast_service)[0]
    fast_service.recommend(user, k=3)
    assert fast_service.delete_user(user)["state_erased"]
    out = fast_service.recommend(user, k=3)
    assert out["cold_start"]


def test_interleaving_credits_the_clicked_ranker_and_decides(fast_service):
    version = _challenger(fast_service, kind="popularity")
    e = fast_service.create_experiment(
        "x", [{"version": version}], design="interleaving", tau=0.2, guardrails=NO_GUARDRAILS
    )
    team = f"{e['id']}:challenger-0"
    for user in _users(fast_service, 40):
        out = fast_service.recommend(user, k=6)
        fast_service.flush_impressions()
        shown = fast_service.store.impressions(request_id=out["request_id"])
        mine = shown[shown["arm"] == team]["item_id"].tolist()[:1]
        now = int(time.time())  # a click without a request id: the attribution window
        fast_service.ingest([{"user_id": user, "item_id": i, "timestamp": now} for i in mine])
    got = fast_service.experiment(e["id"])
    assert got["status"] == "promoted", (got["reason"], got["verdict"])
    assert got["credits"]["wins_challenger"] >= 20 and got["credits"]["wins_champion"] == 0
    assert fast_service.live_version == version


def test_interleaving_items_both_rankers_propose_credit_neither(open_service):
    """A challenger that ranks as the champion does proposes every item in the same
    round as the champion: each is shown once, logged as the champion's, and clicks on
    it credit neither ranker."""
    fast_service = open_service()
    version = _challenger(fast_service)  # a copy of the champion
    e = fast_service.create_experiment(
        "x", [{"version": version}], design="interleaving", tau=0.2, guardrails=NO_GUARDRAILS
    )
    for user in _users(fast_service, 30):
        out = fast_service.recommend(user, k=5)
        assert out["experiment"]["arm"] == "interleaved"
        _click(fast_service, out)
    fast_service.flush_impressions()
    shown = fast_service.store.impressions()
    assert set(shown["arm"]) == {f"{e['id']}:champion"}
    got = fast_service.experiment(e["id"])
    assert got["status"] == "running"
    champion, challenger = got["arms"]
    assert champion["impressions"] == len(shown) and challenger["impressions"] == 0
    assert champion["clicks"] > 0 and challenger["clicks"] == 0
    assert got["credits"]["wins_challenger"] == got["credits"]["wins_champion"] == 0
    assert got["credits"]["neutral_impressions"] == len(shown)  # says why: all shared
    fast_service.close()  # the count survives a restart
    again = open_service()
    assert again.experiment(e["id"])["credits"]["neutral_impressions"] == len(shown)


def test_conversion_as_the_primary_metric(fast_service):
    version = _challenger(fast_service)
    arms = [{"version": version, "name": "better"}]
    e = fast_service.create_experiment(
        "x", arms, primary_metric="conversion", tau=0.1, guardrails=NO_GUARDRAILS
    )
    for _ in range(3):
        for user in _users(fast_service, 60):
            out = fast_service.recommend(user, k=5)
            if "experiment" not in out:  # the experiment thread decided already
                break
            kind = "purchase" if out["experiment"]["arm"] == "better" else "click"
            item = out["items"][0]["item_id"]
            event = {"user_id": user, "item_id": item, "event_type": kind}
            fast_service.ingest(
                [{**event, "timestamp": int(time.time())}], [None], [out["request_id"]]
            )
    got = fast_service.experiment(e["id"])
    assert got["status"] == "promoted", (got["reason"], got["verdict"])
    champion, better = got["arms"]
    assert champion["conversions"] == 0 and better["conversions"] > 0
    assert champion["clicks"] > 0  # clicks count, but conversions decide


def test_a_worse_challenger_among_several_leaves_the_others_running(fast_service):
    first, second = _challenger(fast_service), _challenger(fast_service)
    arms = [{"version": first, "name": "worse"}, {"version": second, "name": "same"}]
    e = fast_service.create_experiment("x", arms, tau=0.1, guardrails=NO_GUARDRAILS)
    users = _users(fast_service, 60)
    for _ in range(3):
        for u in users:
            out = fast_service.recommend(u, k=5)
            # the worse arm's users get the champion outside the experiment once the
            # experiment thread rejected it
            if out.get("experiment", {}).get("arm") in ("champion", "same"):
                _click(fast_service, out)
    got = fast_service.experiment(e["id"])
    assert got["status"] == "running"
    assert [a["status"] for a in got["arms"]] == ["running", "rejected", "running"]
    assert got["arms"][1]["decision"] == "challenger_worse"
    outs = [fast_service.recommend(u, k=3) for u in users]
    assert {o["experiment"]["arm"] for o in outs if "experiment" in o} <= {"champion", "same"}
    assert any("experiment" not in o for o in outs)  # the worse arm's users: the champion


def test_the_experiment_thread_decides_without_being_asked(open_service):
    service = open_service(experiment_tick_seconds=0.05)
    version = _challenger(service)
    e = service.create_experiment("x", [{"version": version}], tau=0.1, guardrails=NO_GUARDRAILS)
    _drive(service, favour="champion")
    deadline = time.monotonic() + 10
    while service.health()["experiment"] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.health()["experiment"] is None  # ended by the thread, not by a GET
    assert service.experiment(e["id"])["status"] == "rejected"
