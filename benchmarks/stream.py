"""Issue 4 benchmark: every strategy of the prequential protocol, per dataset and model.

For each (dataset, model) this runs ``lifelongrec stream --strategy all`` in-process
(:func:`lifelongrec.evaluation.run_stream`: static, retrain, finetune and lifelong on the same
windows, a fresh drift detector per strategy) and writes one table to the
``stream-<block>`` block of docs/benchmarks.md, the raw results to
docs/benchmarks/stream-<block>.json and one PNG per (dataset, model) beside it.

The table answers issue 4's done-when: the lifelong strategy's mean NDCG@10 as a share of
full retrain's, its update compute as a share of full retrain's (wall and CPU seconds of
the learning calls after the shared first fit), and backward transfer against naive
fine-tuning.

    .venv/bin/python benchmarks/stream.py --datasets ml-latest-small --models sequential ease itemknn
    .venv/bin/python benchmarks/stream.py --datasets synthetic --synthetic-events 100000 \\
        --shift-at 0.5 --models sequential ease itemknn --block synthetic
    # smoke test (seconds):
    .venv/bin/python benchmarks/stream.py --datasets synthetic --synthetic-events 3000 \\
        --windows 3 --models popularity --no-write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import _common
from _common import (
    DATASETS,
    STRATEGY_ORDER,
    command_line,
    fmt,
    md_table,
    parse_kv,
    pct,
    summary_rows,
    write_block,
)

from lifelongrec.evaluation import parse_params, plot_prequential, run_stream


def _imported_params(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per ``dataset/model/strategy`` of imported runs: the model parameters they ran
    with that differ from the model's defaults (``verbose`` and ``device`` left out)."""
    from lifelongrec.models import get_model

    out: dict[str, dict[str, Any]] = {}
    for run in results:
        for name in run.get("imported", {}):
            got = run["strategies"][name].get("params") or {}
            defaults = get_model(run["model"]).get_params()
            diff = {
                k: v
                for k, v in got.items()
                if k not in ("verbose", "device") and k in defaults and defaults[k] != v
            }
            if diff:
                out[f"{run['dataset']}/{run['model']}/{name}"] = diff
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="+", default=["ml-latest-small"], choices=list(DATASETS))
    ap.add_argument(
        "--models", nargs="*", default=["sequential", "ease", "itemknn"], help="none: imports only"
    )
    ap.add_argument("--windows", type=int, default=10)
    _common.add_stream_options(ap)
    ap.add_argument("--shift-at", type=float, default=None, help="synthetic only")
    ap.add_argument("--synthetic-events", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block", default=None, help="block stream-<block> (default stream-all)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument(
        "--strategies", nargs="+", default=None, choices=STRATEGY_ORDER, help="default: all"
    )
    ap.add_argument(
        "--import",
        dest="imports",
        nargs="+",
        default=[],
        metavar="DATASET:MODEL:FILE",
        help="add the output of `lifelongrec stream --json` (one strategy or all) run "
        "separately (e.g. one strategy per process), as that dataset and model",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the block's earlier results of other (dataset, model, strategy)",
    )
    args = ap.parse_args(argv)

    per_model = parse_kv(args.param)
    lifelong = parse_params(args.lifelong or [])
    block = f"stream-{args.block or 'all'}"
    runs: dict[tuple[str, str], dict[str, Any]] = {}  # (dataset, model) -> run
    if args.merge:
        runs.update(_common.earlier_runs(block, "dataset"))
    for spec in args.imports:
        dataset, model, path = spec.split(":", 2)
        got = json.loads(Path(path).read_text())
        found = got["strategies"] if "strategies" in got else {got["strategy"]: got}
        run = runs.setdefault((dataset, model), {"dataset": dataset, "model": model})
        run.setdefault("strategies", {}).update(found)
        run.setdefault("imported", {}).update({name: path for name in found})
    for dataset in args.datasets:
        for model in args.models:
            params = {**per_model.get("*", {}), **per_model.get(model, {})}
            t0 = time.perf_counter()
            names = args.strategies or ["all"]
            out: dict[str, Any] = {"dataset": dataset, "model": model, "strategies": {}}
            for name in names:
                got = run_stream(
                    str(DATASETS[dataset]),
                    model,
                    name,
                    args.windows,
                    args.k,
                    params=params,
                    drift=args.drift,
                    shift_at=args.shift_at,
                    plot=None,  # drawn below, from every strategy of the run
                    synthetic_events=args.synthetic_events,
                    seed=args.seed,
                    progress=False,
                    **(lifelong if name in ("all", "lifelong") else {}),
                )
                out["strategies"].update(got["strategies"] if name == "all" else {name: got})
                out["params"] = got["params"]
            out["wall_seconds"] = time.perf_counter() - t0
            run = runs.setdefault((dataset, model), {"dataset": dataset, "model": model})
            run.setdefault("strategies", {}).update(out.pop("strategies"))
            run.update(out)
    results = list(runs.values())
    for run in results:
        if not args.no_write and len(run["strategies"]) > 1:
            order = [s for s in STRATEGY_ORDER if s in run["strategies"]]
            plot_prequential(
                {s: run["strategies"][s] for s in order},
                _common.RAW_DIR / f"{block}-{run['dataset']}-{run['model']}.png",
            )
    rows = []
    for run in results:
        new_rows = summary_rows(run["dataset"], run["model"], run, args.k)
        rows += new_rows
        for r in new_rows:
            print(
                f"{run['dataset']} {run['model']} {r['strategy']}: "
                f"ndcg@{args.k}={fmt(r[f'ndcg@{args.k}'])} ({pct(r.get('ndcg_share'))} of "
                f"retrain) cpu={r['cpu']:.1f}s ({pct(r.get('cpu_share'))}) bwt={fmt(r['bwt'])}",
                flush=True,
            )
    k = args.k
    table = [
        {
            **r,
            "ndcg_share": pct(r.get("ndcg_share")),
            "cpu_share": pct(r.get("cpu_share")),
            "wall_share": pct(r.get("wall_share")),
        }
        for r in rows
    ]
    cols = [
        ("dataset", "dataset", 0),
        ("model", "model", 0),
        ("strategy", "strategy", 0),
        (f"recall@{k}", f"mean Recall@{k}", 4),
        (f"ndcg@{k}", f"mean NDCG@{k}", 4),
        ("ndcg_share", "NDCG vs retrain", 0),
        ("bwt", f"BWT NDCG@{k}", 4),
        ("wall", "update s", 1),
        ("cpu", "update CPU s", 1),
        ("cpu_share", "CPU vs retrain", 0),
        ("first", "first fit s", 1),
        ("drifts", "drift detections", 0),
    ]
    lifelong_settings = {
        f"{r['dataset']}/{r['model']}": r["strategies"]["lifelong"]["strategy_params"]
        for r in results
        if "lifelong" in r["strategies"]
    }
    imported = {f"{r['dataset']}/{r['model']}": r["imported"] for r in results if "imported" in r}
    imported_params = _imported_params(results)
    body = [
        f"Protocol: `lifelongrec stream --strategy all` ({args.windows} windows of equal "
        "event counts; window 0 is learned, every later window is first ranked event by "
        "event from the past only (full catalogue, the user's earlier items excluded), then "
        f"learned). Means over windows 1..{args.windows - 1}. `update s` / `update CPU s`: "
        "wall and process CPU seconds of the learning calls after the first fit (which all "
        "strategies share); shares are against `retrain` of the same model and run. BWT: "
        "mean over windows 0..N-2 of (final model's NDCG@10 on the window - NDCG@10 right "
        "after learning it); negative = forgetting. Drift: "
        f"`{args.drift}` on the per-event hit stream; the lifelong strategy reacts "
        "(its next update runs more epochs with a smaller replay share). "
        f"Lifelong settings: {json.dumps(lifelong_settings)}. "
        f"Model parameters given: {json.dumps(per_model) if per_model else 'defaults'}."
        + (
            f" Imported from separate `lifelongrec stream --json` runs: {json.dumps(imported)}."
            if imported
            else ""
        )
        + (
            " Model parameters of the imported runs that differ from the model's defaults: "
            f"{json.dumps(imported_params)}."
            if imported_params
            else ""
        ),
        "",
        md_table(table, cols),
        "",
        "Plots (NDCG@10 per window, cumulative update seconds): "
        + ", ".join(f"`docs/benchmarks/{block}-{r['dataset']}-{r['model']}.png`" for r in results)
        + ".",
    ]
    print("\n".join(body))
    if not args.no_write:
        command = command_line("stream.py", argv)
        title = "Prequential (streaming) evaluation: static, retrain, fine-tune, lifelong"
        if args.block:
            title += f" ({args.block})"
        write_block(
            args.block or "all", title, command, body, {"results": results, "rows": rows}, "stream"
        )


if __name__ == "__main__":
    main()
