"""Choosing a model's settings on validation events only, then testing the choice once.

Stage 1 is ``lifelongrec tune`` (leave-one-out protocol: each user's last event is the
test event and is left out, the ``--valid-events`` before it are validation events):
Optuna's TPE tries ``--trials`` settings of the model's default search space, each fitted
once (seed 0). One fit's validation figure moves with the seed by about as much as the
settings differ, so the best of many trials is flattered by its luck. Stage 2 fits the
starting point and the ``--top`` best settings again with every seed of ``--seeds``, on
the same validation events, and chooses the best mean. Stage 3 (``--test``) reports
the test figure (``lifelongrec evaluate``'s protocol: fit on every event but the
users' last, rank the last) of the starting point and of the choice, with the same
seeds; nothing of stage 3 feeds back into the choice.

    .venv/bin/lifelongrec tune --data ../shared/data/ml-100k --model sequential \\
        --trials 40 --timeout 3000 --json > study.json
    .venv/bin/python benchmarks/tune.py --data ml-100k --study study.json --test
    # or everything in one go (stage 1 included):
    .venv/bin/python benchmarks/tune.py --data ml-100k --trials 40 --timeout 3000 --test
    # smoke test (seconds):
    .venv/bin/python benchmarks/tune.py --data synthetic --model itemknn --trials 3 \\
        --top 2 --seeds 0 1 --test --no-write

Writes the block ``tune-<data>`` (``--block NAME``: ``tune-<data>-NAME``) of
docs/benchmarks.md and its JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    DATASETS,
    ROOT,
    SYNTHETIC,
    command_line,
    load_prepared,
    md_table,
    write_block,
)


def _quiet(model: str, params: dict[str, Any]) -> dict[str, Any]:
    from lifelongrec.models import MODELS

    names = MODELS[model].param_names()
    return {**params, **({"verbose": False} if "verbose" in names else {})}


def _seeded(model: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    from lifelongrec.models import MODELS

    names = MODELS[model].param_names()
    key = "random_state" if "random_state" in names else "seed" if "seed" in names else None
    return {**_quiet(model, params), **({key: seed} if key else {})}


def study(args: argparse.Namespace) -> dict[str, Any]:
    """Stage 1: the study of ``--study`` (``lifelongrec tune --json``), or a new one."""
    if args.study:
        return json.loads(Path(args.study).read_text())
    if args.trials == 0:  # no search: stage 2 re-scores the starting point and --extra
        from lifelongrec.data import leave_one_out

        data = load_prepared({"dataset": args.data, "synthetic_events": args.synthetic_events})
        split = leave_one_out(data, n_valid=args.valid_events)
        return {
            "model": args.model,
            "protocol": "loo",
            "n_valid": args.valid_events,
            "n_validation": len(split.valid),
            "n_left_out": len(split.test),
            "default_value": None,
            "trials": [],
            "space": {},
            "seconds": 0.0,
        }
    from lifelongrec.registry import run_tune

    source = SYNTHETIC if args.data == SYNTHETIC else str(DATASETS[args.data])
    return run_tune(
        source,
        args.model,
        params=_quiet(args.model, {}),
        n_trials=args.trials,
        n_valid=args.valid_events,
        timeout=args.timeout,
        synthetic_events=args.synthetic_events,
        notify=lambda line: print(line, flush=True),
    )


def candidates(
    result: dict[str, Any], top: int, max_seconds: float | None = None
) -> list[dict[str, Any]]:
    """The starting point and the ``top`` best distinct settings of a study (of those
    whose trial took at most ``max_seconds``, when given)."""
    start = {"label": "starting point", "params": {}, "stage1": result["default_value"]}
    out: list[dict[str, Any]] = [start]
    seen = {json.dumps({}, sort_keys=True)}
    for t in sorted(result["trials"], key=lambda t: -t["value"]):
        key = json.dumps(t["params"], sort_keys=True, default=str)
        if key in seen or (max_seconds is not None and t["seconds"] > max_seconds):
            continue
        seen.add(key)
        out.append({"label": f"trial {t['number']}", "params": t["params"], "stage1": t["value"]})
        if len(out) > top:
            break
    return out


def rescore(args, data, settings: list[dict], seeds: list[int]) -> None:
    """Stage 2: every setting fitted with every seed, on the study's validation events."""
    from lifelongrec.data import leave_one_out
    from lifelongrec.models import get_model
    from lifelongrec.registry import validation_score

    split = leave_one_out(data, n_valid=args.valid_events)
    for s in settings:
        if "validation" in s:  # reused from an earlier run (--reuse)
            continue
        s["validation"] = []
        for seed in seeds:
            t0 = time.perf_counter()
            model = get_model(args.model, **_seeded(args.model, s["params"], seed))
            model.fit(split.train)
            fit = time.perf_counter() - t0
            v = validation_score(model, split.train.events, split.valid.events, 10)["ndcg@10"]
            s["validation"].append({"seed": seed, "ndcg@10": v, "fit_seconds": fit})
            print(f"{s['label']:16s} seed={seed} validation ndcg@10={v:.4f} fit={fit:.0f}s")
        vals = [r["ndcg@10"] for r in s["validation"]]
        s["val_mean"] = statistics.fmean(vals)
        s["val_std"] = statistics.stdev(vals) if len(vals) > 1 else None


