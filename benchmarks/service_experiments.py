"""Issue 17: the service's online experiments decide by themselves, measured in the
closed-loop world driven over HTTP.

For each repetition (a world of its own seed) one home folder is made: the service's
first start trains its default model (``sequential``, default hyperparameters) on the
world's history (``RecommenderService.open(home, data=ClosedLoopWorld(s).history())``),
and a popularity model fitted on the same history is registered beside it
(``service.registry.register``). For each design (``ab``, ``interleaving``) and case,
a copy of that home is opened (learner off: ``background=False``, so both arms stay as
they were fitted; the served models still observe every event, as live models do),
served over HTTP (``serve_in_thread(create_app(...))``), and an experiment with
``auto: true`` is started through ``POST /experiments``:

* **worse**: the sequential champion against the popularity challenger (``force:
  true``, as the promotion gate would turn it down); ``rejected`` is expected;
* **better**: the popularity model promoted to champion first, the sequential model the
  challenger; ``promoted`` is expected.

The world (:func:`lifelongrec.evaluation.drive_service`) then plays its days against the
service until ``GET /experiments/{id}`` says the experiment has ended (looked at after
every simulated hour; the service's own thread looks every 5 s too) or the days run
out. Reported per run: the experiment's status, decision, p-value and effect, the
impressions and answers per arm when it ended, the recommendation requests, the wall
seconds; per design and case: how often the service decided as expected and the
impressions it needed. The latency guardrail (challenger's p99 over the champion's) is
off: the sequential model answers slower than a popularity table, and on a busy machine
the ratio is noise; the error-rate guardrail stays on.

Writes the ``service-experiments-<block>`` block of docs/benchmarks.md and its raw JSON.

    .venv/bin/python benchmarks/service_experiments.py
    .venv/bin/python benchmarks/service_experiments.py --reps 5 --world days=8
    # smoke test (well under a minute; tiny world and model):
    .venv/bin/python benchmarks/service_experiments.py --smoke --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common
import httpx
import numpy as np
from _common import command_line, md_table

from lifelongrec.evaluation import (
    ClosedLoopWorld,
    SimulationSettings,
    drive_service,
    parse_params,
)
from lifelongrec.models import get_model
from lifelongrec.serving import KeyRing, RecommenderService, create_app, serve_in_thread

WORLD = dict(n_users=800, n_items=300, n_categories=10, days=6, history_days=7)
WORLD |= dict(shift_day=None, new_items_per_day=0)
SMOKE_WORLD = {**WORLD, "n_users": 150, "n_items": 60, "n_categories": 5, "days": 2}
SMOKE_WORLD["history_days"] = 3
#: A tiny sequential model for the smoke run (seconds to fit).
SMOKE_PARAMS = {"dim": 16, "n_layers": 1, "epochs": 2, "text_encoder": None, "validation": False}
DESIGNS = ("ab", "interleaving")
CASES = {
    "worse": ("popularity vs sequential", "rejected"),
    "better": ("sequential vs popularity", "promoted"),
}
SEQUENTIAL, POPULARITY = "v000001", "v000002"


def make_home(path: Path, settings: SimulationSettings, config: dict[str, Any]) -> dict:
    """A home folder whose champion (v000001) is the service's model trained on the
    world's history, with a popularity model of the same history registered (v000002)."""
    history = ClosedLoopWorld(settings).history()
    t0 = time.perf_counter()
    with RecommenderService.open(path, data=history, config=config) as service:
        fit = time.perf_counter() - t0
        popularity = get_model("popularity").fit(history)
        info = service.registry.register(
            popularity,
            data={"last_seq": int(service.store.last_seq)},
            tags={"source": "benchmarks/service_experiments.py"},
        )
        if (service.live_version, info.version) != (SEQUENTIAL, POPULARITY):
            raise RuntimeError(
                f"{path}: expected the champion {SEQUENTIAL} and the popularity model "
                f"{POPULARITY}, got {service.live_version} and {info.version}"
            )
    return {"history_events": len(history.events), "first_start_seconds": fit}


