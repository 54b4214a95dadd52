"""Does what follows what change over a stream? Item-to-next-item counts, old and recent.

Cuts a stream into the windows of the prequential protocol (``--windows``, equal event
counts, as ``lifelongrec stream`` does after the same preprocessing) and, for every
window ``t`` from 2 on, asks how well each window's next items are predicted by the
successor counts of earlier ones: for each pair of consecutive events of a user in
window ``t`` (two different items), is the second among the 10 items that most often
followed the first

- in window ``t - 1`` only (``latest``),
- in windows ``0 .. t - 2`` (``older``: more data, but older),
- in windows ``0 .. t - 1`` (``all``)?

Where the order in which users go from item to item holds still, ``older`` (several
windows of counts) predicts at least as well as ``latest`` (one); where it changes,
``latest`` wins although it has less data, and a model that keeps rehearsing the old
order is taught against the new one. The same for plain popularity (the 10 items most
frequent in the latest / older windows, hit by window ``t``'s events).

    .venv/bin/python benchmarks/transition_drift.py --data ml-latest-small ml-100k \\
        --streams train-aging-30k train-reorder-30k
    # each window's ratio as the lifelong strategy sees it (replay_drift_power):
    .venv/bin/python benchmarks/transition_drift.py --per-window --data ml-latest-small

Prints a table (hit rates averaged over windows 2 .. windows - 1, and ``latest /
older``); with ``--per-window``, each window's ``latest / older`` from
:class:`lifelongrec.training.TransitionDrift` (which breaks ties between equally
frequent successors by id, where this script's own counts keep the first seen, so the
two can differ a little). Nothing is written to the docs.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from lifelongrec.data import STREAM_FAMILIES, prepare, synthetic_streams, time_windows  # noqa: E402
from lifelongrec.training import TransitionDrift  # noqa: E402

REAL_DATA = [name for name in _common.DATASETS if name != _common.SYNTHETIC]


def successors(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[Any, set]:
    """For each item, the 10 items that most often followed it in ``pairs``."""
    counts: dict[Any, Counter] = defaultdict(Counter)
    for a, b in pairs:
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            counts[x][y] += 1
    return {x: {y for y, _ in c.most_common(10)} for x, c in counts.items()}


def hit_rate(table: dict[Any, set], pairs: tuple[np.ndarray, np.ndarray]) -> float:
    a, b = pairs
    hits = sum(y in table.get(x, ()) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    return hits / max(1, len(a))


def window_pairs(windows: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive events of a user (two different items), with the window of the second;
    the first may lie in an earlier window."""
    frames = [
        window.events[["user_id", "item_id", "timestamp"]].assign(window=w)
        for w, window in enumerate(windows)
    ]
    ev = pd.concat(frames, ignore_index=True).sort_values(["user_id", "timestamp"], kind="stable")
    u, i, w = (ev[c].to_numpy() for c in ("user_id", "item_id", "window"))
    keep = (u[1:] == u[:-1]) & (i[1:] != i[:-1])
    a, b, wb = i[:-1][keep], i[1:][keep], w[1:][keep]
    return [(a[wb == t], b[wb == t]) for t in range(len(windows))]


def measure(data, n_windows: int) -> dict[str, float]:
    windows = time_windows(data, n_windows)
    pairs = window_pairs(windows)
    rows: dict[str, list[float]] = defaultdict(list)
    for t in range(2, n_windows):
        latest, older = successors(pairs[t - 1 : t]), successors(pairs[: t - 1])
        rows["latest"].append(hit_rate(latest, pairs[t]))
        rows["older"].append(hit_rate(older, pairs[t]))
        rows["all"].append(hit_rate(successors(pairs[:t]), pairs[t]))
        items = windows[t].events["item_id"]
        recent = windows[t - 1].events["item_id"].value_counts().index[:10]
        old = np.concatenate([x.events["item_id"].to_numpy() for x in windows[: t - 1]])
        old_top = pd.Series(old).value_counts().index[:10]
        rows["pop latest"].append(float(items.isin(recent).mean()))
        rows["pop older"].append(float(items.isin(old_top).mean()))
    return {k: float(np.mean(v)) for k, v in rows.items()}


def per_window(data, n_windows: int) -> list[float | None]:
    """Each window's ``latest / older`` as the lifelong strategy measures it."""
    drift = TransitionDrift()
    for window in time_windows(data, n_windows):
        drift.observe(window.events)
    return drift.ratios_


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="*", default=[], choices=REAL_DATA, help="real datasets")
    ap.add_argument("--streams", nargs="*", default=[], help="synthetic stream names")
    ap.add_argument("--windows", type=int, default=8, help="prequential windows (default 8)")
    ap.add_argument(
        "--per-window", action="store_true", help="each window's ratio (TransitionDrift)"
    )
    args = ap.parse_args(argv)
    worlds = {n: w for f in STREAM_FAMILIES for n, w in synthetic_streams(f).items()}
    unknown = [n for n in args.streams if n not in worlds]
    if unknown:
        ap.error(f"--streams: unknown {unknown}; known: {sorted(worlds)}")
    missing = _common.missing_datasets(args.data)
    if missing:
        ap.error(f"--data: no data for {missing} under {_common.SHARED}")
    if args.windows < 3:
        ap.error(f"--windows must be >= 3; got {args.windows}")
    if not args.data and not args.streams:
        ap.error("name at least one of --data or --streams")
    streams = [(name, lambda n=name: _common.load_prepared({"dataset": n})) for name in args.data]
    streams += [(name, lambda n=name: prepare(worlds[n].generate())) for name in args.streams]
    if args.per_window:
        for name, load in streams:
            ratios = per_window(load(), args.windows)
            print(name, " ".join("–" if r is None else f"{r:.2f}" for r in ratios))
        return 0
    rows = [{"stream": name, **measure(load(), args.windows)} for name, load in streams]
    for r in rows:
        r["ratio"] = r["latest"] / r["older"] if r["older"] else float("nan")
        r["pop ratio"] = r["pop latest"] / r["pop older"] if r["pop older"] else float("nan")
    columns = [
        ("stream", "stream", 0),
        ("latest", "next item in latest window's top 10", 4),
        ("older", "in older windows' top 10", 4),
        ("all", "in all earlier windows' top 10", 4),
        ("ratio", "latest / older", 2),
        ("pop latest", "popular: latest window's top 10", 4),
        ("pop older", "older windows' top 10", 4),
        ("pop ratio", "latest / older (popular)", 2),
    ]
    print(_common.md_table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
