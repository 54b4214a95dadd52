"""Where a service start goes: ``RecommenderService.open`` on an existing home, profiled.

Opens the home (a copy of it, so the original is left as it was) with the settings
saved in it or given (``--config``, as ``benchmarks/load.py`` writes one), as ``serve``
does (the learner process is not started: ``start=False``), under :mod:`cProfile`
(``--no-profile``: without), and prints the service's log (what became of the saved
index), the wall seconds of the open and the cumulative seconds of the parts of a start
(the profiler adds about a third to them):

    .venv/bin/python benchmarks/restart.py benchmarks/_work/load-1000000/run \\
        --config benchmarks/_work/load-1000000/config.json

(the load test's home after a run with ``--restart``: its saved graph is read back).
Prints only; nothing is written to the docs.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The parts of a start, by the function that does each (file suffix, function name).
PARTS = {
    "load the champion from the registry": ("serving/_lifecycle.py", "load_version"),
    "read the catalogue from the store": ("data/_store_items.py", "item_categories"),
    "read the items the model lacks": ("data/_store_items.py", "items"),
    "catch up with the events stored since the version (sequential model)": (
        "models/sequential/_estimator.py",
        "observe",
    ),
    "admit catalogue items the model lacks": ("serving/_live.py", "catch_up_items"),
    "the retrieval index (read back or built)": ("serving/_live.py", "build_index"),
    "the learner's copy of the model": ("copy.py", "deepcopy"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("home", type=Path)
    p.add_argument("--config", type=Path, help="settings JSON (default: the home's own)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the server's 1)")
    p.add_argument("--no-profile", action="store_true", help="wall time only")
    return p


def part_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each part (the outermost call of its function)."""
    out = dict.fromkeys(PARTS, 0.0)
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for part, (suffix, func) in PARTS.items():
            if name == func and path.endswith(suffix):
                out[part] = max(out[part], cumulative)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from lifelongrec.serving import RecommenderService

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("lifelongrec.serving").setLevel(logging.INFO)  # what the index did
    if not logging.getLogger().handlers:
        logging.basicConfig(format="  log: %(message)s")
    config = json.loads(args.config.read_text()) if args.config else None
    with tempfile.TemporaryDirectory(dir=args.home.parent) as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(args.home, home)
        profile = cProfile.Profile()
        t0 = time.perf_counter()
        if not args.no_profile:
            profile.enable()
        service = RecommenderService.open(home, config=config, start=False)
        profile.disable()
        seconds = time.perf_counter() - t0
        service.close()
    if args.no_profile:
        print(f"open: {seconds:.1f} s")
        return {"open_seconds": seconds}
    parts = part_seconds(pstats.Stats(profile))
    print(f"open: {seconds:.1f} s under the profiler")
    for part, s in parts.items():
        print(f"  {part}: {s:.1f} s")
    return {"open_seconds": seconds, "parts": parts}


if __name__ == "__main__":
    main()
