"""Issue 15 benchmark: every update strategy on a family of streams nobody tuned for.

For every stream of a family of synthetic streams (``--family train`` or ``test``:
:func:`lifelongrec.data.synthetic_streams`, whose docstring lists them) and every real
dataset of ``--data`` (names of ``_common.DATASETS``, e.g. ``ml-latest-small``), each
model of ``--models`` runs the prequential protocol with every strategy (static,
retrain, finetune, lifelong on the same windows, a fresh drift detector per strategy:
:func:`lifelongrec.evaluation.run_stream` with ``strategy="all"``). One table per family
goes to the ``streams-<family>`` block of docs/benchmarks.md, the raw results to
docs/benchmarks/streams-<family>.json.

The table answers issue 15's done-when per stream: the lifelong strategy's mean NDCG@10
as a share of full retrain's, its update CPU seconds (after the shared first fit) as a
share of retrain's, backward transfer against fine-tune's, how long the drift detector
took to notice a true shift, and the share of test events whose item the model did not
know when it predicted. A summary line per model names the worst stream for lifelong and
where the targets (at least 98 % of retrain's NDCG@10 at no more than 20 % of its update
CPU; BWT above fine-tune's) hold.

    .venv/bin/python benchmarks/streams.py --family train
    .venv/bin/python benchmarks/streams.py --family test --data ml-latest-small
    .venv/bin/python benchmarks/streams.py --family test --data ml-latest-small \\
        --models sequential itemknn als
    # the million-event stream alone, added to the test table:
    .venv/bin/python benchmarks/streams.py --family test --large \\
        --streams test-half-gradual-1m --merge
    # only fine-tune and lifelong again (a changed update recipe), static and retrain
    # kept from the block:
    .venv/bin/python benchmarks/streams.py --family test --data ml-latest-small \\
        --strategies finetune lifelong --merge
    # smoke test (seconds):
    .venv/bin/python benchmarks/streams.py --family train --streams train-small-10k \\
        --events 3000 --windows 3 --models popularity --no-write
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import _common
from _common import (
    DATASETS,
    SYNTHETIC,
    command_line,
    fmt,
    md_table,
    missing_datasets,
    parse_kv,
    pct,
    summary_rows,
    write_block,
)

from lifelongrec.data import STREAM_FAMILIES, SyntheticWorld, synthetic_streams
from lifelongrec.evaluation import parse_params, run_stream
from lifelongrec.training import STRATEGIES

#: The strategies a stream runs, in the table's order (``--strategy all``'s).
STRATEGY_NAMES = list(STRATEGIES)
#: Keys of a one-strategy ``run_stream`` result that describe the run, not the strategy.
_RUN_KEYS = ("data", "preprocessing")

#: Issue 15's targets for the lifelong strategy, against full retraining.
NDCG_SHARE_TARGET = 0.98
CPU_SHARE_TARGET = 0.20
REAL_DATA = [name for name in DATASETS if name != SYNTHETIC]


def provenance(results: list[dict[str, Any]]) -> list[str]:
    """Which command made which rows, when a ``--merge`` run keeps rows of earlier
    commands (nothing when one command made them all): per command (each strategy's
    ``made_by``), the models, streams and strategies it ran and when."""
    by_command: dict[str, dict[str, list[str]]] = {}
    for run in results:
        made: dict[tuple[str, str], list[str]] = {}
        for name, result in run["strategies"].items():
            by = result.get("made_by") or {}
            key = (by.get("command") or "(not recorded)", by.get("run_at") or "?")
            made.setdefault(key, []).append(name)
        for (command, at), names in made.items():
            entry = by_command.setdefault(command, {"rows": [], "at": []})
            row = f"{run['model']} on {run['stream']}"
            entry["rows"].append(
                row if len(names) == len(run["strategies"]) else f"{row} ({', '.join(names)})"
            )
            entry["at"].append(at)
    if len(by_command) < 2:
        return []
    lines = ["Rows by command (a `--merge` run keeps the block's other rows):", ""]
    for command, entry in by_command.items():
        when = sorted(set(entry["at"]))
        span = when[0] if len(when) == 1 else f"{when[0]} to {when[-1]}"
        lines.append(f"- `{command}` (runs started {span}): {', '.join(entry['rows'])}")
    return [*lines, ""]


def shrink(world: SyntheticWorld, n_events: int | None) -> SyntheticWorld:
    """``world`` with ``n_events`` events (``None``: as it is); a fixed user count
    scales with it, so a shortened stream keeps its events per user."""
    if n_events is None or n_events == world.n_events:
        return world
    users = world.n_users
    if users is not None:
        users = max(10, round(users * n_events / world.n_events))
    return dataclasses.replace(world, n_events=n_events, n_users=users)


def stream_settings(name: str, world: SyntheticWorld | None, run: dict[str, Any]) -> dict:
    """A row of the streams' settings table (real data: its size after preprocessing)."""
    if world is None:
        return {"stream": name, "events": run["n_events"], "kind": "real data"}
    users, items = world.sizes()
    shifted = world.shift_at is not None
    return {
        "stream": name,
        "kind": "synthetic",
        "events": world.n_events,
        "users": users,
        "items": items,
        "seed": world.seed,
        "new_items": world.new_item_rate,
        "shift_at": world.shift_at,
        "shift_share": world.shift_share if shifted else None,
        "shift_days": world.shift_days if shifted else None,
        "views": world.mean_session_views,
        "half_life": world.item_half_life_days,
        "chain_redraw": world.chain_redraw_days,
    }


