"""Issue 17, item 2: what exposure-aware learning earns online, in the closed-loop
simulator.

Runs the ``lifelong`` strategy of :func:`lifelongrec.evaluation.simulate` once per world
seed and arm (an arm: settings of the sequential model, e.g. ``exposure_weight=0``;
``--param`` adds settings to every arm), and
writes per seed the CTR and purchases per active user from the shift day on and the
update CPU seconds, the arms' means, and each arm's difference from the first arm (mean
and how many seeds it was ahead in), to the ``exposure-<block>`` block of
docs/benchmarks.md (raw results in docs/benchmarks/exposure-<block>.json).

The default worlds are validation worlds (600 users, 10 days, every user's interests
shifting at day 5, seeds 1-7), not the reported one (seed 0): the default of
``exposure_weight`` and ``exposure_negatives`` was chosen on them.
``--issue-world`` starts from the issue's world (``SimulationSettings()``: 2,000 users,
30 days, shift at day 15) instead. ``--jobs`` runs that many simulations side by side,
one torch thread each (CTR and purchases do not depend on it; CPU seconds are then
contended).

    .venv/bin/python benchmarks/exposure.py --jobs 2
    .venv/bin/python benchmarks/exposure.py --issue-world --seeds 0 --jobs 2 --block issue
    # smoke test (seconds):
    .venv/bin/python benchmarks/exposure.py --seeds 1 --world n_users=60 --world days=3 \
        --world shift_day=2 --world history_days=2 --no-write
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from _common import add_simulation_lifelong_option, command_line, md_table, write_block

from lifelongrec.evaluation import SimulationSettings, parse_params, simulate

#: The validation worlds' settings (seeds 1-7 by default).
VALIDATION_WORLD = {"n_users": 600, "days": 10, "shift_day": 5}
#: name -> sequential model settings; the first arm is the reference.
DEFAULT_ARMS = {
    "off": {"exposure_weight": 0.0},
    "default": {},
    "every shown, 3": {"exposure_weight": 3.0, "exposure_negatives": "shown"},
}


def parse_arm(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:K=V,K=V`` (``NAME:`` alone: the model's defaults) as a name and settings.

    >>> parse_arm("w1:exposure_weight=1,exposure_negatives=shown")
    ('w1', {'exposure_weight': 1, 'exposure_negatives': 'shown'})
    >>> parse_arm("default:")
    ('default', {})
    """
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--arm {text!r}: expected NAME:K=V,K=V (or NAME: for the defaults)")
    return name, parse_params([p for p in rest.split(",") if p])


