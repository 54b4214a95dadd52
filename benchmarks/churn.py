"""Memory of the sequential model on a long stream whose ids churn (issue 4, item 1).

The stream is the synthetic shop with a constant population (no arrivals, no drift),
cut into ``--windows`` windows of equal event counts, in which ids *churn*: at the start
of each window a share ``--churn`` of the items and of the users retire their id and go
on under a new one (``i000042`` becomes ``i000042~g1``, then ``~g2``...: a product
relaunched under a new SKU, a user who signs up again). The set of active users and
items is constant; the set of ids seen grows without end. Every window's ``items`` holds
the catalogue rows of its ids (a new id has its base item's content).

The model learns window 0 with ``fit`` and every later window with ``partial_fit``,
twice: without expiry (tables grow with every new id) and with ``user_ttl`` =
``item_ttl`` = ``--ttl-windows`` window lengths (retired ids expire and their rows are
reused). After each window it reports the table rows (allocated, active, free), the
bytes the model holds (``SequentialRecommender.memory_report``: parameters, optimiser,
EWC, histories, interaction matrices, vocabularies) and the process RSS.

    .venv/bin/python benchmarks/churn.py --out docs/benchmarks/churn.json
    .venv/bin/python benchmarks/churn.py --quick --out /tmp/churn.json   # seconds

Writes the JSON to ``--out`` and a markdown table block beside it (``.md``), and prints
the block.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.data import Dataset, synthetic
from lifelongrec.models import SequentialRecommender

MODEL = {
    "dim": 32,
    "n_layers": 1,
    "n_heads": 2,
    "max_len": 20,
    "epochs": 3,
    "partial_fit_epochs": 1,
    "batch_size": 128,
    "lr": 0.005,
    "text_encoder": None,
    "validation": False,
    "verbose": False,
    "device": "cpu",
}
QUICK = {"windows": 6, "users": 60, "items": 80, "events_per_window": 300}


def churn_stream(
    n_windows: int,
    n_users: int,
    n_items: int,
    events_per_window: int,
    churn: float,
    seed: int = 0,
    n_categories: int = 8,
) -> tuple[list[Dataset], dict[str, Any]]:
    """The churning stream: one :class:`Dataset` per window and facts about it.

    Returns ``(windows, info)``; ``info`` has ``n_users``, ``n_items`` (the constant
    active population), ``window_seconds`` (mean window length), ``n_user_ids`` and
    ``n_item_ids`` (distinct ids over the stream).
    """
    data = synthetic(
        n_events=n_windows * events_per_window,
        seed=seed,
        n_users=n_users,
        n_items=n_items,
        n_categories=n_categories,
        new_item_rate=0.0,
        new_user_rate=0.0,
        interest_drift=0.0,
        novelty_boost=0.0,
        duration_days=max(30.0, 2.0 * n_windows),
    )
    ev = data.events
    window = np.arange(len(ev)) // events_per_window
    rng = np.random.default_rng(seed + 1)

    def generations(names: np.ndarray) -> pd.DataFrame:
        bump = rng.random((n_windows, len(names))) < churn
        bump[0] = False
        return pd.DataFrame(np.cumsum(bump, axis=0), columns=names)

    def renamed(column: str, gen: pd.DataFrame) -> pd.Series:
        base = ev[column].astype(str)
        g = gen.to_numpy()[window, gen.columns.get_indexer(base)]
        return base.where(g == 0, base + "~g" + pd.Series(g, index=ev.index).astype(str))

    u_gen = generations(np.sort(ev["user_id"].astype(str).unique()))
    i_gen = generations(data.items["item_id"].astype(str).to_numpy())
    ev = ev.assign(user_id=renamed("user_id", u_gen), item_id=renamed("item_id", i_gen))
    catalogue = data.items.set_index(data.items["item_id"].astype(str))
    windows = []
    for w in range(n_windows):
        part = ev[window == w].reset_index(drop=True)
        ids = pd.unique(part["item_id"])
        rows = catalogue.loc[[i.split("~")[0] for i in ids]].reset_index(drop=True)
        windows.append(Dataset(events=part, items=rows.assign(item_id=ids), name=f"w{w}"))
    span = int(ev["timestamp"].iloc[-1] - ev["timestamp"].iloc[0])
    info = {
        "n_users": int(data.events["user_id"].nunique()),
        "n_items": int(data.events["item_id"].nunique()),
        "window_seconds": span / n_windows,
        "n_user_ids": int(ev["user_id"].nunique()),
        "n_item_ids": int(ev["item_id"].nunique()),
    }
    return windows, info


def rss_bytes() -> int:
    """Resident set size of this process now (``/proc``), else its peak (``getrusage``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)


def run_stream(
    windows: list[Dataset], params: dict[str, Any], ttl: float | None
) -> list[dict[str, Any]]:
    """Learn the windows (``fit`` then ``partial_fit``) with ``user_ttl = item_ttl = ttl``;
    one record per window: its index, events, learning seconds, ``memory_report()`` and
    ``rss_bytes``, plus the ids expired by that update."""
    model = SequentialRecommender(**{**params, "user_ttl": ttl, "item_ttl": ttl})
    records = []
    for w, data in enumerate(windows):
        t0 = time.perf_counter()
        if w == 0:
            model.fit(data)
        else:
            model.partial_fit(data)
        seconds = time.perf_counter() - t0
        rec = {"window": w, "n_events": len(data.events), "seconds": round(seconds, 3)}
        rec.update(model.memory_report())
        rec["expired_users"] = len(model.expired_["users"]) if w else 0
        rec["expired_items"] = len(model.expired_["items"]) if w else 0
        rec["rss_bytes"] = rss_bytes()
        records.append(rec)
    return records


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f}"