def stream_rows(stream: str, model: str, run: dict[str, Any], k: int) -> list[dict]:
    """:func:`_common.summary_rows` (shares against retrain) plus the detection delay and
    the share of test events (windows 1..N-1) on items unknown at prediction time."""
    rows = []
    for row in summary_rows(stream, model, run, k):
        row = {"stream": row.pop("dataset"), **row}
        r = run["strategies"][row["strategy"]]
        tested = sum(w["n_events"] for w in r["windows"][1:])
        row["test_events"] = tested
        row["unknown_share"] = r["n_unknown_items"] / tested if tested else None
        row["delay"] = detection_delay(r.get("drift"))
        row["recover"] = windows_to_recover(run, row["strategy"], k)
        rows.append(row)
    return rows


#: A strategy has recovered from a shift in the first window (from the one the shift
#: starts in) where its NDCG@k is at least this share of retrain's in the same window.
RECOVERY_SHARE = 0.9


def windows_to_recover(run: dict[str, Any], strategy: str, k: int) -> dict[str, Any] | None:
    """How many windows after the one a true shift starts in ``strategy`` needs until
    its NDCG@k is at least :data:`RECOVERY_SHARE` of retrain's in the same window (0: in
    that window already); ``None`` without a true shift or without retrain;
    ``windows: None`` when it never gets there."""
    drift = run["strategies"][strategy].get("drift") or {}
    shift = drift.get("true_shift_timestamp")
    if shift is None:
        shift = (run.get("shift") or {}).get("shift_timestamp")
    if shift is None or "retrain" not in run["strategies"]:
        return None
    mine = run["strategies"][strategy]["windows"]
    ref = run["strategies"]["retrain"]["windows"]
    key = f"ndcg@{k}"
    evaluated = [i for i in range(1, len(mine)) if mine[i].get(key) is not None]
    later = [i for i in evaluated if mine[i]["end"] > shift]
    if not later:
        return None
    first = later[0]
    for i in later:
        if ref[i][key] is not None and mine[i][key] >= RECOVERY_SHARE * ref[i][key]:
            return {"shift_window": first, "windows": i - first}
    return {"shift_window": first, "windows": None}