@contextlib.contextmanager
def running_service(home: Path, config: dict[str, Any]) -> Iterator[tuple[Any, str, str]]:
    """The service of ``home`` over HTTP: ``(service, url, write key)``."""
    key = secrets.token_hex(16)
    service = RecommenderService.open(home, config=config)
    try:
        app = create_app(service, KeyRing.from_env(f"{key}:read,write"))
        with serve_in_thread(app, log_level="warning") as server:
            yield service, server.url, key
    finally:
        service.close()


def one_run(
    template: Path,
    work: Path,
    settings: SimulationSettings,
    config: dict[str, Any],
    design: str,
    case: str,
) -> dict[str, Any]:
    """One experiment: a copy of ``template`` served, the experiment started, the world
    driven until it ends or the days run out."""
    home = work / f"{design}-{case}"
    shutil.copytree(template, home)
    t0 = time.perf_counter()
    with running_service(home, config) as (service, url, key):
        if case == "better":
            service.promote(POPULARITY, "benchmark: popularity is the champion")
        champion = service.live_version
        challenger = SEQUENTIAL if case == "better" else POPULARITY
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
            body = {
                "name": f"{CASES[case][0]} ({design})",
                "design": design,
                "arms": [{"name": "challenger", "version": challenger}],
                "auto": True,
                "force": case == "worse",
                "guardrails": {"max_p99_ratio": None},
            }
            r = http.post("/experiments", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"POST /experiments: HTTP {r.status_code}: {r.text}")
            exp_id = r.json()["id"]

            def ended() -> bool:
                got = http.get(f"/experiments/{exp_id}")
                got.raise_for_status()
                return got.json()["status"] != "running"

            drive = drive_service(url, settings, api_key=key, until=ended)
            e = http.get(f"/experiments/{exp_id}").json()
            if e["status"] == "running":  # undecided when the world's days ran out
                r = http.post(f"/experiments/{exp_id}/stop")
                if r.status_code == 409:  # it decided in between
                    r = http.get(f"/experiments/{exp_id}")
                r.raise_for_status()
                e = r.json()
        live = service.live_version
    arms = {a["name"]: a for a in e["arms"]}
    shown = sum(d["impressions"] for d in drive["days"])
    return {
        "design": design,
        "case": case,
        "seed": settings.seed,
        "champion": champion,
        "challenger": challenger,
        "status": e["status"],
        "expected": CASES[case][1],
        "reason": e["reason"],
        "decided": e["status"] in ("promoted", "rejected"),
        "decision": e["verdict"]["decision"],
        "p_value": e["verdict"]["p_value"],
        "effect": e["verdict"]["effect"],
        "looks": e["verdict"]["looks"],
        "impressions": {n: a["impressions"] for n, a in arms.items()},
        "clicks": {n: a["clicks"] for n, a in arms.items()},
        "arm_requests": {n: a["requests"] for n, a in arms.items()},
        "experiment_impressions": sum(a["impressions"] for a in arms.values()),
        "drive_impressions": shown,
        "answers": sum(d["answers"] for d in drive["days"]),
        "http_requests": drive["requests"],
        "days_played": len(drive["days"]),
        "ctr": drive["summary"]["ctr"],
        "live_after": live,
        "wall_seconds": time.perf_counter() - t0,
    }