def test_figures(args, data, settings: list[dict], seeds: list[int]) -> None:
    """Stage 3: the test figures of the given settings (after the choice)."""
    from lifelongrec.data import leave_one_out
    from lifelongrec.evaluation import evaluate_model
    from lifelongrec.models import get_model

    split = leave_one_out(data)
    for s in settings:
        if "test" in s:  # reused from an earlier run (--reuse)
            continue
        s["test"] = []
        for seed in seeds:
            model = get_model(args.model, **_seeded(args.model, s["params"], seed))
            out = evaluate_model(model, split, k=10, progress=False)
            s["test"].append({"seed": seed, **{k: out[k] for k in ("ndcg@10", "hr@10")}})
            s["test"][-1]["fit_seconds"] = out["fit_seconds"]
            print(f"{s['label']:16s} seed={seed} test ndcg@10={out['ndcg@10']:.4f}")
        for m in ("ndcg@10", "hr@10", "fit_seconds"):
            vals = [r[m] for r in s["test"]]
            s[f"test_{m}"] = (
                statistics.fmean(vals),
                statistics.stdev(vals) if len(vals) > 1 else None,
            )


def model_defaults(model: str) -> dict[str, Any]:
    """The model's default hyperparameters as JSON gives them back (what a setting's
    params are relative to)."""
    from lifelongrec.models import MODELS

    return json.loads(json.dumps(MODELS[model]().get_params(), default=str))


def reused(path: str, args, result: dict[str, Any], settings: list[dict]) -> list[dict]:
    """``settings`` with those of an earlier run (``--reuse``) added, their validation
    and test figures as recorded; its starting point replaces this run's. Refused for
    another model, split or seeds, or where the model's defaults were not the same
    (each setting's params are relative to them)."""
    old = json.loads(Path(path).read_text())
    same = {k: old["study"].get(k) for k in ("model", "n_valid", "n_validation", "n_left_out")}
    if same != {k: result.get(k) for k in same}:
        sys.exit(f"--reuse {path}: another model or split ({same})")
    if old.get("defaults") != model_defaults(args.model):
        sys.exit(
            f"--reuse {path}: recorded under other defaults of {args.model} (or none "
            "recorded), so its settings mean something else now"
        )
    name = Path(path).stem
    out = list(settings)
    for s in old["settings"]:
        if [r["seed"] for r in s["validation"]] != list(args.seeds):
            sys.exit(f"--reuse {path}: {s['label']} ran seeds other than {args.seeds}")
        keep = {k: tuple(v) if k.startswith("test_") else v for k, v in s.items()}
        del keep["label"]  # (mean, std) pairs come back from JSON as lists
        if not s["params"]:
            out[0] = {**keep, "label": f"starting point (from {name})"}
        elif all(o["params"] != s["params"] for o in out):
            out.append({**keep, "label": f"{s['label']} (from {name})"})
    return out


