"""Where one update strategy gains or loses against another, window by window: NDCG@10 of
the prequential ranking split by how long the target item has been in the stream and by
how many events its user had before.

Runs the sequential model (defaults, or ``--param``) with each strategy of
``--strategies`` (default: retrain and lifelong) on one stream, keeping every evaluated
event's gain (``prequential(per_event=True)``), and prints per window:

* NDCG@10 by the target item's age: ``new`` (its first event in the stream is in this
  window: no model knew it when it ranked), ``last window`` (first seen in the window
  before) and ``older``; with each group's share of the window's events;
* NDCG@10 by the user's tenure: events of the user earlier in the stream (``<10``,
  ``10-29``, ``30+``).

The stream is one of a synthetic family (``--family``, ``--stream``) or a synthetic world
of its own (``--world KEY=VALUE``, :class:`lifelongrec.data.SyntheticWorld`'s
parameters; a stream neither family holds, for diagnosis)::

    .venv/bin/python benchmarks/stream_breakdown.py --family train --stream train-gradual-100k
    .venv/bin/python benchmarks/stream_breakdown.py --world n_events=30000 seed=107 \\
        new_item_rate=0.2 mean_session_views=9
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import md_table, pct

from lifelongrec.data import SyntheticWorld, prepare, synthetic_streams
from lifelongrec.evaluation import parse_params, prequential
from lifelongrec.models import get_model
from lifelongrec.training import STRATEGIES, get_strategy

AGES = ["new", "last window", "older"]
TENURES = ["<10", "10-29", "30+"]


def event_frame(result: dict[str, Any], first_seen: pd.Series, n_before: pd.Series) -> pd.DataFrame:
    """The per-event gains of a ``prequential(per_event=True)`` result (windows 1..N-1),
    each with its window, the target item's age and the user's tenure."""
    frames = []
    windows = result["windows"]
    for w in range(1, len(windows)):
        pe = windows[w].get("per_event")
        if not pe:
            continue
        e = pd.DataFrame(pe)
        e["window"] = w
        first = e["item_id"].map(first_seen).to_numpy(dtype=np.float64)
        e["age"] = np.select(
            [first >= windows[w]["start"], first >= windows[w - 1]["start"]],
            AGES[:2],
            AGES[2],
        )
        key = pd.MultiIndex.from_arrays([e["user_id"], e["timestamp"], e["item_id"]])
        before = n_before.reindex(key).to_numpy(dtype=np.float64)
        e["tenure"] = np.select([before < 10, before < 30], TENURES[:2], TENURES[2])
        frames.append(e)
    return pd.concat(frames, ignore_index=True)


def breakdown(events: dict[str, pd.DataFrame], by: str, groups: list[str]) -> list[dict]:
    """Rows ``window, group, share of the window's events, NDCG@10 per strategy``."""
    names = list(events)
    ref = events[names[0]]
    for name in names[1:]:  # every strategy ranked the same events, in the same order
        if not np.array_equal(events[name]["item_id"].to_numpy(), ref["item_id"].to_numpy()):
            raise ValueError(f"{name} ranked other events than {names[0]}")
    rows = []
    for w in sorted(ref["window"].unique()):
        in_window = ref["window"] == w
        for g in groups:
            mask = in_window & (ref[by] == g)
            n = int(mask.sum())
            if n == 0:
                continue
            row: dict[str, Any] = {"window": int(w), by: g, "share": n / int(in_window.sum())}
            for name in names:
                row[name] = float(events[name]["gain"][mask.to_numpy()].mean())
            rows.append(row)
    return rows


def markdown(rows: list[dict], by: str, names: list[str]) -> str:
    columns = [("window", "window", 0), (by, by, 0), ("share", "share of events", 0)]
    columns += [(n, n, 4) for n in names]
    return md_table([{**r, "share": pct(r["share"])} for r in rows], columns)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="train", choices=["train", "test"])
    ap.add_argument("--stream", default=None, help="a stream of --family")
    ap.add_argument("--world", nargs="+", default=None, metavar="KEY=VALUE")
    ap.add_argument("--strategies", nargs="+", default=["retrain", "lifelong"])
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--param", action="append", help="sequential KEY=VALUE (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    if (args.stream is None) == (args.world is None):
        ap.error("give either --stream or --world")
    unknown = [s for s in args.strategies if s not in STRATEGIES]
    if unknown:
        ap.error(f"--strategies: {unknown} not in {list(STRATEGIES)}")
    if args.stream is not None:
        family = synthetic_streams(args.family)
        if args.stream not in family:
            ap.error(f"--stream: {args.stream!r} not in the {args.family} family {list(family)}")
        world = family[args.stream]
    else:
        world = SyntheticWorld(**parse_params(args.world))
    params = parse_params(args.param or [])
    data = prepare(world.generate())
    ev = data.events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    first_seen = ev.groupby("item_id")["timestamp"].min()
    ev["n_before"] = ev.groupby("user_id").cumcount()
    n_before = ev.groupby(["user_id", "timestamp", "item_id"])["n_before"].first()

    events, means = {}, {}
    for name in args.strategies:
        model = get_model("sequential", **{"verbose": False, **params})
        result = prequential(
            model,
            data,
            get_strategy(name, seed=0),
            n_windows=args.windows,
            k=10,
            progress=False,
            drift="adwin",
            per_event=True,
        )
        events[name] = event_frame(result, first_seen, n_before)
        means[name] = [w["ndcg@10"] for w in result["windows"][1:]]
        print(f"{name}: NDCG@10 per window {[round(v, 4) for v in means[name]]}", flush=True)
    names = list(events)
    ages = breakdown(events, "age", AGES)
    tenures = breakdown(events, "tenure", TENURES)
    print("\nNDCG@10 by the target item's age\n")
    print(markdown(ages, "age", names))
    print("\nNDCG@10 by the user's earlier events\n")
    print(markdown(tenures, "tenure", names))
    out = {"world": world.__dict__, "params": params, "ndcg@10_per_window": means}
    out |= {"by_age": ages, "by_tenure": tenures}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
