"""Drift detection on the prequential hit stream: the monitor against direct river calls,
a synthetic world with a sudden interest shift, and the strategy's reaction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from river import drift as river_drift

from lifelongrec import ParameterError
from lifelongrec.data import deduplicate, sort_by_time, synthetic, time_windows
from lifelongrec.evaluation import DETECTORS, DriftMonitor, evaluate_window, prequential
from lifelongrec.models import get_model
from lifelongrec.training import FineTune, Lifelong, Static

N = 3000  # events before and after the change


def bernoulli(rates: tuple[float, float], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(N) < rates[0], rng.random(N) < rates[1]]


def river_indices(detector, values, *, direction: str | None = None) -> list[int]:
    """Feed river directly; the indices where it fired (ADWIN: in ``direction`` only,
    told by its estimate before and after)."""
    out = []
    for i, v in enumerate(np.asarray(values, dtype=float)):
        before = getattr(detector, "estimation", None)
        detector.update(float(v))
        if detector.drift_detected:
            if direction is not None:
                way = "down" if detector.estimation < before else "up"
                if way != direction:
                    continue
            out.append(i)
    return out


# ------------------------------------------------------------ the monitor alone
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("detector", ["adwin", "page-hinkley"])
def test_fires_soon_after_a_drop_and_never_on_a_stationary_stream(detector, seed):
    drop = bernoulli((0.3, 0.05), seed)
    m = DriftMonitor(detector)
    found = m.update(drop, np.arange(2 * N) * 10, window=3)
    assert found and found == m.detections_
    first = found[0]
    assert N <= first["index"] < N + 400  # after the change, within a bounded delay
    assert first["direction"] == "down" and first["window"] == 3
    assert first["timestamp"] == first["index"] * 10
    assert m.n_seen_ == 2 * N
    # the same length, no change: silent
    calm = DriftMonitor(detector)
    assert calm.update(bernoulli((0.3, 0.3), seed)) == []


@pytest.mark.parametrize("seed", [0, 3])
def test_detections_are_exactly_river_s(seed):
    stream = bernoulli((0.3, 0.05), seed)
    adwin = DriftMonitor("adwin", direction="both")
    got = [d["index"] for d in adwin.update(stream)]
    assert got == river_indices(river_drift.ADWIN(), stream) and got
    ph = DriftMonitor("page-hinkley", delta=0.01, threshold=20.0, grace_period=50)
    got = [d["index"] for d in ph.update(stream)]
    direct = river_drift.PageHinkley(min_instances=50, delta=0.01, threshold=20.0, mode="down")
    assert got == river_indices(direct, stream) and got
    # fed in pieces (as window after window) the stream gives the same detections
    pieces = DriftMonitor("page-hinkley", delta=0.01, threshold=20.0, grace_period=50)
    for part in np.array_split(stream, 7):
        pieces.update(part)
    assert [d["index"] for d in pieces.detections_] == got


def test_direction_filters_and_says_which_way():
    rise = bernoulli((0.05, 0.3), 4)
    down = DriftMonitor("adwin")
    assert down.update(rise) == []
    assert down.n_ignored_ == len(river_indices(river_drift.ADWIN(), rise)) >= 1
    up = DriftMonitor("adwin", direction="up")
    found = up.update(rise)
    assert found and {d["direction"] for d in found} == {"up"}
    assert [d["index"] for d in found] == river_indices(river_drift.ADWIN(), rise, direction="up")
    assert found[0]["estimate_after"] > found[0]["estimate_before"]
    both = DriftMonitor("page-hinkley", direction="both")
    found = both.update(rise)
    assert found and found[0]["direction"] == "up"
    direct = river_drift.PageHinkley(mode="up")
    assert [d["index"] for d in found] == river_indices(direct, rise)


def test_params_clone_and_reset():
    m = DriftMonitor("page-hinkley", delta=0.01, threshold=20.0, grace_period=40, signal="ndcg")
    assert m.get_params() == {
        "detector": "page-hinkley",
        "delta": 0.01,
        "threshold": 20.0,
        "grace_period": 40,
        "signal": "ndcg",
        "direction": "down",
    }
    river_params = m.detector_params()
    assert river_params["min_instances"] == 40 and river_params["threshold"] == 20.0
    assert river_params["alpha"] == river_drift.PageHinkley().alpha  # river's default filled in
    assert DriftMonitor().detector_params()["delta"] == river_drift.ADWIN().delta
    m.update(bernoulli((0.3, 0.05), 0))
    twin = m.clone()
    assert twin.get_params() == m.get_params() and twin.n_seen_ == 0 and not twin.detections_
    m.reset()
    assert m.n_seen_ == 0 and m.detections_ == []
    assert list(DETECTORS) == ["adwin", "page-hinkley"]
    assert repr(m) == (
        "DriftMonitor(detector='page-hinkley', delta=0.01, threshold=20.0, grace_period=40, "
        "signal='ndcg', direction='down')"
    )
    assert eval(repr(m), {"DriftMonitor": DriftMonitor}).get_params() == m.get_params()
    m.check_params()  # public: the settings as they are still pass


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"detector": "kswin"}, "detector"),
        ({"detector": None}, "detector"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.5}, "delta"),
        ({"delta": float("nan")}, "delta"),
        ({"detector": "page-hinkley", "delta": -0.1}, "delta"),
        ({"detector": "page-hinkley", "delta": True}, "delta"),
        ({"threshold": 10.0}, "threshold"),  # ADWIN has none
        ({"detector": "page-hinkley", "threshold": 0}, "threshold"),
        ({"grace_period": 0}, "grace_period"),
        ({"grace_period": 2.5}, "grace_period"),
        ({"grace_period": True}, "grace_period"),
        ({"signal": "mrr"}, "signal"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs, name):
    with pytest.raises(ParameterError, match=f"'{name}'") as err:
        DriftMonitor(**kwargs)
    assert err.value.name == name and err.value.value is kwargs[name]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"delta": 1.0}, "'delta' must be None or a number in (0, 1) for ADWIN; got 1.0"),
        (
            {"detector": "page-hinkley", "delta": -1},
            "'delta' must be None or a finite number >= 0 for Page-Hinkley; got -1",
        ),
        ({"detector": "page-hinkley", "threshold": 0}, "'threshold' must be None or a finite"),
        ({"threshold": 1.0}, "'threshold' must be None with ADWIN"),
        ({"signal": "mrr"}, "'signal' must be one of 'hit', 'ndcg'; got 'mrr'"),
        ({"grace_period": 0}, "'grace_period' must be None or an integer >= 1; got 0"),
    ],
)
def test_bad_settings_say_what_was_expected(kwargs, message):
    with pytest.raises(ParameterError) as err:
        DriftMonitor(**kwargs)
    assert message in str(err.value)


def test_bounds_and_nones_accepted_as_before():
    DriftMonitor(delta=1e-9, grace_period=np.int64(1))
    DriftMonitor("page-hinkley", delta=0, threshold=1e-9, grace_period=None)
    DriftMonitor("page-hinkley", direction="both", signal="hit")


def test_bad_values_are_rejected_where_they_are():
    m = DriftMonitor()
    with pytest.raises(ParameterError, match=r"values.*1.5 at position 2"):
        m.update([0.0, 1.0, 1.5])
    with pytest.raises(ParameterError, match=r"values.*nan at position 0"):
        m.update([float("nan")])
    with pytest.raises(ParameterError, match="one-dimensional"):
        m.update(np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="one-dimensional"):
        m.update(["hit", "miss"])
    with pytest.raises(ParameterError, match="timestamps"):
        m.update([0, 1], timestamps=[5])
    with pytest.raises(ParameterError, match="timestamps"):
        m.update([0, 1], timestamps=["a", "b"])
    assert m.n_seen_ == 0  # nothing fed by a rejected call


# ------------------------------------------------------ in the prequential run
def shifted_world(shift_at: float | None = 0.5, seed: int = 0):
    """A small world where users stick to few categories, one view per session: a sudden
    interest shift drops the hit rate of a history-based model sharply."""
    data = synthetic(
        n_events=3_000,
        seed=seed,
        shift_at=shift_at,
        interest_concentration=0.1,
        interest_drift=0.0,
        mean_session_views=1.0,
        sequential_strength=0.0,
        n_categories=8,
        new_item_rate=0.0,
    )
    return deduplicate(sort_by_time(data), subset=("user_id", "item_id"))


class Spy(FineTune):
    """Fine-tune that logs the order of on_drift and update calls."""

    def start(self, model_factory, first_window):
        self.log = []
        return super().start(model_factory, first_window)

    def on_drift(self, info):
        self.log.append(("drift", info["window"], len(info["detections"])))

    def update(self, window):
        self.log.append(("update", window.meta["window"]))
        return super().update(window)


def test_prequential_detects_the_shift_and_tells_the_strategy_first():
    data = shifted_world()
    shift = data.meta["shift_timestamp"]
    spy = Spy()
    r = prequential(get_model("itemknn"), data, spy, 8, k=10, progress=False, drift="adwin")
    d = r["drift"]
    assert d["true_shift_timestamp"] == shift and d["detector"] == "adwin"
    assert d["n_detections"] >= 1
    assert all(x["timestamp"] >= shift for x in d["detections"])  # none before the shift
    first = d["first_detection_after_shift"]
    assert first["timestamp"] == d["detections"][0]["timestamp"]
    assert 0 <= first["delay_events"] < 200 and first["delay_seconds"] >= 0
    # the delay counts the monitored events (windows 1..7) from the first one after the shift
    monitored = np.concatenate(
        [w.events["timestamp"].to_numpy() for w in time_windows(data, 8)[1:]]
    )
    assert d["n_monitored"] == len(monitored)
    assert first["delay_events"] == first["index"] - int((monitored < shift).sum())
    # on_drift of window w comes right before update(w), once per window with detections
    flagged = [w["window"] for w in r["windows"] if w["drift_detected"]]
    assert flagged == sorted({x["window"] for x in d["detections"]})
    for w in flagged:
        n = sum(1 for x in d["detections"] if x["window"] == w)
        at = spy.log.index(("drift", w, n))
        assert spy.log[at + 1] == ("update", w)
    assert [e for e in spy.log if e[0] == "drift"] == [
        ("drift", w, sum(1 for x in d["detections"] if x["window"] == w)) for w in flagged
    ]
    for rec in r["windows"]:
        assert rec["drift_events"] == [
            x["timestamp"] for x in d["detections"] if x["window"] == rec["window"]
        ]
        assert rec["drift_reaction"] is None  # fine-tune does not react
    assert d["reactions"] == []
    assert json.loads(json.dumps(r, allow_nan=False)) == r


def test_no_detection_without_a_shift():
    data = shifted_world(shift_at=None)
    r = prequential(get_model("itemknn"), data, "finetune", 8, k=10, progress=False, drift="adwin")
    assert r["drift"]["n_detections"] == 0 and r["drift"]["true_shift_timestamp"] is None
    assert r["drift"]["first_detection_after_shift"] is None
    assert not any(w["drift_detected"] for w in r["windows"])


def test_lifelong_reaction_is_recorded_per_window_and_in_the_run():
    data = shifted_world()
    s = Lifelong(replay_size=60, replay_share=0.5, drift_replay_share=0.2)
    r = prequential(get_model("itemknn"), data, s, 8, k=10, progress=False, drift="adwin")
    flagged = [w for w in r["windows"] if w["drift_detected"]]
    assert flagged
    assert r["drift"]["reactions"] == s.reactions_ and len(s.reactions_) == len(flagged)
    for rec, reaction in zip(flagged, s.reactions_, strict=True):
        assert rec["drift_reaction"] == reaction
        assert reaction["window"] == rec["window"] and reaction["replay_share"] == 0.2
        n_new = rec["n_events"]
        assert reaction["n_replayed"] == min(60, round(n_new * 0.2 / 0.8)) < 60
        assert s.n_replayed_[rec["window"] - 1] == reaction["n_replayed"]
        assert reaction["partial_fit_epochs"] is None  # itemknn has no epochs
    quiet = [w for w in r["windows"][1:] if not w["drift_detected"]]
    for rec in quiet:  # the usual share elsewhere
        assert rec["drift_reaction"] is None
        assert s.n_replayed_[rec["window"] - 1] == 60  # the buffer is full: all of it


def test_monitor_given_is_a_template_and_ndcg_signal_is_the_gains():
    # static popularity: the model is the first fit throughout, so the stream is the
    # per-event gains of evaluate_window on each window, fed to river by hand
    data = shifted_world(seed=1)
    template = DriftMonitor("page-hinkley", threshold=5.0, signal="ndcg", direction="both")
    r = prequential(get_model("itemknn"), data, Static(), 6, k=10, progress=False, drift=template)
    assert template.n_seen_ == 0 and template.detections_ == []  # not used itself
    windows = time_windows(data, 6)
    model = get_model("itemknn").fit(windows[0])
    gains, stamps = [], []
    for n, w in enumerate(windows[1:], start=2):
        seen = pd.concat([x.events for x in windows[:n]], ignore_index=True)
        res = evaluate_window(model, w.events, seen, 10, per_event=True)
        gains.append(res["per_event"]["gain"])
        stamps.append(res["per_event"]["timestamp"])
    gains, stamps = np.concatenate(gains), np.concatenate(stamps)
    down = river_indices(river_drift.PageHinkley(threshold=5.0, mode="down"), gains)
    up = river_indices(river_drift.PageHinkley(threshold=5.0, mode="up"), gains)
    expected = sorted([(i, "down") for i in down] + [(i, "up") for i in up])
    got = [(x["index"], x["direction"]) for x in r["drift"]["detections"]]
    assert sorted(got) == expected and got
    assert [x["timestamp"] for x in r["drift"]["detections"]] == [int(stamps[i]) for i, _ in got]
    assert r["drift"]["params"]["signal"] == "ndcg"


def test_without_drift_the_result_says_so():
    data = shifted_world()
    r = prequential(get_model("popularity"), data, "static", 3, progress=False)
    assert r["drift"] is None and "drift_detected" not in r["windows"][1]


def test_prequential_rejects_a_bad_drift():
    data = shifted_world()
    with pytest.raises(ParameterError, match="'drift'"):
        prequential(get_model("popularity"), data, "static", 3, drift=42)
    with pytest.raises(ParameterError, match="'detector'"):
        prequential(get_model("popularity"), data, "static", 3, drift="cusum")