def run_one(
    seed: int, arm: dict[str, Any], world: dict[str, Any], lifelong: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One lifelong run: the summary from the shift day on (all days without one).
    ``lifelong``: the strategy's settings (``None``: ``SIMULATION_LIFELONG``)."""
    import torch

    torch.set_num_threads(1)
    settings = SimulationSettings(**{**world, "seed": seed})
    result = simulate("sequential", arm, settings, ["lifelong"], lifelong=lifelong)
    summary = result["strategies"]["lifelong"]["summary"]
    part = summary.get("after_shift", summary)
    return {k: float(part[k]) for k in ("ctr", "purchases_per_user", "update_cpu_seconds")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(1, 8)))
    ap.add_argument("--arm", action="append", default=None, metavar="NAME:K=V,...")
    ap.add_argument("--param", action="append", default=[], metavar="K=V")
    ap.add_argument("--world", action="append", default=[], metavar="K=V")
    add_simulation_lifelong_option(ap)
    ap.add_argument("--issue-world", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    arms = dict(parse_arm(a) for a in args.arm) if args.arm else dict(DEFAULT_ARMS)
    common = parse_params(args.param)  # settings of every arm
    arms = {name: {**common, **arm} for name, arm in arms.items()}
    world = {**({} if args.issue_world else VALIDATION_WORLD), **parse_params(args.world)}
    SimulationSettings(**world).check_params()
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lifelong = parse_params(args.lifelong) if args.lifelong else None
    jobs = [(seed, name) for seed in args.seeds for name in arms]
    if args.jobs <= 1:
        results = {job: run_one(job[0], arms[job[1]], world, lifelong) for job in jobs}
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = {
                job: pool.submit(run_one, job[0], arms[job[1]], world, lifelong) for job in jobs
            }
            results = {job: f.result() for job, f in futures.items()}
    wall = time.perf_counter() - t0
    names = list(arms)
    rows, means = [], {n: {} for n in names}
    for seed in args.seeds:
        row: dict[str, Any] = {"seed": seed}
        for n in names:
            r = results[(seed, n)]
            row |= {f"{n}_ctr": r["ctr"], f"{n}_ppu": r["purchases_per_user"]}
            row[f"{n}_cpu"] = r["update_cpu_seconds"]
        rows.append(row)
    for n in names:
        for key in ("ctr", "purchases_per_user", "update_cpu_seconds"):
            means[n][key] = sum(results[(s, n)][key] for s in args.seeds) / len(args.seeds)
    ref = names[0]
    summary = []
    for n in names:
        ahead = sum(results[(s, n)]["ctr"] > results[(s, ref)]["ctr"] for s in args.seeds)
        diff = means[n]["ctr"] - means[ref]["ctr"]
        summary.append(
            {
                "arm": n,
                "settings": str(arms[n] or "the model's defaults"),
                "ctr": means[n]["ctr"],
                "diff": diff,
                "rel": diff / means[ref]["ctr"] if means[ref]["ctr"] else float("nan"),
                "ahead": f"{ahead} of {len(args.seeds)}" if n != ref else "",
                "ppu": means[n]["purchases_per_user"],
                "cpu": means[n]["update_cpu_seconds"],
            }
        )
    columns = [("seed", "seed", 0)]
    for n in names:
        columns += [(f"{n}_ctr", f"{n} CTR", 4), (f"{n}_ppu", "purch./user", 3)]
        columns += [(f"{n}_cpu", "update CPU s", 1)]
    mean_columns = [
        ("arm", "arm", 0),
        ("settings", "settings", 0),
        ("ctr", "mean CTR", 4),
        ("diff", f"- {ref}", 4),
        ("rel", "relative", 3),
        ("ahead", "seeds ahead", 0),
        ("ppu", "purch./user", 3),
        ("cpu", "update CPU s", 1),
    ]
    print(md_table(summary, mean_columns))
    if args.no_write:
        return 0
    span = f"from day {world.get('shift_day', SimulationSettings().shift_day)} on"
    strategy = f"settings {lifelong}" if lifelong else "`SIMULATION_LIFELONG`"
    body = [
        f"Started {started}; {wall / 60:.1f} min wall, {args.jobs} simulation(s) side by "
        "side (one torch thread each; the CPU seconds are contended when more than one). "
        f"The sequential model's lifelong strategy ({strategy}), once per world "
        "seed and arm; each day's window carries what was shown as impressions.",
        "",
        f"World settings beside the seed: {world or 'the defaults (the issue world)'}.",
        "",
        f"Per seed, {span}: CTR, purchases from recommendations per active user, and the "
        "update CPU seconds summed over those days.",
        "",
        md_table(rows, columns),
        "",
        f"Means over the seeds; the difference from `{ref}` and in how many seeds the arm's "
        "CTR was above it:",
        "",
        md_table(summary, mean_columns),
    ]
    raw = {
        "world": world,
        "arms": arms,
        "lifelong": lifelong,
        "seeds": args.seeds,
        "results": [{"seed": s, "arm": n, **results[(s, n)]} for s, n in jobs],
        "summary": summary,
    }
    write_block(
        args.block,
        f"Exposure-aware learning in the simulator ({args.block})",
        command_line("exposure.py", argv),
        body,
        raw,
        prefix="exposure",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
