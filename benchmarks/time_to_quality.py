"""Time to quality on ml-100k: validation NDCG@10 against wall seconds, ours beside
RecBole's SASRec run to convergence.

Both train on the same events and validate on the same ones: the leave-one-out split
(each user's last event is the test event, the one before it the validation event).
RecBole's run (``benchmarks/recbole_peer.py``, recorded in
``docs/benchmarks/recbole-sasrec-ml100k-converged.json``: per-epoch train and
validation seconds and validation NDCG@10, one thread) trains on the rest. Ours fits on
everything but the test events with ``validation_events=1``, so its own early-stopping
validation holds out exactly the validation event of each user and trains on the rest;
its per-epoch ``train_seconds`` and ``val_seconds`` (``history_``) make its curve, and
the time the fit spends outside epochs (reading the catalogue, text vectors, building
the module) is counted before the first epoch. Run ours with as many threads as the
peer had (``--threads 1``, the default) on an otherwise quiet machine.

    .venv/bin/python benchmarks/time_to_quality.py --seeds 0 1 2
    .venv/bin/python benchmarks/time_to_quality.py --seeds 0 --no-write   # one curve

Writes the block ``time-to-quality-ml-100k`` of docs/benchmarks.md, its JSON and a PNG
of the curves (``docs/benchmarks/time-to-quality-ml-100k.png``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import RAW_DIR, ROOT, command_line, fmt, load_prepared, md_table, write_block

PEER = ROOT / "docs" / "benchmarks" / "recbole-sasrec-ml100k-converged.json"


def peer_curve(path: Path) -> dict[str, Any]:
    """RecBole's run: wall seconds at the end of each epoch's validation (its set-up
    counted before the first epoch) and the validation NDCG@10 there."""
    run = json.loads(path.read_text())["runs"][0]
    wall, points = float(run["setup_seconds"]), []
    for tr, va, v in zip(
        run["train_seconds_per_epoch"],
        run["valid_seconds_per_epoch"],
        run["valid_ndcg@10_per_epoch"],
        strict=True,
    ):
        wall += tr + va
        points.append((wall, float(v)))
    return {
        "label": f"RecBole {run['versions']['recbole']} SASRec",
        "threads": run["threads"],
        "points": points,
        "test_ndcg@10": run["test"]["ndcg@10"],
        "test_hr@10": run["test"]["hit@10"],
        "n_parameters": run["n_parameters"],
    }


def our_curve(seed: int, params: dict[str, Any], split) -> dict[str, Any]:
    """One fit of ours: its curve and its test figures."""
    from lifelongrec.evaluation import evaluate_model
    from lifelongrec.models import get_model

    model = get_model("sequential", verbose=False, random_state=seed, validation_events=1, **params)
    out = evaluate_model(model, split, k=10, progress=False)
    epochs = [h for h in model.history_ if h["update"] == 0]
    setup = out["fit_seconds"] - sum(h["train_seconds"] + h["val_seconds"] for h in epochs)
    wall, points = setup, []
    for h in epochs:
        wall += h["train_seconds"] + h["val_seconds"]
        points.append((wall, float(h["val_ndcg@10"])))
    return {
        "seed": seed,
        "points": points,
        "fit_seconds": out["fit_seconds"],
        "setup_seconds": setup,
        "test_ndcg@10": out["ndcg@10"],
        "test_hr@10": out["hr@10"],
        "n_parameters": sum(p.numel() for p in model.module_.parameters()),
        "n_windows": model.n_windows_,
    }


def reached(points: list[tuple[float, float]], target: float) -> float | None:
    """Wall seconds at the first epoch whose validation NDCG@10 is at least ``target``."""
    return next((w for w, v in points if v >= target), None)


def best(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(wall seconds, value) of the best validation NDCG@10 (the first if tied)."""
    wall, value = max(points, key=lambda p: (p[1], -p[0]))
    return wall, value


