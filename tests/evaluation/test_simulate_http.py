"""The closed-loop world driving a real service over HTTP: the per-day figures agree with
what the service stored and measured, reactions carry their answer's request id, new
items reach the catalogue, ``until`` stops a run, errors name the status, and
``lifelongrec simulate --url``."""

import pytest
from typer.testing import CliRunner

from lifelongrec._errors import ParameterError
from lifelongrec.cli import app
from lifelongrec.evaluation import (
    ClosedLoopWorld,
    ServiceCallError,
    SimulationSettings,
    drive_service,
)

KEY = "sim-write-key-0123456789"
# a tiny world; the service's model: popularity (the benchmark's smoke run serves the
# sequential model)
WORLD = dict(n_users=60, n_items=40, n_categories=4, days=2, history_days=3, seed=3)
WORLD |= dict(shift_day=None, new_items_per_day=3)


@pytest.fixture(scope="module")
def settings():
    return SimulationSettings(**WORLD)


@pytest.fixture(scope="module")
def running(tmp_path_factory, settings):
    """A tiny service started on the world's history, served on a loopback port."""
    from lifelongrec.serving import KeyRing, RecommenderService, create_app, serve_in_thread

    home = tmp_path_factory.mktemp("sim-http") / "home"
    history = ClosedLoopWorld(settings).history()
    config = {"model": "popularity", "background": False}
    service = RecommenderService.open(home, data=history, config=config)
    try:
        app_ = create_app(service, KeyRing.from_env(f"{KEY}:read,write"))
        with serve_in_thread(app_, log_level="warning") as server:
            yield service, server.url
    finally:
        service.close()


def test_the_days_agree_with_what_the_service_stored_and_measured(running, settings):
    service, url = running
    before_events = service.store.n_events
    service.flush_impressions()
    before = {r["model_version"]: r for r in service.online_metrics()}
    result = drive_service(url, settings, api_key=KEY)
    days = result["days"]
    assert [d["day"] for d in days] == [0, 1] and not result["stopped_early"]
    k = settings.k
    for d in days:
        assert d["complete"] and d["answers"] == d["sessions"] > 0
        assert d["impressions"] == k * d["answers"]  # every answer shows k items
        assert d["ctr"] == pytest.approx(d["clicks"] / d["impressions"])
        assert d["purchases_per_user"] == pytest.approx(d["purchases"] / d["active_users"])
        assert 0 < d["coverage"] <= 1 and 0 <= d["exposure_gini"] < 1
        assert d["versions"] == {service.live_version: d["answers"]} and d["arms"] == {}
        assert 0 < d["reactions"] < d["events"]
    assert result["summary"]["ctr"] == pytest.approx(sum(d["ctr"] for d in days) / 2)
    # every event sent is stored once
    assert service.store.n_events - before_events == sum(d["events"] for d in days)
    # the service logged every item shown, and attributed every reaction to its answer
    # by request id (the world's times lie years before the impressions: no reaction
    # could be attributed by its time)
    service.flush_impressions()
    (row,) = service.online_metrics()
    old = before.get(row["model_version"], {"requests": 0, "impressions": 0, "clicks": 0})
    old_events = before.get(row["model_version"], {}).get("events", 0)
    assert row["requests"] - old["requests"] == sum(d["answers"] for d in days)
    assert row["impressions"] - old["impressions"] == sum(d["impressions"] for d in days)
    assert row["clicks"] - old["clicks"] == sum(d["clicks"] for d in days)
    assert row["events"] - old_events == sum(d["reactions"] for d in days)
    # day 1's new items reached the catalogue
    world = ClosedLoopWorld(settings)
    for iid in world.item_ids[world.item_day == 1]:
        assert service.item(str(iid))["title"].startswith("category")
    # requests: one per answer, and the event and item batches
    assert result["requests"] > sum(d["answers"] for d in days)


def test_until_stops_the_run_after_the_hour_it_answers_true(running, settings):
    _, url = running
    calls = []

    def until() -> bool:
        calls.append(1)
        return len(calls) == 2

    result = drive_service(url, settings, api_key=KEY, until=until)
    assert result["stopped_early"] and len(calls) == 2
    (day,) = result["days"]
    assert day["day"] == 0 and not day["complete"]
    first_two_hours = ClosedLoopWorld(settings).hours(0)
    sessions = sum(len(batch) for _, batch, _ in (next(first_two_hours), next(first_two_hours)))
    assert day["answers"] == day["sessions"] == sessions


def test_a_missing_key_raises_the_status_and_what_to_do(running, settings):
    _, url = running
    with pytest.raises(ServiceCallError, match=r"HTTP 401.*api_key") as err:
        drive_service(url, settings)
    assert err.value.status == 401 and "/events" in str(err.value)


def test_no_service_at_the_address_and_bad_days_are_errors(settings):
    with pytest.raises(ServiceCallError, match="no answer") as err:
        drive_service("http://127.0.0.1:9", settings, api_key=KEY, timeout=2)
    assert err.value.status is None
    with pytest.raises(ParameterError, match="days"):
        drive_service("http://127.0.0.1:9", settings, days=3)


def test_the_command_line_drives_the_service(running, settings):
    _, url = running
    args = ["simulate", "--url", url, "--api-key", KEY, "--users", "60", "--items", "40"]
    args += ["--days", "2", "--shift-day", "0", "--new-items-per-day", "3", "--seed", "3"]
    args += ["--world", "n_categories=4", "--world", "history_days=3"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "mean CTR" in out.output and "v000001" in out.output
    refused = CliRunner().invoke(app, ["simulate", "--url", url, *args[5:]])  # no key
    assert refused.exit_code == 2 and "HTTP 401" in refused.output
    mixed = CliRunner().invoke(app, [*args, "--strategy", "static"])
    assert mixed.exit_code == 2 and "--strategy" in mixed.output
    alone = CliRunner().invoke(app, ["simulate", "--api-key", KEY, "--days", "1"])
    assert alone.exit_code == 2 and "--url" in alone.output
