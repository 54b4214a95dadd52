"""The prequential (streaming) protocol: evaluate each time window first, then learn it.

Time is cut into windows (:func:`lifelongrec.data.time_windows`). The model learns
window 0; then, for each later window, every event ``(user, item, t)`` of the window is
predicted by ranking the full catalogue from the user's history strictly before ``t``
(earlier windows and earlier events of the same window; through
:meth:`~lifelongrec.models.Recommender.score_histories`), and only then is the window
learned by an update strategy (:mod:`lifelongrec.training`). After the last window,
every earlier window is evaluated again with the final model to measure forgetting
(backward transfer, Lopez-Paz & Ranzato, NeurIPS 2017). Optionally a drift detector
(:class:`~lifelongrec.evaluation.DriftMonitor`) watches the per-event hits in time order
and the strategy is told when it fires, before it learns the window
(:meth:`~lifelongrec.training.Strategy.on_drift`).

With a catalogue whose items carry their publication time (``catalogue_time``), items
published up to the end of a window join the model (``add_items``) before the window is
ranked, and each event ranks only the items published by its time: an item can be
recommended from its content before its first event, as a service admits it on
publication.

Per event the target is one item, so Recall@K equals the hit rate:
``hit = rank < K`` and ``NDCG@K = 1 / log2(rank + 2)`` for a hit, where ``rank`` counts
the items ranked above the target among those not in the visible history (ties broken
by the lower item column, as :meth:`~lifelongrec.models.Recommender.recommend` does).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import check_int, check_k
from lifelongrec.data import Dataset, as_dataset, time_windows
from lifelongrec.data._schema import frame_of
from lifelongrec.evaluation._drift import DriftMonitor
from lifelongrec.models import Recommender
from lifelongrec.nn import training_flops
from lifelongrec.training import Strategy, get_strategy

__all__ = ["catalogue_times", "evaluate_window", "prequential"]

_SCORE_BATCH_CELLS = 16_000_000  # float32 score cells per score_histories call (64 MB)


def evaluate_window(
    model: Recommender,
    events: pd.DataFrame | Dataset,
    history: pd.DataFrame | Dataset,
    k: int = 10,
    *,
    bar: Any = None,
    per_event: bool = False,
    available: pd.Series | None = None,
) -> dict[str, Any]:
    """Next-item Recall@K and NDCG@K of ``model`` on ``events``, each ranked from its
    user's history strictly before it.

    Parameters
    ----------
    model
        A fitted recommender.
    events
        The events to predict (``user_id, item_id, timestamp``, ...).
    history
        The events a query may see (it sees its user's events with an earlier
        timestamp); normally everything up to the end of ``events``' window.
    k
        Cut-off (positive int).
    bar
        Optional tqdm bar, advanced by the number of events scored.
    per_event
        Also return the figures of every event, in time order (for drift detection).
    available
        Optional publication times (a Series: item id -> timestamp, e.g. from
        :func:`catalogue_times`): an event ranks only the items published at or before
        its timestamp (its own item always counts); items not in it are always
        available.

    Returns
    -------
    dict
        ``recall@k`` and ``ndcg@k`` (means over ``n_events``; ``None`` when there are no
        events), ``n_events``, ``n_users``, ``n_unknown_items`` (events whose item the
        model does not know: misses) and ``n_repeat_items`` (events whose item is in the
        user's visible history, so excluded from the ranking: misses; none after
        deduplication). With ``per_event``, also ``per_event``: ``{"timestamp": int64,
        "hit": bool, "gain": float64, "user_id": object, "item_id": object}`` arrays
        (numpy, not JSON; ids as strings), one entry per event in time order (a stable
        sort: equal timestamps keep the order of ``events``); the gain is the event's
        NDCG@K contribution, ``1 / log2(rank + 2)`` for a hit.

    Raises
    ------
    DataError
        ``events`` is not an events frame (or Dataset) with ``user_id, item_id,
        timestamp``; ``history`` is rejected by
        :meth:`~lifelongrec.models.Recommender.score_histories`.
    ParameterError
        A bad ``k``.
    """
    k = check_k(k)
    events = frame_of(
        events,
        ("user_id", "item_id", "timestamp"),
        what="events to evaluate",
        frame_name="events to evaluate",
        accepts="a pandas DataFrame of events or a lifelongrec.data.Dataset",
    )
    users = events["user_id"].astype(str).to_numpy(dtype=object)
    ts = events["timestamp"].to_numpy().astype(np.int64)
    n = len(users)
    out: dict[str, Any] = {
        f"recall@{k}": None,
        f"ndcg@{k}": None,
        "n_events": n,
        "n_users": int(pd.unique(users).size),
        "n_unknown_items": 0,
        "n_repeat_items": 0,
    }
    if n == 0:
        if per_event:
            out["per_event"] = {
                "timestamp": np.zeros(0, np.int64),
                "hit": np.zeros(0, bool),
                "gain": np.zeros(0, np.float64),
                "user_id": np.zeros(0, object),
                "item_id": np.zeros(0, object),
            }
        return out
    catalogue = pd.Index(np.asarray(model.item_ids_, dtype=object))
    item_ids = events["item_id"].astype(str).to_numpy(dtype=object)
    cols = catalogue.get_indexer(item_ids).astype(np.int64)
    # Events of one user at one timestamp see the same history: one query for them all.
    query = pd.DataFrame({"u": users, "t": ts}).groupby(["u", "t"], sort=False).ngroup()
    query = query.to_numpy(np.int64)
    order = np.argsort(query, kind="stable")
    first = order[np.r_[True, query[order][1:] != query[order][:-1]]]
    q_users, q_ts = users[first], ts[first]
    n_items = len(model.item_ids_)
    published = None
    if available is not None:
        published = available.reindex(catalogue).to_numpy(dtype=np.float64)
        published = np.where(np.isnan(published), -np.inf, published)
    size = max(1, _SCORE_BATCH_CELLS // max(n_items, 1))
    bounds = np.searchsorted(query[order], np.arange(0, len(first) + size, size))
    hits = np.zeros(n, dtype=bool)
    gains = np.zeros(n, dtype=np.float64)
    repeats = 0
    for b, start in enumerate(range(0, len(first), size)):
        S = model.score_histories(
            q_users[start : start + size],
            history,
            before=q_ts[start : start + size],
            exclude_seen=True,
        )
        ev = order[bounds[b] : bounds[b + 1]]
        ev = ev[cols[ev] >= 0]
        rows, c = query[ev] - start, cols[ev]
        target = S[rows, c]
        if published is not None:  # not yet published at the query's time: not ranked
            S[published[None, :] > q_ts[start : start + size, None]] = -np.inf
        R = S[rows]
        rank = (R > target[:, None]).sum(axis=1) + (
            (R == target[:, None]) & (np.arange(n_items)[None, :] < c[:, None])
        ).sum(axis=1)
        ok = np.isfinite(target)
        repeats += int((~ok).sum())
        hit = ok & (rank < k)
        hits[ev] = hit
        gains[ev] = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
        if bar is not None:
            bar.update(int(bounds[b + 1] - bounds[b]))
    out[f"recall@{k}"] = float(hits.mean())
    out[f"ndcg@{k}"] = float(gains.mean())
    out["n_unknown_items"] = int((cols < 0).sum())
    out["n_repeat_items"] = repeats
    if per_event:
        in_time = np.argsort(ts, kind="stable")
        out["per_event"] = {
            "timestamp": ts[in_time],
            "hit": hits[in_time],
            "gain": gains[in_time],
            "user_id": users[in_time],
            "item_id": item_ids[in_time],
        }
    return out


def catalogue_times(items: pd.DataFrame | None, name: str) -> pd.Series:
    """The publication time of each catalogue item: column ``name`` of ``items``, or
    the ``name`` entry of its ``attributes`` (e.g. the synthetic world's ``arrival``).

    Returns a Series (item id -> int64 timestamp) of the items that have one; the rest
    are left out (they join a model with their first event).

    >>> from lifelongrec.data import make_items
    >>> items = make_items(["a", "b", "c"], attributes=[{"arrival": 5}, {}, {"arrival": 9}])
    >>> catalogue_times(items, "arrival").to_dict()
    {'a': 5, 'c': 9}

    Raises
    ------
    ParameterError
        No catalogue, or no item has a time under ``name``.
    DataError
        A time that is not a finite number (naming the item).
    """
    if items is None or len(items) == 0:
        raise ParameterError("catalogue_time", name, "unset for data without a catalogue")
    ids = items["item_id"].astype(str).to_numpy(dtype=object)
    if name in items.columns:
        raw = list(items[name])
    elif "attributes" in items.columns:
        raw = [a.get(name) if isinstance(a, dict) else None for a in items["attributes"]]
    else:
        raw = [None] * len(ids)
    keep = [j for j, v in enumerate(raw) if v is not None and not pd.isna(v)]
    if not keep:
        raise ParameterError(
            "catalogue_time",
            name,
            f"a column of the catalogue or a key of its attributes (columns: "
            f"{list(items.columns)})",
        )
    values = []
    for j in keep:
        v = raw[j]
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not number or not np.isfinite(v):
            raise DataError(
                f"catalogue item {ids[j]!r}: {name} is {v!r}; expected a timestamp (a "
                "finite number, in the events' unit)"
            )
        values.append(int(v))
    return pd.Series(np.asarray(values, dtype=np.int64), index=pd.Index(ids[keep], dtype=object))


def _admit_published(model: Recommender, items: pd.DataFrame, times: pd.Series, until: int) -> int:
    """Admit to ``model`` the catalogue items published by ``until`` that it does not
    know yet; returns how many."""
    index = model.item_index_  # the ids holding a row (not the free rows' placeholders)
    new = [i for i in times.index[times.to_numpy() <= until] if i not in index]
    if new:
        model.add_items(items[items["item_id"].astype(str).isin(set(new))])
    return len(new)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _total(values: list[float | None]) -> float | None:
    """The sum of the values that are not ``None`` (``None`` when all are)."""
    vals = [v for v in values if v is not None]
    return float(sum(vals)) if vals else None


def _gflops_since(model: Any, flops_before: float) -> float | None:
    """GFLOPs counted by :func:`lifelongrec.nn.training_flops` since ``flops_before``
    (``None`` when ``model``, the one the learning call returned, estimates none)."""
    if getattr(model, "train_gflops_", None) is None:
        return None
    return (training_flops() - flops_before) / 1e9


def _drift_summary(
    monitor: DriftMonitor, shift: int | None, n_before_shift: int, reactions: list[dict]
) -> dict[str, Any]:
    """The ``drift`` entry of a prequential result (see :func:`prequential`)."""
    after = None
    if shift is not None:
        late = [d for d in monitor.detections_ if d["timestamp"] >= shift]
        if late:
            first = late[0]
            after = {
                **first,
                "delay_events": int(first["index"] - n_before_shift),
                "delay_seconds": int(first["timestamp"] - shift),
            }
    return {
        "detector": monitor.detector,
        "params": monitor.get_params(),
        "detector_params": monitor.detector_params(),
        "n_monitored": int(monitor.n_seen_),
        "detections": list(monitor.detections_),
        "n_detections": len(monitor.detections_),
        "n_ignored": int(monitor.n_ignored_),
        "true_shift_timestamp": shift,
        "first_detection_after_shift": after,
        "reactions": list(reactions),
    }


def prequential(
    model: Recommender,
    data: Any,
    strategy: str | Strategy = "finetune",
    n_windows: int = 10,
    k: int = 10,
    *,
    by: str = "count",
    seed: int = 0,
    progress: bool = True,
    drift: DriftMonitor | str | None = None,
    catalogue_time: str | None = None,
    per_event: bool = False,
) -> dict[str, Any]:
    """Learn window 0, then for each later window evaluate it first and learn it after.

    Parameters
    ----------
    model
        A recommender used as a template: every model the run fits is a new one with its
        hyperparameters (``model`` itself is never fitted).
    data
        A :class:`~lifelongrec.data.Dataset` or an events frame, cut by
        :func:`~lifelongrec.data.time_windows` into ``n_windows`` windows.
    strategy
        A name from :data:`lifelongrec.training.STRATEGIES` (``"static"``,
        ``"retrain"``, ``"finetune"``, ``"lifelong"``; built with ``seed``) or a
        :class:`~lifelongrec.training.Strategy`.
    n_windows
        Windows, at least 2 (window 0 is only learned).
    k
        Cut-off of Recall@K and NDCG@K (positive int).
    by
        ``"count"`` (equal event counts) or ``"duration"`` (equal time spans), as in
        :func:`~lifelongrec.data.time_windows`. An empty window is neither evaluated nor
        learned.
    seed
        Seed of a strategy given by name (the ``lifelong`` replay buffer).
    progress
        Show a progress bar over the events scored (hidden when not on a terminal).
    drift
        ``None`` (no drift detection), a detector name (``"adwin"``, ``"page-hinkley"``:
        a :class:`~lifelongrec.evaluation.DriftMonitor` with its defaults) or a
        DriftMonitor, used as a template (a clone watches this run; the one given is
        left as it was). It is fed each evaluated window's per-event figures in time
        order (windows 1..N-1, the prequential figures only); when it fires while window
        ``w`` is evaluated, ``strategy.on_drift({"window": w, "detections": [...]})`` is
        called before ``strategy.update`` of that window.
    catalogue_time
        ``None`` (default): items join a model with their first learned event. A name:
        the catalogue's publication time of each item (a column of ``data.items`` or a
        key of its ``attributes``, :func:`catalogue_times`): before a window is ranked
        (and after it is learned, and for the final evaluations), every item published
        by the window's end joins the model (``add_items``; outside the timed update),
        and each event ranks only the items published by its timestamp. Every strategy
        gets the same catalogue, so ``n_unknown_items`` counts only items the catalogue
        did not announce in time.
    per_event
        Also keep each evaluated window's figures per event (``per_event`` in its
        record): what the breakdowns of ``benchmarks/stream_breakdown.py`` group.

    Returns
    -------
    dict
        JSON-serialisable:

        * ``windows``: one record per window: ``window``, ``start``/``end`` (its
          inclusive timestamp range), ``n_events``, ``n_users``; ``recall@K`` and
          ``ndcg@K``, the prequential figures (the model before it learned the window;
          ``None`` for window 0), with ``n_unknown_items`` and ``n_repeat_items`` (misses
          by construction, see :func:`evaluate_window`); ``update_seconds`` (wall clock of
          the strategy's learning call only; for window 0 the first fit);
          ``update_cpu_seconds``, the CPU time of that call (``time.process_time``: every
          thread of the process, so torch's or BLAS's worker threads add up and it can
          exceed the wall clock; child processes are not counted);
          ``update_est_gflops``, the training GFLOPs the model estimates that call spent
          (:func:`lifelongrec.nn.training_flops` before and after, like a clock; the same
          on every machine), ``None`` for a model without estimates (no
          ``train_gflops_``) or a window without an update;
          ``recall@K_after_update`` / ``ndcg@K_after_update``, the window's own events
          right after it was learned (``a_{w,w}``); ``recall@K_final`` /
          ``ndcg@K_final``, the same events with the final model (``a_{T,w}``); with
          ``drift``: ``drift_detected`` (bool), ``drift_events`` (the timestamps of the
          detections while the window was evaluated) and ``drift_reaction`` (what the
          strategy did in its update of this window, see ``reactions_`` of
          :class:`~lifelongrec.training.Lifelong`; ``None`` when nothing); with
          ``catalogue_time``: ``n_admitted``, the catalogue items admitted before the
          window was ranked; with ``per_event`` (windows 1..N-1): ``per_event``, lists
          ``timestamp``, ``hit``, ``gain``, ``user_id``, ``item_id`` of the prequential
          ranking, one entry per event in time order (see :func:`evaluate_window`);
        * ``mean``: ``recall@K``, ``ndcg@K``, ``update_seconds`` and
          ``update_cpu_seconds`` averaged over the evaluated windows 1..N-1 (each window
          weighs the same);
        * ``total_update_seconds`` and ``total_update_cpu_seconds``: the sums over all
          windows, the first fit included; ``total_update_seconds_after_first`` and
          ``total_update_cpu_seconds_after_first``: over windows 1..N-1 only (the
          compute of the updates, for strategies that share the same first fit);
          ``total_update_est_gflops_after_first``: the sum of ``update_est_gflops`` over
          windows 1..N-1 (``None`` when a model does not estimate them);
        * ``drift``: ``None`` without ``drift``; else ``detector``, ``params`` (the
          monitor's settings), ``detector_params`` (river's, defaults filled in),
          ``n_monitored`` (events fed), ``detections`` (the monitor's records; their
          ``index`` counts the monitored events, i.e. from the first event of window 1),
          ``n_detections``, ``n_ignored`` (changes in a direction that does not count),
          ``true_shift_timestamp`` (``data.meta["shift_timestamp"]`` when the data has
          one, e.g. the synthetic world with ``shift_at``; else ``None``),
          ``first_detection_after_shift`` (the first detection at or after the true
          shift, with ``delay_events``, monitored events from the first one at or after
          the shift, and ``delay_seconds``; ``None`` when there is none or no true
          shift) and ``reactions`` (the strategy's ``reactions_``);
        * ``bwt``: backward transfer ``mean_w (a_{T,w} - a_{w,w})`` for ``recall@K`` and
          ``ndcg@K`` over the windows in ``bwt["windows"]``: every window learned before
          the last one (0..N-2; the last has nothing after it to forget). Negative means
          forgetting; a static model has exactly 0;
        * ``protocol``, ``strategy``, ``strategy_params``, ``model``, ``params``, ``k``,
          ``n_windows``, ``by``, ``seed``, ``catalogue_time``, ``n_events``,
          ``n_unknown_items`` and ``n_repeat_items`` (totals over the prequential
          figures).

    Raises
    ------
    ParameterError
        ``n_windows`` below 2, a bad ``k``, ``by`` or strategy name, a ``model`` that is
        not a Recommender, or a ``drift`` that is neither None, a detector name nor a
        DriftMonitor.
    DataError
        From :func:`~lifelongrec.data.time_windows` (no events, windows that would be
        empty) or from the model.
    """
    k = check_k(k)
    if not isinstance(model, Recommender):
        raise ParameterError("model", type(model).__name__, "a lifelongrec Recommender")
    check_int("n_windows", n_windows, 2)  # window 0 is learned, the rest evaluated
    if isinstance(strategy, str):
        strategy = get_strategy(strategy, seed=seed)
    elif not isinstance(strategy, Strategy):
        raise ParameterError(
            "strategy", strategy, "a strategy name or a lifelongrec.training.Strategy"
        )
    if drift is None:
        monitor = None
    elif isinstance(drift, DriftMonitor):
        monitor = drift.clone()
    elif isinstance(drift, str):
        monitor = DriftMonitor(drift)
    else:
        raise ParameterError(
            "drift", drift, "None, a detector name ('adwin', 'page-hinkley') or a DriftMonitor"
        )
    dataset = as_dataset(data)
    times = None if catalogue_time is None else catalogue_times(dataset.items, catalogue_time)
    shift = dataset.meta.get("shift_timestamp")
    shift = None if shift is None else int(shift)
    windows = time_windows(dataset, int(n_windows), by=by)
    W = len(windows)
    full = pd.concat([w.events for w in windows], ignore_index=True)
    ends = np.cumsum([len(w) for w in windows])

    def seen_until(w: int) -> pd.DataFrame:  # every event up to the end of window w
        return full.iloc[: ends[w]]

    recall, ndcg = f"recall@{k}", f"ndcg@{k}"
    sizes = np.array([len(w) for w in windows])
    total = int(sizes[1:].sum() + sizes.sum() + sizes[:-1].sum())
    bar = tqdm(
        total=total,
        desc=f"prequential {strategy.name}",
        unit="event",
        disable=None if progress else True,
        leave=False,
    )
    records: list[dict[str, Any]] = []
    n_before_shift = 0  # monitored events before the true shift
    try:
        c0, t0, f0 = time.process_time(), time.perf_counter(), training_flops()
        current = strategy.start(model.clone, windows[0])
        first_seconds = time.perf_counter() - t0
        first_cpu = time.process_time() - c0
        first_gflops = _gflops_since(current, f0)
        for w, window in enumerate(windows):
            rec: dict[str, Any] = {
                "window": w,
                "start": int(window.meta["start"]),
                "end": int(window.meta["end"]),
                "n_events": len(window),
                "n_users": int(window.events["user_id"].nunique()),
                recall: None,
                ndcg: None,
                "n_unknown_items": 0,
                "n_repeat_items": 0,
                "update_seconds": first_seconds if w == 0 else 0.0,
                "update_cpu_seconds": first_cpu if w == 0 else 0.0,
                "update_est_gflops": first_gflops if w == 0 else None,
            }
            if monitor is not None:
                rec.update(drift_detected=False, drift_events=[], drift_reaction=None)
            if times is not None:
                rec["n_admitted"] = _admit_published(current, dataset.items, times, rec["end"])
            if w > 0 and len(window):
                res = evaluate_window(
                    current,
                    window.events,
                    seen_until(w),
                    k,
                    bar=bar,
                    per_event=monitor is not None or per_event,
                    available=times,
                )
                for key in (recall, ndcg, "n_unknown_items", "n_repeat_items"):
                    rec[key] = res[key]
                if per_event:
                    rec["per_event"] = {
                        key: value.tolist() for key, value in res["per_event"].items()
                    }
                n_reactions = len(strategy.reactions_)
                if monitor is not None:
                    events = res["per_event"]
                    if shift is not None:
                        n_before_shift += int((events["timestamp"] < shift).sum())
                    signal = events["hit"] if monitor.signal == "hit" else events["gain"]
                    found = monitor.update(signal, events["timestamp"], window=w)
                    rec["drift_detected"] = bool(found)
                    rec["drift_events"] = [d["timestamp"] for d in found]
                    if found:
                        strategy.on_drift({"window": w, "detections": found})
                c0, t0, f0 = time.process_time(), time.perf_counter(), training_flops()
                current = strategy.update(window)
                rec["update_seconds"] = time.perf_counter() - t0
                rec["update_cpu_seconds"] = time.process_time() - c0
                rec["update_est_gflops"] = _gflops_since(current, f0)
                reactions = strategy.reactions_
                if monitor is not None and len(reactions) > n_reactions:
                    rec["drift_reaction"] = reactions[-1]
            if times is not None:  # a model the update built anew has not seen them
                _admit_published(current, dataset.items, times, rec["end"])
            res = evaluate_window(
                current, window.events, seen_until(w), k, bar=bar, available=times
            )
            rec[f"{recall}_after_update"] = res[recall]
            rec[f"{ndcg}_after_update"] = res[ndcg]
            records.append(rec)
        for w, rec in enumerate(records):
            if w < W - 1:
                res = evaluate_window(
                    current, windows[w].events, seen_until(w), k, bar=bar, available=times
                )
            else:  # the final model is the one that just learned the last window
                res = {m: rec[f"{m}_after_update"] for m in (recall, ndcg)}
            rec[f"{recall}_final"] = res[recall]
            rec[f"{ndcg}_final"] = res[ndcg]
    finally:
        bar.close()

    evaluated = records[1:]
    bwt_windows = [r["window"] for r in records[:-1] if r[f"{recall}_after_update"] is not None]

    def bwt(metric: str) -> float | None:
        diffs = [
            records[w][f"{metric}_final"] - records[w][f"{metric}_after_update"]
            for w in bwt_windows
        ]
        return float(np.mean(diffs)) if diffs else None

    return {
        "protocol": "prequential",
        "strategy": strategy.name,
        "strategy_params": strategy.get_params(),
        "model": model.name,
        "params": model.get_params(),
        "k": k,
        "n_windows": W,
        "by": by,
        "seed": seed,
        "catalogue_time": catalogue_time,
        "n_events": int(len(full)),
        "windows": records,
        "mean": {
            recall: _mean([r[recall] for r in evaluated]),
            ndcg: _mean([r[ndcg] for r in evaluated]),
            "update_seconds": _mean([r["update_seconds"] for r in evaluated]),
            "update_cpu_seconds": _mean([r["update_cpu_seconds"] for r in evaluated]),
        },
        "total_update_seconds": float(sum(r["update_seconds"] for r in records)),
        "total_update_cpu_seconds": float(sum(r["update_cpu_seconds"] for r in records)),
        "total_update_seconds_after_first": float(sum(r["update_seconds"] for r in evaluated)),
        "total_update_cpu_seconds_after_first": float(
            sum(r["update_cpu_seconds"] for r in evaluated)
        ),
        "total_update_est_gflops_after_first": _total([r["update_est_gflops"] for r in evaluated]),
        "drift": None
        if monitor is None
        else _drift_summary(monitor, shift, n_before_shift, strategy.reactions_),
        "bwt": {recall: bwt(recall), ndcg: bwt(ndcg), "windows": bwt_windows},
        "n_unknown_items": int(sum(r["n_unknown_items"] for r in evaluated)),
        "n_repeat_items": int(sum(r["n_repeat_items"] for r in evaluated)),
    }