def plot(peer: dict[str, Any], ours: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    w, v = zip(*peer["points"], strict=True)
    ax.plot(w, v, "o-", ms=3, label=peer["label"])
    for r in ours:
        w, v = zip(*r["points"], strict=True)
        ax.plot(w, v, ".-", ms=2, label=f"lifelongrec sequential, seed {r['seed']}")
    ax.axhline(best(peer["points"])[1], ls=":", c="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("wall seconds since the fit started (log scale)")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title("ml-100k: validation NDCG@10 against wall time (1 thread each)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads for ours")
    ap.add_argument("--param", action="append", help="KEY=VALUE for ours (default: none)")
    ap.add_argument("--peer", type=Path, default=PEER)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from lifelongrec.data import leave_one_out
    from lifelongrec.evaluation import parse_params

    torch.set_num_threads(args.threads)
    params = parse_params(args.param)
    peer = peer_curve(args.peer)
    split = leave_one_out(load_prepared({"dataset": "ml-100k"}))
    ours = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        ours.append(our_curve(seed, params, split))
        r = ours[-1]
        print(
            f"seed {seed}: best val {best(r['points'])[1]:.4f}, test ndcg@10 "
            f"{r['test_ndcg@10']:.4f}, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    peer_wall, target = best(peer["points"])
    rows = [
        {
            "run": peer["label"],
            "best": target,
            "best_wall": peer_wall,
            "reach": peer_wall,
            "share": 1.0,
            "fit": peer["points"][-1][0],
            "test": peer["test_ndcg@10"],
            "params": peer["n_parameters"],
        }
    ]
    for r in ours:
        w, v = best(r["points"])
        reach = reached(r["points"], target)
        r.update(best_val=v, best_wall=w, reach_seconds=reach)
        r["reach_share"] = None if reach is None else reach / peer_wall
        rows.append(
            {
                "run": f"ours, seed {r['seed']}",
                "best": v,
                "best_wall": w,
                "reach": reach,
                "share": r["reach_share"],
                "fit": r["fit_seconds"],
                "test": r["test_ndcg@10"],
                "params": r["n_parameters"],
            }
        )
    shares = [r["reach_share"] for r in ours]
    met = all(s is not None and s <= 0.1 for s in shares)
    setting = " ".join(f"`{k}={v}`" for k, v in params.items()) or "the defaults"
    body = [
        f"Ours: {setting} and `validation_events=1` (so that its validation events are "
        f"RecBole's), {args.threads} thread(s), seeds {args.seeds}; RecBole: one run, "
        f"{peer['threads']} thread (`docs/recbole.md`). Validation: each user's event "
        "before the last (943 events, full ranking, the user's other items excluded); "
        "`wall s` counts from the start of the fit, set-up included, at the end of each "
        "epoch's validation. `reaches SASRec's best`: the first epoch at which the "
        f"validation NDCG@10 is at least RecBole's best ({fmt(target)}), and its share "
        "of RecBole's time to that best.",
        "",
        md_table(
            rows,
            [
                ("run", "run", 0),
                ("best", "best val NDCG@10", 4),
                ("best_wall", "wall s at best", 0),
                ("reach", "wall s to reach SASRec's best", 0),
                ("share", "share of SASRec's time", 3),
                ("fit", "fit s (incl. patience)", 0),
                ("test", "test NDCG@10", 4),
                ("params", "parameters", 0),
            ],
        ),
        "",
        f"At most one tenth of SASRec's time on every seed: **{'yes' if met else 'no'}** "
        f"(shares {', '.join('never' if s is None else f'{s:.3f}' for s in shares)}). "
        "Mean test NDCG@10 of ours: "
        f"{statistics.fmean(r['test_ndcg@10'] for r in ours):.4f}.",
        "",
        "![validation NDCG@10 against wall seconds](benchmarks/time-to-quality-ml-100k.png)",
    ]
    print("\n".join(body))
    if not args.no_write:
        RAW_DIR.mkdir(parents=True, exist_ok=True)
        plot(peer, ours, RAW_DIR / "time-to-quality-ml-100k.png")
        write_block(
            "ml-100k",
            "Time to quality: validation NDCG@10 against wall seconds (ml-100k)",
            command_line("time_to_quality.py", argv),
            body,
            {"peer": peer, "ours": ours, "params": params, "threads": args.threads},
            prefix="time-to-quality",
        )


if __name__ == "__main__":
    main()