def _setting(params: dict[str, Any]) -> str:
    return " ".join(f"`{k}={v}`" for k, v in params.items()) or "(the defaults)"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="ml-100k", choices=list(DATASETS))
    ap.add_argument("--model", default="sequential")
    ap.add_argument("--study", default=None, help="`lifelongrec tune --json` output (stage 1)")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=None, help="stage 1's seconds")
    ap.add_argument("--valid-events", type=int, default=3)
    ap.add_argument("--top", type=int, default=5, help="settings re-scored in stage 2")
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="re-score only study settings whose trial took at most this long",
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="JSON",
        help="another setting to re-score in stage 2 beside the study's, e.g. '{\"n_windows\": null}'",
    )
    ap.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="JSON",
        help="the raw JSON of an earlier run on the same data, validation events and seeds: "
        "its settings' figures are taken as they are (fits are seeded) instead of refitted",
    )
    ap.add_argument("--test", action="store_true", help="stage 3: test figures")
    ap.add_argument("--synthetic-events", type=int, default=3000)
    ap.add_argument(
        "--block",
        default=None,
        metavar="NAME",
        help="write the block tune-<data>-NAME (default: tune-<data>)",
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.data != SYNTHETIC and not Path(DATASETS[args.data]).exists():
        sys.exit(f"dataset not found: {DATASETS[args.data]}")
    result = study(args)
    if result["model"] != args.model or result.get("protocol") != "loo":
        sys.exit(f"--study is a {result.get('protocol')} study of {result['model']}")
    args.valid_events = int(result.get("n_valid", args.valid_events))
    data = load_prepared({"dataset": args.data, "synthetic_events": args.synthetic_events})
    settings = candidates(result, args.top, args.max_seconds)
    for path in args.reuse:
        settings = reused(path, args, result, settings)
    for i, text in enumerate(args.extra):
        settings.append({"label": f"extra {i + 1}", "params": json.loads(text), "stage1": None})
    rescore(args, data, settings, args.seeds)
    chosen = max(settings, key=lambda s: s["val_mean"])
    if args.test:
        test_figures(
            args, data, [settings[0], *([chosen] if chosen is not settings[0] else [])], args.seeds
        )
    rows = []
    for s in settings:
        rows.append(
            {
                "label": s["label"] + (" (chosen)" if s is chosen else ""),
                "stage1": s["stage1"],
                "val": (s["val_mean"], s["val_std"]),
                "test_ndcg": s.get("test_ndcg@10"),
                "test_hr": s.get("test_hr@10"),
                "fit": s.get("test_fit_seconds"),
                "setting": _setting(s["params"]),
            }
        )
    cols = [
        ("label", "setting", 0),
        ("stage1", "stage 1 val NDCG@10 (seed 0)", 4),
        ("val", f"val NDCG@10, seeds {args.seeds}", 4),
        ("test_ndcg", "test NDCG@10", 4),
        ("test_hr", "test HR@10", 4),
        ("fit", "test fit s", 1),
        ("setting", "hyperparameters", 0),
    ]
    n_trials = max(len(result["trials"]) - 1, 0)
    validation = (
        f"leave-one-out validation ({result['n_validation']} validation events: up to "
        f"{args.valid_events} before each user's last; {result['n_left_out']} test events "
        "left out)"
    )
    stage1 = (
        f"Stage 1: `lifelongrec tune` on {args.data}, {args.model}, {validation}, "
        f"{n_trials} trials of TPE (seed 0) over the default search space "
        f"({json.dumps(result['space'])}), {result['seconds']:.0f} s. "
        if n_trials
        else f"No search (`--trials 0`): {args.data}, {args.model}, {validation}. "
    )
    body = [
        stage1 + "Stage 2: the "
        f"starting point, the {args.top if n_trials else 0} best settings"
        + (
            f" among those whose trial took at most {args.max_seconds:g} s"
            if args.max_seconds
            else ""
        )
        + (f" and {len(args.extra)} more (`extra`)" if args.extra else "")
        + f" fitted with seeds {args.seeds} "
        "on the same validation events; the best mean is chosen. "
        + (
            "Settings marked `(from NAME)` are taken with their figures from the earlier "
            "run `docs/benchmarks/NAME.json` (the same split and seeds; a seeded fit "
            "repeats its figures), not fitted again. "
            if args.reuse
            else ""
        )
        + (
            "Stage 3: test figures (leave-one-out as `lifelongrec evaluate`) of the "
            "starting point and the choice only, after the choice."
            if args.test
            else ""
        ),
        "",
        md_table(rows, cols),
    ]
    if not args.no_write:
        command = command_line("tune.py", argv)
        if args.study:
            command = (
                f".venv/bin/lifelongrec tune --data {os.path.relpath(DATASETS[args.data], ROOT)} "
                f"--model {args.model} "
                f"--trials {args.trials} --valid-events {args.valid_events}"
                + (f" --timeout {args.timeout:g}" if args.timeout else "")
                + f" --json > {args.study}\n    {command}"
            )
        write_block(
            args.data + (f"-{args.block}" if args.block else ""),
            f"Tuning on validation: {args.model} on {args.data}"
            + (f" ({args.block})" if args.block else ""),
            command,
            body,
            {"study": result, "defaults": model_defaults(args.model), "settings": settings},
            prefix="tune",
        )
    print("\n".join(body))


if __name__ == "__main__":
    main()