def markdown(result: dict[str, Any]) -> str:
    """The block for docs/benchmarks.md: per window, both runs side by side."""
    runs = result["runs"]
    a, b = runs["no_expiry"], runs["expiry"]
    cfg = result["config"]
    lines = [
        f"### Churning ids: table rows and memory per window ({cfg['windows']} windows)",
        "",
        f"`{result['command']}`",
        "",
        f"{result['info']['n_users']} users and {result['info']['n_items']} items active "
        f"throughout; {cfg['churn']:.0%} of each renamed per window "
        f"({result['info']['n_user_ids']} user ids and {result['info']['n_item_ids']} item "
        f"ids in all); {cfg['events_per_window']} events per window; expiry with "
        f"`user_ttl = item_ttl = {cfg['ttl_windows']}` windows "
        f"({result['ttl_seconds']:.0f} s). Rows: allocated / active / free. MiB: what the "
        "model holds (parameters, AdamW state, histories, interaction matrices, "
        "vocabularies); RSS: the whole process (both runs share it, the expiry run second).",
        "",
        "| window | items, no expiry | items, expiry | users, no expiry | users, expiry "
        "| MiB, no expiry | MiB, expiry | RSS MiB, no expiry | RSS MiB, expiry |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x, y in zip(a, b, strict=True):
        lines.append(
            f"| {x['window']} | {x['item_rows']} | {y['item_rows']} / {y['item_active']} / "
            f"{y['item_free']} | {x['user_rows']} | {y['user_rows']} / {y['user_active']} / "
            f"{y['user_free']} | {_mib(x['total_bytes'])} | {_mib(y['total_bytes'])} | "
            f"{_mib(x['rss_bytes'])} | {_mib(y['rss_bytes'])} |"
        )
    s = result["summary"]
    lines += [
        "",
        f"Item rows, last window: {s['no_expiry']['item_rows_last']} without expiry, "
        f"{s['expiry']['item_rows_last']} with (most over the second half "
        f"{s['expiry']['item_rows_max_second_half']}, over the first half "
        f"{s['expiry']['item_rows_max_first_half']}); model MiB, last window: "
        f"{_mib(s['no_expiry']['total_bytes_last'])} vs {_mib(s['expiry']['total_bytes_last'])}.",
        "",
    ]
    return "\n".join(lines)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    half = len(records) // 2
    rows = [r["item_rows"] for r in records]
    users = [r["user_rows"] for r in records]
    total = [r["total_bytes"] for r in records]
    return {
        "item_rows_first": rows[0],
        "item_rows_last": rows[-1],
        "item_rows_max_first_half": max(rows[: half or 1]),
        "item_rows_max_second_half": max(rows[half:]),
        "user_rows_last": users[-1],
        "user_rows_max_first_half": max(users[: half or 1]),
        "user_rows_max_second_half": max(users[half:]),
        "total_bytes_first": total[0],
        "total_bytes_last": total[-1],
        "total_bytes_max_second_half": max(total[half:]),
        "seconds": round(sum(r["seconds"] for r in records), 2),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write (.md beside it)")
    p.add_argument("--windows", type=int, default=40)
    p.add_argument("--users", type=int, default=400, help="active users (constant)")
    p.add_argument("--items", type=int, default=600, help="active items (constant)")
    p.add_argument("--events-per-window", type=int, default=1500)
    p.add_argument("--churn", type=float, default=0.1, help="share of ids renamed per window")
    p.add_argument("--ttl-windows", type=float, default=2.0, help="time-to-live, in windows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=MODEL["dim"])
    p.add_argument("--epochs", type=int, default=MODEL["epochs"], help="of the first fit")
    p.add_argument("--partial-fit-epochs", type=int, default=MODEL["partial_fit_epochs"])
    p.add_argument("--quick", action="store_true", help=f"tiny sizes, seconds: {QUICK}")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.windows < 2 or not 0 <= args.churn <= 1 or args.ttl_windows <= 0:
        raise SystemExit("need --windows >= 2, 0 <= --churn <= 1 and --ttl-windows > 0")
    windows, info = churn_stream(
        args.windows, args.users, args.items, args.events_per_window, args.churn, args.seed
    )
    params = {
        **MODEL,
        "dim": args.dim,
        "epochs": args.epochs,
        "partial_fit_epochs": args.partial_fit_epochs,
        "random_state": args.seed,
    }
    ttl = args.ttl_windows * info["window_seconds"]
    runs = {}
    for name, t in (("no_expiry", None), ("expiry", ttl)):
        t0 = time.perf_counter()
        runs[name] = run_stream(windows, params, t)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    result = {
        "command": "python benchmarks/churn.py " + shlex.join(argv or sys.argv[1:]),
        "config": {
            "windows": args.windows,
            "users": args.users,
            "items": args.items,
            "events_per_window": args.events_per_window,
            "churn": args.churn,
            "ttl_windows": args.ttl_windows,
            "seed": args.seed,
            "model": params,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "info": info,
        "ttl_seconds": ttl,
        "runs": runs,
        "summary": {name: summarise(recs) for name, recs in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    block = markdown(result)
    args.out.with_suffix(".md").write_text(block)
    print(block)
    return result


if __name__ == "__main__":
    main()
