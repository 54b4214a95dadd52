"""What the benchmark scripts share: the datasets and their preparation, the docs block
writer and its Markdown table, the rows of the stream tables (``stream.py``,
``streams.py``), the machine facts, command lines, a free port, and the cold-start
protocol (``sequential.py coldstart`` and ``cold_neighbours.py``).

Each script in ``benchmarks/`` imports this module (``import _common``; the script's
folder is on ``sys.path`` when Python runs it) and otherwise only lifelongrec's public
API. A script writes its results into its own block of ``docs/benchmarks.md``,
between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``, with the command that made
them, and its raw results to ``docs/benchmarks/NAME.json`` (:func:`write_block`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import socket
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SYNTHETIC = "synthetic"
#: Dataset names of the benchmarks' ``--datasets`` and where they are read from.
DATASETS: dict[str, Path | str] = {
    "ml-100k": SHARED / "ml-100k",
    "ml-latest-small": SHARED / "ml-latest-small",
    "beauty": SHARED / "bert4rec-beauty",
    SYNTHETIC: SYNTHETIC,  # the package's synthetic world (for smoke tests)
}
DOC = ROOT / "docs" / "benchmarks.md"
RAW_DIR = ROOT / "docs" / "benchmarks"


def missing_datasets(names: list[str]) -> list[str]:
    """The names of ``names`` whose data is not under ../shared/data."""
    return [d for d in names if d != SYNTHETIC and not Path(DATASETS[d]).exists()]


# ------------------------------------------------------------------ tables
def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: ``–`` for None, ``mean ± std`` for a pair, floats with ``digits``."""
    if value is None:
        return "–"
    if isinstance(value, tuple):
        mean, std = value
        return fmt(mean, digits) if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(rows: list[dict], columns: list[tuple[str, str, int]]) -> str:
    """Markdown table; ``columns`` are ``(key, header, decimals)``. A row with a
    ``note`` and no ``n_runs`` shows the note after its first two cells."""
    lines = [
        "| " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for r in rows:
        if "note" in r and not r.get("n_runs"):
            first = [fmt(r.get(key)) for key, _, _ in columns[:2]]
            cells = [*first, r["note"], *[""] * (len(columns) - 3)]
        else:
            cells = [fmt(r.get(key), d) for key, _, d in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------- prequential (stream) results
#: The update strategies in the order the stream tables list them.
STRATEGY_ORDER = ["static", "retrain", "finetune", "lifelong"]


def parse_kv(items: list[str] | None) -> dict[str, Any]:
    """``model:key=value`` or ``key=value`` (every model) -> {model or "*": {key: value}}."""
    from lifelongrec.evaluation import parse_params

    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        scope, _, kv = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("*", "", item)
        out.setdefault(scope, {}).update(parse_params([kv]))
    return out


def pct(value: Any) -> str:
    """A share as a table cell: ``12.3 %``, ``–`` for None."""
    return "–" if value is None else f"{100 * value:.1f} %"


def summary_rows(dataset: str, model: str, result: dict[str, Any], k: int) -> list[dict]:
    """One row per strategy of a ``run_stream(strategy="all")`` result (``strategies``);
    shares are relative to the retrain strategy of the same run (``gflop_share``, of the
    estimated training FLOPs, only where the model estimates them)."""
    runs = result["strategies"]
    ndcg, recall = f"ndcg@{k}", f"recall@{k}"
    ref = runs.get("retrain")
    rows = []
    for name in [s for s in STRATEGY_ORDER if s in runs]:
        r = runs[name]
        row = {
            "dataset": dataset,
            "model": model,
            "strategy": name,
            recall: r["mean"][recall],
            ndcg: r["mean"][ndcg],
            "bwt": r["bwt"][ndcg],
            "wall": r["total_update_seconds_after_first"],
            "cpu": r["total_update_cpu_seconds_after_first"],
            "gflops": r.get("total_update_est_gflops_after_first"),
            "first": r["windows"][0]["update_seconds"],
            "drifts": len(r["drift"]["detections"]) if r.get("drift") else None,
        }
        if ref is not None:
            row["ndcg_share"] = r["mean"][ndcg] / ref["mean"][ndcg] if ref["mean"][ndcg] else None
            row["cpu_share"] = row["cpu"] / ref["total_update_cpu_seconds_after_first"]
            row["wall_share"] = row["wall"] / ref["total_update_seconds_after_first"]
            ref_gflops = ref.get("total_update_est_gflops_after_first")
            if row["gflops"] is not None and ref_gflops:
                row["gflop_share"] = row["gflops"] / ref_gflops
        rows.append(row)
    return rows


def add_stream_options(ap: Any) -> None:
    """The options the stream benchmarks share: ``--k``, ``--param``, ``--lifelong``,
    ``--drift`` (on an ``argparse.ArgumentParser``)."""
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument(
        "--param",
        action="append",
        metavar="[MODEL:]KEY=VALUE",
        help="hyperparameter of one model (MODEL:KEY=VALUE) or of every model (repeatable)",
    )
    ap.add_argument(
        "--lifelong",
        action="append",
        metavar="KEY=VALUE",
        help="lifelong strategy setting as in `lifelongrec stream` (replay_size, "
        "replay_share, distill_weight, ewc_weight, drift_epochs_factor, drift_replay_share, "
        "replay_drift_power)",
    )
    ap.add_argument("--drift", default="adwin", choices=["adwin", "page-hinkley", "none"])


def add_simulation_lifelong_option(ap: Any) -> None:
    """The simulator benchmarks' ``--lifelong K=V`` (repeatable; given, it replaces
    ``SIMULATION_LIFELONG`` as the strategy's settings)."""
    ap.add_argument(
        "--lifelong",
        action="append",
        default=None,
        metavar="K=V",
        help="a setting of the lifelong strategy (default: SIMULATION_LIFELONG)",
    )


# -------------------------------------------------------------- the record
def machine() -> str:
    """Cores, GPU, Python, numpy and torch versions, and the time of the run."""
    import numpy
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, torch {torch.__version__}; "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def command_line(script: str, argv: list[str]) -> str:
    """``.venv/bin/python benchmarks/SCRIPT ARGV...``: how a block was made."""
    return f".venv/bin/python benchmarks/{script} {shlex.join(argv)}".rstrip()


def earlier_runs(block: str, key: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The results of ``block``'s raw JSON by ``(result[key], result["model"])``, for a
    ``--merge`` run to keep (empty when the block was never written)."""
    path = RAW_DIR / f"{block}.json"
    if not path.exists():
        return {}
    return {(r[key], r["model"]): r for r in json.loads(path.read_text())["results"]}


def write_block(
    name: str, title: str, command: str, body: list[str], raw: dict, prefix: str = "sequential"
) -> None:
    """Replace (or append) the ``<prefix>-<name>`` block of docs/benchmarks.md and write
    the raw JSON to docs/benchmarks/<prefix>-<name>.json."""
    name = f"{prefix}-{name}"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = "\n".join(
        [
            begin,
            f"## {title}",
            "",
            "Command:",
            "",
            f"    {command}",
            "",
            f"Machine: {machine()}.",
            "",
            *body,
            "",
            f"Raw results: `docs/benchmarks/{name}.json`.",
            end,
        ]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if begin in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    raw = {"command": command, **raw}
    (RAW_DIR / f"{name}.json").write_text(json.dumps(raw, indent=2, default=str))


# ------------------------------------------------------------------ network
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------- data and the cold-start protocol
def load_prepared(job: dict[str, Any]):
    """A job's dataset (``job["dataset"]``, a name of :data:`DATASETS`) preprocessed as
    ``lifelongrec evaluate`` does (:func:`lifelongrec.data.prepare`); ``strip_content``
    withholds the catalogue, ``drop_attributes`` removes those item attributes and
    ``text_attributes`` turns those into strings (no longer numeric content features;
    a release year stays readable as ``release_attribute``)."""
    from lifelongrec.data import load_data, prepare

    data = load_data(
        str(DATASETS[job["dataset"]]),
        synthetic_events=int(job.get("synthetic_events", 100_000)),
        seed=0,
    )
    data = prepare(data)
    if job.get("strip_content"):
        data = dataclasses.replace(data, items=None)
    elif job.get("drop_attributes") and data.items is not None:
        drop = set(job["drop_attributes"])
        items = data.items.copy()
        items["attributes"] = [
            {k: v for k, v in a.items() if k not in drop} if isinstance(a, dict) else a
            for a in items["attributes"].tolist()
        ]
        data = dataclasses.replace(data, items=items)
    if job.get("text_attributes") and data.items is not None:
        text = set(job["text_attributes"])
        items = data.items.copy()
        items["attributes"] = [
            {k: (str(v) if k in text and v is not None else v) for k, v in a.items()}
            if isinstance(a, dict)
            else a
            for a in items["attributes"].tolist()
        ]
        data = dataclasses.replace(data, items=items)
    return data


def admit_items(model: Any, train, item_ids: list[str]) -> None:
    """Admit ``item_ids`` to the fitted model from ``train``'s catalogue, learning nothing:
    ``Recommender.add_items`` gives them zero id rows plus their content projection
    (ids without a catalogue row get empty content: id-only)."""
    import pandas as pd

    from lifelongrec.data import ITEM_COLUMNS

    if not item_ids:
        return
    cat = train.items if train.items is not None else pd.DataFrame(columns=list(ITEM_COLUMNS))
    rows = cat[cat["item_id"].astype(str).isin(set(item_ids))].drop_duplicates("item_id")
    missing = sorted(set(item_ids) - set(rows["item_id"].astype(str)))
    blank = pd.DataFrame(
        {
            "item_id": missing,
            "title": [""] * len(missing),
            "categories": [[] for _ in missing],
            "attributes": [{} for _ in missing],
        }
    )
    model.add_items(pd.concat([rows, blank], ignore_index=True))


def top_k_random_ties(S, k: int, seed: int):
    """Column indices of each row's ``k`` best scores; ties broken at random (seeded), so
    items that all score alike (e.g. zero vectors) get no credit from their position."""
    import numpy as np

    noise = np.random.default_rng(seed).random(S.shape)
    order = np.lexsort((noise, -S), axis=-1)
    return order[:, :k]


def has_earlier_event(events, history):
    """Whether each event's user has an event in ``history`` before it (bool array)."""
    first = history.groupby("user_id")["timestamp"].min()
    return events["timestamp"].to_numpy() > events["user_id"].map(first).to_numpy()


def cold_test_events(split) -> tuple[Any, dict[str, int]]:
    """The test events whose item never occurs in training, the ones that can be scored
    (their user has an earlier event, in training or earlier in the test period), and
    counts."""
    import numpy as np
    import pandas as pd

    train = split.train_full.events
    test = split.test.events
    cold = test[~test["item_id"].isin(set(train["item_id"]))]
    scorable = has_earlier_event(cold, pd.concat([train, test], ignore_index=True))
    known = cold["user_id"].isin(set(train["user_id"]))
    counts = {
        "n_train_events": len(train),
        "n_test_events": len(test),
        "n_cold_test_events": len(cold),
        "n_cold_items": int(cold["item_id"].nunique()),
        "n_cold_events_known_users": int(known.sum()),
        "n_cold_events_new_users": int((~known).sum()),
        "n_cold_events_scored": int(scorable.sum()),
        "n_cold_events_without_history": int((~scorable).sum()),
        "n_users_scored": int(cold.loc[scorable, "user_id"].nunique()),
    }
    return cold[np.asarray(scorable)], counts


def event_metrics(S, targets, k: int, seed: int) -> dict[str, float]:
    """Per-event hit (= recall@k with one relevant item) and NDCG@k of ``targets``
    (column per row) under scores ``S``; ties broken at random (seeded)."""
    import numpy as np

    top = top_k_random_ties(S, k, seed)
    hit_at = top == np.asarray(targets)[:, None]
    hit = hit_at.any(axis=1)
    rank = np.argmax(hit_at, axis=1)
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return {"hits": hit.astype(float), "ndcg": ndcg}


def scored_batches(model, events, history, size: int = 1000):
    """``(start, rows, scores)`` for ``events`` in batches of ``size``: each event's user
    scored from their ``history`` strictly before it, history items excluded (float64)."""
    import numpy as np

    for start in range(0, len(events), size):
        part = events.iloc[start : start + size]
        S = model.score_histories(
            list(part["user_id"].astype(str)),
            history,
            before=part["timestamp"].to_numpy(),
            exclude_seen=True,
        )
        yield start, part, S.astype(np.float64)


def cold_metrics(model, cold, history, index, cold_cols, k: int, seed: int) -> dict[str, float]:
    """Recall/HR/NDCG@k of every cold test event, scored from its user's history before
    it: ``full`` (whole catalogue ranked) and ``coldonly`` (only the cold columns), and
    ``full_cold_share@k``, the share of the full top-k slots that cold items hold."""
    import numpy as np
    import pandas as pd

    sums = {"full": [0.0, 0.0], "coldonly": [0.0, 0.0]}
    cold_slots = 0.0  # top-k slots of the full ranking held by cold items
    n = len(cold)
    for start, part, S in scored_batches(model, cold, history):
        target = index.get_indexer(part["item_id"].astype(str))
        full = event_metrics(S, target, k, seed + start)
        cold_slots += float(np.isin(top_k_random_ties(S, k, seed + start), cold_cols).sum())
        pos = pd.Index(cold_cols).get_indexer(target)
        only = event_metrics(S[:, cold_cols], pos, k, seed + start)
        for name, m in (("full", full), ("coldonly", only)):
            sums[name][0] += float(m["hits"].sum())
            sums[name][1] += float(m["ndcg"].sum())
    out = {}
    for name, (hits, ndcg) in sums.items():
        out[f"{name}_recall@{k}"] = hits / max(n, 1)
        out[f"{name}_hr@{k}"] = hits / max(n, 1)
        out[f"{name}_ndcg@{k}"] = ndcg / max(n, 1)
    out[f"full_cold_share@{k}"] = cold_slots / max(n * k, 1)
    return out


def warm_metrics(model, split, history, index, cold_cols, k: int, seed: int) -> dict[str, float]:
    """Recall/NDCG@k over the whole catalogue of every *warm* test event (its item
    occurs in training) whose user has an earlier event, scored from that user's
    history before it, as :func:`cold_metrics` scores cold ones; ``warmonly_ndcg@k``
    ranks the warm items only (the ``cold_cols`` left out)."""

    import numpy as np

    train, test = split.train_full.events, split.test.events
    warm = test[test["item_id"].isin(set(train["item_id"]))]
    warm = warm[has_earlier_event(warm, history)]
    hits = ndcg = only = 0.0
    for start, part, S in scored_batches(model, warm, history):
        target = index.get_indexer(part["item_id"].astype(str))
        m = event_metrics(S, target, k, seed + start)
        hits, ndcg = hits + float(m["hits"].sum()), ndcg + float(m["ndcg"].sum())
        S[:, cold_cols] = -np.inf
        only += float(event_metrics(S, target, k, seed + start)["ndcg"].sum())
    n = max(len(warm), 1)
    out = {f"warm_recall@{k}": hits / n, f"warm_ndcg@{k}": ndcg / n, "n_warm_scored": len(warm)}
    return {**out, f"warmonly_ndcg@{k}": only / n}


# ------------------------------------------------------------------ metrics
def metric_samples(text: str) -> dict[tuple[str, frozenset], float]:
    """The samples of a Prometheus text exposition (``GET /metrics``), parsed by
    ``prometheus_client``: ``(sample name, frozenset of (label, value)) -> value``."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