def summarise(runs: list[dict]) -> list[dict]:
    """One row per design and case."""
    rows = []
    for design in DESIGNS:
        for case, (label, want) in CASES.items():
            mine = [r for r in runs if r["design"] == design and r["case"] == case]
            if not mine:
                continue
            right = [r for r in mine if r["status"] == want]
            imps = [r["experiment_impressions"] for r in right]

            def med(key: str, rs: list[dict] = mine) -> float:
                return float(np.median([r[key] for r in rs]))

            rows.append(
                {
                    "design": design,
                    "case": label,
                    "expected": want,
                    "n": len(mine),
                    "right": len(right),
                    "other": ", ".join(
                        f"{r['status']} ({r['decision']})" for r in mine if r["status"] != want
                    )
                    or "–",
                    "imp_median": float(np.median(imps)) if imps else None,
                    "imp_range": f"{min(imps):,}–{max(imps):,}" if imps else "–",
                    "answers": med("answers"),
                    "wall": med("wall_seconds"),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--reps", type=int, default=None, help="worlds (seeds) per design and case (3; smoke: 1)"
    )
    ap.add_argument("--seed", type=int, default=100, help="the first world's seed")
    ap.add_argument("--world", action="append", default=[], metavar="K=V")
    ap.add_argument("--smoke", action="store_true", help="a tiny world and model (seconds)")
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = 1 if args.smoke else 3
    if args.reps < 1:
        ap.error(f"--reps {args.reps}: expected at least 1")
    world = {**(SMOKE_WORLD if args.smoke else WORLD), **parse_params(args.world)}
    config: dict[str, Any] = {"model": "sequential", "background": False}
    if args.smoke:
        config |= {"model_params": SMOKE_PARAMS, "experiment_min_impressions": 20}
    t0 = time.perf_counter()
    runs: list[dict] = []
    homes: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="service-experiments-") as tmp:
        for rep in range(args.reps):
            settings = SimulationSettings(**{**world, "seed": args.seed + rep})
            work = Path(tmp) / f"rep{rep}"
            template = work / "template"
            homes.append({"seed": settings.seed, **make_home(template, settings, config)})
            for design in DESIGNS:
                for case in CASES:
                    run = one_run(template, work, settings, config, design, case)
                    runs.append(run)
                    print(
                        f"seed {run['seed']} {design} {case}: {run['status']} "
                        f"({run['decision']}, p {run['p_value']:.3g}) after "
                        f"{run['experiment_impressions']:,} impressions "
                        f"{run['impressions']}, {run['answers']:,} answers, "
                        f"{run['wall_seconds']:.1f} s",
                        flush=True,
                    )
            shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - t0
    rows = summarise(runs)
    for row in rows:
        print(row)
    if args.no_write:
        return 0
    body = [
        f"{wall / 60:.1f} min wall. World (`SimulationSettings`, seeds {args.seed}.."
        f"{args.seed + args.reps - 1}): {world}. Service: {config} (learner off: both arms "
        "keep the parameters they were fitted with); the experiments: `auto: true`, the "
        "service's default test (mSPRT, alpha 0.05, tau 0.01 per answer's CTR under A/B, "
        "0.05 of credit under interleaving, at least 100 impressions per arm before a "
        "decision), the latency-ratio guardrail off.",
        "",
        "Per design and case: the runs that ended as expected, and the impressions shown "
        "in the experiment (both arms) when it ended:",
        "",
        md_table(
            rows,
            [
                ("design", "design", 0),
                ("case", "challenger vs champion", 0),
                ("expected", "expected", 0),
                ("n", "runs", 0),
                ("right", "as expected", 0),
                ("other", "otherwise", 0),
                ("imp_median", "impressions (median)", 0),
                ("imp_range", "range", 0),
                ("answers", "answers per run (median)", 0),
                ("wall", "wall s per run (median)", 1),
            ],
        ),
        "",
        "Every run (impressions per arm when the experiment ended):",
        "",
        md_table(
            [
                {
                    **r,
                    "arms": ", ".join(f"{n} {v:,}" for n, v in r["impressions"].items()),
                }
                for r in runs
            ],
            [
                ("seed", "seed", 0),
                ("design", "design", 0),
                ("case", "case", 0),
                ("status", "status", 0),
                ("decision", "decision", 0),
                ("p_value", "p", 4),
                ("effect", "effect", 4),
                ("arms", "impressions per arm", 0),
                ("answers", "answers", 0),
                ("http_requests", "HTTP requests", 0),
                ("wall_seconds", "wall s", 1),
            ],
        ),
    ]
    raw = {"world": world, "config": config, "homes": homes, "runs": runs, "summary": rows}
    _common.write_block(
        args.block,
        "Online experiments in the service: automatic decisions over HTTP",
        command_line("service_experiments.py", argv),
        body,
        raw,
        prefix="service-experiments",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