def recover_cell(recover: dict[str, Any] | None) -> str:
    if recover is None:
        return "–"
    if recover["windows"] is None:
        gap = round(100 * (1 - RECOVERY_SHARE))
        return f"not within {gap} % (shift in window {recover['shift_window']})"
    return f"{recover['windows']} (shift in window {recover['shift_window']})"


def detection_delay(drift: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"delay_events", "delay_seconds"}`` of the first detection at or after the true
    shift (its start, for a gradual one); ``None`` when there is no detector or no true
    shift; ``None`` figures when the detector never fired after it."""
    if not drift or drift.get("true_shift_timestamp") is None:
        return None
    first = drift.get("first_detection_after_shift")
    if first is None:
        return {"delay_events": None, "delay_seconds": None, "missed": True}
    return {
        "delay_events": first["delay_events"],
        "delay_seconds": first["delay_seconds"],
        "missed": False,
    }


def delay_cell(delay: dict[str, Any] | None) -> str:
    if delay is None:
        return "–"
    if delay["missed"]:
        return "not detected"
    return f"{delay['delay_events']:,} ev / {delay['delay_seconds'] / 86_400:.1f} d"


def against(value: float, target: float) -> str:
    """``value`` as a percentage with the fewest decimals (1 to 3) that keep it apart
    from ``target`` (97.98 % reads as a miss of 98 %, where 98.0 % would not).

    >>> against(0.97985, 0.98), against(0.9, 0.98), against(0.98, 0.98)
    ('97.98 %', '90.0 %', '98.0 %')
    """
    for digits in (1, 2):
        shown = round(100 * value, digits)
        if value == target or shown != round(100 * target, digits):
            return f"{shown:.{digits}f} %"
    return f"{100 * value:.3f} %"


def target_summary(rows: list[dict], model: str) -> str | None:
    """The worst stream for lifelong and where each target holds, for one model."""
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["model"] == model:
            by.setdefault(r["stream"], {})[r["strategy"]] = r
    complete = {
        s: runs
        for s, runs in by.items()
        if {"retrain", "lifelong"} <= set(runs) and runs["lifelong"].get("ndcg_share") is not None
    }
    if not complete:
        return None
    worst = min(complete, key=lambda s: complete[s]["lifelong"]["ndcg_share"])
    life = {s: runs["lifelong"] for s, runs in complete.items()}
    misses = [
        f"{s} ({against(r['ndcg_share'], NDCG_SHARE_TARGET)} at "
        f"{against(r['cpu_share'], CPU_SHARE_TARGET)})"
        for s, r in life.items()
        if not (r["ndcg_share"] >= NDCG_SHARE_TARGET and r["cpu_share"] <= CPU_SHARE_TARGET)
    ]
    text = (
        f"**{model}**: worst stream for lifelong: {worst} "
        f"({pct(life[worst]['ndcg_share'])} of retrain's NDCG@10). "
        f"At least {pct(NDCG_SHARE_TARGET)} of retrain's NDCG@10 at no more than "
        f"{pct(CPU_SHARE_TARGET)} of its update CPU: holds on {len(life) - len(misses)} of "
        f"{len(life)}" + (f" (not on {', '.join(misses)})" if misses else "") + "."
    )
    flops = {s: r for s, r in life.items() if r.get("gflop_share") is not None}
    if flops:
        flop_misses = [
            f"{s} ({against(r['ndcg_share'], NDCG_SHARE_TARGET)} at "
            f"{against(r['gflop_share'], CPU_SHARE_TARGET)})"
            for s, r in flops.items()
            if not (r["ndcg_share"] >= NDCG_SHARE_TARGET and r["gflop_share"] <= CPU_SHARE_TARGET)
        ]
        text += (
            f" The same with its estimated training FLOPs in place of CPU seconds (the "
            f"same on every machine): holds on {len(flops) - len(flop_misses)} of {len(flops)}"
            + (f" (not on {', '.join(flop_misses)})" if flop_misses else "")
            + "."
        )
    with_ft = {s: runs for s, runs in complete.items() if "finetune" in runs}
    if with_ft:
        bwt_misses = [
            f"{s} ({fmt(runs['lifelong']['bwt'])} vs {fmt(runs['finetune']['bwt'])})"
            for s, runs in with_ft.items()
            if not runs["lifelong"]["bwt"] > runs["finetune"]["bwt"]
        ]
        text += (
            f" BWT better than fine-tune's: holds on {len(with_ft) - len(bwt_misses)} of "
            f"{len(with_ft)}" + (f" (not on {', '.join(bwt_misses)})" if bwt_misses else "") + "."
        )
    return text


COLUMNS = [
    ("stream", "stream", 0),
    ("model", "model", 0),
    ("strategy", "strategy", 0),
    ("ndcg", "mean NDCG@{k}", 4),
    ("ndcg_share", "NDCG vs retrain", 0),
    ("cpu", "update CPU s", 1),
    ("cpu_share", "CPU vs retrain", 0),
    ("gflop_share", "est. FLOPs vs retrain", 0),
    ("bwt", "BWT NDCG@{k}", 4),
    ("drifts", "detections", 0),
    ("delay", "detection delay", 0),
    ("recover", "windows to recover", 0),
    ("unknown_share", "unknown items", 0),
]
SETTINGS_COLUMNS = [
    ("stream", "stream", 0),
    ("events", "events", 0),
    ("users", "users", 0),
    ("items", "items", 0),
    ("seed", "seed", 0),
    ("new_items", "new items", 2),
    ("shift_at", "shift at", 2),
    ("shift_share", "shift share", 2),
    ("shift_days", "shift days", 0),
    ("views", "session views", 1),
    ("half_life", "item half-life days", 0),
    ("chain_redraw", "next-item chain redrawn every (days)", 0),
]


def table_columns(k: int) -> list[tuple[str, str, int]]:
    """The results table's ``(key, header, decimals)``; the metric keys carry ``k``."""
    keys = {"ndcg": f"ndcg@{k}"}
    return [(keys.get(key, key), head.format(k=k), d) for key, head, d in COLUMNS]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--family", default="train", choices=list(STREAM_FAMILIES))
    ap.add_argument("--large", action="store_true", help="also the million-event stream(s)")
    ap.add_argument(
        "--streams",
        nargs="*",
        default=None,
        metavar="NAME",
        help="only these streams of the family (default: all; none given: none)",
    )
    ap.add_argument("--data", nargs="*", default=[], choices=REAL_DATA, help="real datasets to add")
    ap.add_argument(
        "--events",
        type=int,
        default=None,
        help="shorten every synthetic stream to this many events (smoke tests)",
    )
    ap.add_argument("--models", nargs="+", default=["sequential"])
    ap.add_argument(
        "--strategies",
        nargs="+",
        default=None,
        choices=STRATEGY_NAMES,
        help="rerun only these strategies and keep the block's other ones of the same "
        "(stream, model) (needs --merge; default: all)",
    )
    ap.add_argument("--windows", type=int, default=8)
    _common.add_stream_options(ap)
    ap.add_argument(
        "--catalogue-time",
        default=None,
        metavar="NAME",
        help="admit catalogue items when published (their time: an item column or "
        "attribute, 'arrival' in the synthetic streams; real datasets without it: none)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="of the strategies (the lifelong replay sample); a model's own seed is a "
        "--param (random_state=N for the sequential model)",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the block's earlier results of other (stream, model)",
    )
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)

    family = synthetic_streams(args.family, large=args.large)
    names = list(family) if args.streams is None else args.streams
    unknown = [n for n in names if n not in family]
    if unknown:
        ap.error(f"--streams: {unknown} not in the {args.family} family {list(family)}")
    missing = missing_datasets(args.data)
    if missing:
        ap.error(f"--data: no data for {missing} under {_common.SHARED}")
    per_model = parse_kv(args.param)
    lifelong = parse_params(args.lifelong or [])
    block = f"streams-{args.family}"

    runs: dict[tuple[str, str], dict[str, Any]] = {}  # (stream, model) -> run
    if args.merge:
        runs.update(_common.earlier_runs(block, "stream"))
    if args.strategies is not None:
        if not args.merge:
            ap.error("--strategies: needs --merge (the other strategies come from the block)")
        others = set(STRATEGY_NAMES) - set(args.strategies)
        absent = [
            f"{n}/{m}"
            for n in [*names, *args.data]
            for m in args.models
            if others - set(runs.get((n, m), {}).get("strategies", {}))
        ]
        if absent:
            ap.error(f"--strategies: the block has no earlier run of the others for {absent}")
    jobs: list[tuple[str, SyntheticWorld | None]] = [
        (n, shrink(family[n], args.events)) for n in names
    ]
    jobs += [(d, None) for d in args.data]
    for name, world in jobs:
        dataset = world.generate() if world is not None else None
        source = name if world is not None else str(DATASETS[name])
        for model in args.models:
            params = {**per_model.get("*", {}), **per_model.get(model, {})}
            t0 = time.perf_counter()
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            settings = {
                "params": params,
                "drift": args.drift,
                "seed": args.seed,
                "progress": False,
                "dataset": dataset,
                "catalogue_time": args.catalogue_time if world is not None else None,
                **lifelong,
            }
            made_by = {"command": command_line("streams.py", argv), "run_at": started}
            if args.strategies is None:
                got = run_stream(source, model, "all", args.windows, args.k, **settings)
                strategies = {s: {**r, "made_by": made_by} for s, r in got["strategies"].items()}
            else:  # the others as the block has them
                strategies = dict(runs[(name, model)]["strategies"])
                for s in args.strategies:
                    got = run_stream(source, model, s, args.windows, args.k, **settings)
                    kept = {k: v for k, v in got.items() if k not in _RUN_KEYS}
                    strategies[s] = {**kept, "made_by": made_by}
                strategies = {s: strategies[s] for s in STRATEGY_NAMES}
            run = {
                "stream": name,
                "model": model,
                "config": None if world is None else dataclasses.asdict(world),
                "n_events": got["n_events"],
                "params": got["params"],
                "strategies": strategies,
                "wall_seconds": time.perf_counter() - t0,
            }
            if dataset is not None:
                run["shift"] = {
                    key: dataset.meta[key]
                    for key in ("shift_timestamp", "shift_end_timestamp", "shift_users")
                }
            runs[(name, model)] = run
            for r in stream_rows(name, model, run, args.k):
                print(
                    f"{name} {model} {r['strategy']}: ndcg@{args.k}="
                    f"{fmt(r[f'ndcg@{args.k}'])} ({pct(r.get('ndcg_share'))} of retrain) "
                    f"cpu={r['cpu']:.1f}s ({pct(r.get('cpu_share'))}; est. FLOPs "
                    f"{pct(r.get('gflop_share'))}) bwt={fmt(r['bwt'])} "
                    f"delay={delay_cell(r['delay'])} unknown={pct(r['unknown_share'])}",
                    flush=True,
                )

    results = list(runs.values())
    rows = [row for run in results for row in stream_rows(run["stream"], run["model"], run, args.k)]
    table = [
        {
            **r,
            "ndcg_share": pct(r.get("ndcg_share")),
            "cpu_share": pct(r.get("cpu_share")),
            "gflop_share": pct(r.get("gflop_share")),
            "unknown_share": pct(r.get("unknown_share")),
            "delay": delay_cell(r["delay"]),
            "recover": recover_cell(r["recover"]),
        }
        for r in rows
    ]
    settings = {}
    for run in results:
        world = SyntheticWorld(**run["config"]) if run.get("config") else None
        settings.setdefault(run["stream"], stream_settings(run["stream"], world, run))
    models = list(dict.fromkeys(r["model"] for r in rows))
    summaries = [s for s in (target_summary(rows, m) for m in models) if s]
    lifelong_settings = {
        f"{r['stream']}/{r['model']}": r["strategies"]["lifelong"]["strategy_params"]
        for r in results
        if "lifelong" in r["strategies"]
    }
    distinct = {json.dumps(v, sort_keys=True) for v in lifelong_settings.values()}
    if len(distinct) == 1:  # the same everywhere: once
        lifelong_settings = json.loads(distinct.pop())
    synthetic_runs = [s for s in settings.values() if s["kind"] == "synthetic"]
    real_runs = [s["stream"] for s in settings.values() if s["kind"] != "synthetic"]
    sources = []
    if synthetic_runs:
        sources.append(
            f"{len(synthetic_runs)} of the {len(family)} streams of the {args.family} family "
            "of `lifelongrec.data.synthetic_streams` (its docstring describes each)"
            + (f", shortened to {args.events:,} events each" if args.events else "")
        )
    if real_runs:
        sources.append(", ".join(real_runs) + " (real data, preprocessed as `lifelongrec stream`)")
    body = [
        *provenance(results),
        "Streams: " + "; ".join(sources) + ".",
        "",
        md_table(list(settings.values()), SETTINGS_COLUMNS),
        "",
        f"Protocol: `lifelongrec stream --strategy all` on each stream ({args.windows} "
        "windows of equal event counts; window 0 is learned, every later window is first "
        "ranked event by event from the past only, then learned). Means over windows "
        f"1..{args.windows - 1}. `update CPU s`: process CPU seconds of the learning calls "
        "after the first fit (which all strategies share); shares are against `retrain` of "
        "the same stream and model. `est. FLOPs vs retrain`: the same share of the "
        "training FLOPs the model estimates it spent (the sequential model's cost model, "
        "docs/lifelong.md: forward passes of training and validation ranking; the same on "
        "every machine, where CPU seconds vary by about a quarter between runs). "
        "BWT: mean over windows 0..N-2 of (final model's "
        "NDCG@10 on the window - NDCG@10 right after learning it); negative = forgetting. "
        f"Detections: how often `{args.drift}` fired on the per-event hit stream; "
        "detection delay: from the start of the true shift (of a gradual one too) to the "
        "first detection at or after it, in monitored events and days (– without a true "
        "shift). Windows to recover: from the window the true shift starts in, how many "
        f"windows until the strategy's NDCG@10 is at least {100 * RECOVERY_SHARE:g} % of "
        "retrain's in the same "
        "window (0: already in that window). Unknown items: share of the "
        "test events (windows 1..N-1) whose item the model did not know when it ranked "
        "(a miss by construction). "
        + (
            f"Catalogue: every synthetic stream's items join the models when published "
            f"(`--catalogue-time {args.catalogue_time}`), and each event ranks only the "
            "items published by its time. "
            if args.catalogue_time
            else "Items join a model with their first learned event (no catalogue). "
        )
        + f"Lifelong settings: {json.dumps(lifelong_settings)}. "
        f"Model parameters given: {json.dumps(per_model) if per_model else 'defaults'}.",
        "",
        md_table(table, table_columns(args.k)),
        "",
        *[line for s in summaries for line in (s, "")],
    ]
    if body[-1] == "":
        body.pop()
    print("\n".join(body))
    raw = {"family": args.family, "results": results, "rows": rows}
    if not args.no_write:
        title = f"Streams nobody tuned for: the {args.family} family, every update strategy"
        write_block(
            args.family, title, command_line("streams.py", argv), body, raw, prefix="streams"
        )
    return raw


if __name__ == "__main__":
    main()
