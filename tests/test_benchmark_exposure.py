"""benchmarks/exposure.py: per seed and arm the lifelong strategy's figures from the
shift on, and the arms' means and differences, computed again from the raw results."""

from __future__ import annotations

import json

import pytest

FAST = ["dim=8", "n_heads=1", "epochs=2", "text_encoder=None", "verbose=False"]
WORLD = ["n_users=60", "n_items=40", "days=3", "shift_day=2", "history_days=2"]


@pytest.fixture(scope="module")
def exposure(benchmark_module):
    with benchmark_module("exposure") as module:
        yield module


@pytest.fixture(scope="module")
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_writes_the_seeds_the_means_and_the_differences(exposure, common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    argv = ["--seeds", "1", "2", "--arm", "off:exposure_weight=0", "--arm", "on:"]
    argv += ["--block", "t"]
    for p in FAST:
        argv += ["--param", p]
    for w in WORLD:
        argv += ["--world", w]
    assert exposure.main(argv) == 0
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- exposure-t:begin -->" in text and "| seed | off CTR |" in text
    raw = json.loads((tmp_path / "exposure-t.json").read_text())
    ctr = {(r["seed"], r["arm"]): r["ctr"] for r in raw["results"]}
    assert set(ctr) == {(1, "off"), (1, "on"), (2, "off"), (2, "on")}
    assert raw["arms"]["on"] == {
        "dim": 8,
        "n_heads": 1,
        "epochs": 2,
        "text_encoder": None,
        "verbose": False,
    }
    mean = {a: (ctr[(1, a)] + ctr[(2, a)]) / 2 for a in ("off", "on")}
    on = next(s for s in raw["summary"] if s["arm"] == "on")
    assert on["diff"] == pytest.approx(mean["on"] - mean["off"])
    ahead = sum(ctr[(s, "on")] > ctr[(s, "off")] for s in (1, 2))
    assert on["ahead"] == f"{ahead} of 2"
    assert raw["lifelong"] is None and "`SIMULATION_LIFELONG`" in text


def test_lifelong_settings_reach_the_strategy(exposure, monkeypatch):
    seen = []

    def fake(model, arm, settings, strategies, lifelong=None):
        seen.append(lifelong)
        summary = {"ctr": 0.1, "purchases_per_user": 0.0, "update_cpu_seconds": 1.0}
        return {"strategies": {"lifelong": {"summary": summary}}}

    monkeypatch.setattr(exposure, "simulate", fake)
    argv = ["--seeds", "1", "--arm", "a:", "--no-write", "--lifelong", "replay_drift_power=0"]
    assert exposure.main(argv + ["--lifelong", "distill_weight=1.0"]) == 0
    assert exposure.main(["--seeds", "1", "--arm", "a:", "--no-write"]) == 0
    assert seen == [{"replay_drift_power": 0, "distill_weight": 1.0}, None]


def test_a_bad_arm_is_refused(exposure):
    with pytest.raises(SystemExit, match="NAME:K=V"):
        exposure.parse_arm("exposure_weight=1")
