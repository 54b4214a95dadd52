"""Issue 17: what lifelong learning earns online, in the closed-loop simulator.

Runs :func:`lifelongrec.evaluation.simulate` (``lifelongrec simulate``): static,
lifelong and a full daily retrain side by side on the same simulated users (defaults:
2,000 users, 30 days, every user's interests shifting at day 15, 10 new items a day),
and writes the per-day table, the plot and the verdict on the issue's targets (over the
days from the shift on: lifelong's CTR at least 1.2x static's and at least 0.98x the
daily retrain's, at no more than 20 % of the retrain's update CPU) to the
``simulate-<block>`` block of docs/benchmarks.md, the raw result to
docs/benchmarks/simulate-<block>.json and the plot to docs/benchmarks/simulate-<block>.png.

    .venv/bin/python benchmarks/simulate.py
    .venv/bin/python benchmarks/simulate.py --model als --block als
    # smoke test (seconds):
    .venv/bin/python benchmarks/simulate.py --model popularity --world n_users=100 \\
        --world days=3 --world shift_day=2 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
from _common import command_line, md_table, parse_kv, write_block

from lifelongrec.evaluation import SimulationSettings, parse_params, simulate, simulation_report

TARGET_STATIC, TARGET_RETRAIN, TARGET_CPU = 1.2, 0.98, 0.20


def verdict(result: dict) -> list[str]:
    """The issue's targets over the days from the shift on (all days without one)."""
    runs = result["strategies"]
    if not {"static", "lifelong", "retrain"} <= set(runs):
        return ["(the targets need static, lifelong and retrain)"]
    part = "after_shift" if "after_shift" in runs["lifelong"]["summary"] else None

    def get(name: str, key: str) -> float:
        summary = runs[name]["summary"]
        return float((summary[part] if part else summary)[key])

    life, static, retrain = (get(n, "ctr") for n in ("lifelong", "static", "retrain"))
    cpu = get("lifelong", "update_cpu_seconds") / max(get("retrain", "update_cpu_seconds"), 1e-9)
    span = f"days {result['settings']['shift_day']}+" if part else "all days"
    nan = float("nan")
    checks = [
        (
            f"lifelong CTR / static CTR ({span})",
            life / static if static else nan,
            TARGET_STATIC,
            ">=",
        ),
        (
            f"lifelong CTR / retrain CTR ({span})",
            life / retrain if retrain else nan,
            TARGET_RETRAIN,
            ">=",
        ),
        (f"lifelong update CPU / retrain's ({span})", cpu, TARGET_CPU, "<="),
    ]
    lines = []
    for label, value, target, op in checks:
        ok = value >= target if op == ">=" else value <= target
        lines.append(
            f"- {label}: **{value:.3f}** (target {op} {target}): {'met' if ok else 'not met'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="sequential")
    ap.add_argument("--param", action="append", default=[], metavar="K=V")
    ap.add_argument("--world", action="append", default=[], metavar="K=V")
    _common.add_simulation_lifelong_option(ap)
    ap.add_argument("--strategies", nargs="+", default=["static", "lifelong", "retrain"])
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    params = parse_kv(args.param).get("*", {})
    world = parse_params(args.world)
    settings = SimulationSettings(**world)
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    plot = _common.RAW_DIR / f"simulate-{args.block}.png" if not args.no_write else None
    result = simulate(
        args.model,
        params,
        settings,
        args.strategies,
        lifelong=None if args.lifelong is None else parse_params(args.lifelong),
        plot=plot,
        notify=lambda line: print(line, flush=True),
    )
    wall = time.perf_counter() - t0
    print(simulation_report(result))
    lines = verdict(result)
    print("\n".join(lines))
    if args.no_write:
        return 0
    names = list(result["strategies"])
    rows = []
    for j, first in enumerate(result["strategies"][names[0]]["days"]):
        row = {"day": first["day"], "sessions": first["sessions"]}
        for n in names:
            d = result["strategies"][n]["days"][j]
            row |= {f"{n}_ctr": d["ctr"], f"{n}_ppu": d["purchases_per_user"]}
            row |= {f"{n}_cov": d["coverage"], f"{n}_cpu": d["update_cpu_seconds"]}
        rows.append(row)
    columns = [("day", "day", 0), ("sessions", "sessions", 0)]
    for n in names:
        columns += [(f"{n}_ctr", f"{n} CTR", 4), (f"{n}_ppu", "purch./user", 3)]
        columns += [(f"{n}_cov", "coverage", 2), (f"{n}_cpu", "update CPU s", 1)]
    s = result["settings"]
    body = [
        f"Started {started}; {wall / 60:.1f} min wall. Model `{args.model}`"
        + (f" with {params}" if params else " with its defaults")
        + f"; lifelong strategy settings {result['lifelong']}"
        + f"; {result['n_history_events']:,} events of browsing before day 0 (the first fit).",
        "",
        f"World (`lifelongrec.evaluation.SimulationSettings`): {s}.",
        "",
        "Per simulated day and strategy: CTR (clicks per item shown), purchases from "
        "recommendations per active user, catalogue coverage (share of the arrived items "
        "shown that day), and the day-end update's process CPU seconds (the strategies "
        "ran one after another in one process).",
        "",
        md_table(rows, columns),
        "",
        *verdict(result),
        "",
        f"![per-day figures](benchmarks/simulate-{args.block}.png)",
    ]
    write_block(
        args.block,
        f"Closed-loop simulation ({args.model}, {args.block})",
        command_line("simulate.py", argv),
        body,
        result,
        prefix="simulate",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
