"""How long the interpreter's full collection stops a service, with and without gc.freeze.

Opens a copy of a home folder as ``lifelongrec serve`` does (``RecommenderService.open``
with the settings saved in it or given with ``--config``, the learner not started),
then reports the objects the cyclic collector tracks and the wall time of full
(generation 2) collections: ``--repeat`` of them as the service is after its start,
then as many after :func:`gc.freeze`, which ``serve`` (``run_server``) calls before it
answers. The interpreter starts such a collection on its own once enough objects have
outlived the younger generations, and every thread, the request threads included,
waits until it ends.

    .venv/bin/python benchmarks/gc_pause.py benchmarks/_work/load-100000/run \\
        --config benchmarks/_work/load-100000/config.json

(the home folder ``benchmarks/load.py`` builds for 100k items). Prints only; nothing is
written to the docs.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("home", type=Path, help="a service's home folder (copied first)")
    p.add_argument("--config", type=Path, default=None, help="settings (JSON), as load.py's")
    p.add_argument("--repeat", type=int, default=5, help="full collections timed per state")
    args = p.parse_args(argv)
    if not (args.home / "registry").is_dir():
        p.error(f"--home {args.home}: not a service home folder (no registry/ in it)")
    if args.repeat < 1:
        p.error(f"--repeat must be >= 1; got {args.repeat}")
    return args


def full_collections_ms(repeat: int) -> list[float]:
    """Wall milliseconds of ``repeat`` full collections, one after the other."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gc.collect(2)
        out.append(1000 * (time.perf_counter() - t0))
    return out


def measure(home: Path, config: dict[str, Any] | None, repeat: int) -> dict[str, Any]:
    from lifelongrec.serving import RecommenderService

    settings = None if config is None else {**config, "background": False}
    t0 = time.perf_counter()
    service = RecommenderService.open(home, config=settings, start=False)
    opened = time.perf_counter() - t0
    try:
        gc.collect()
        tracked = len(gc.get_objects())
        before = full_collections_ms(repeat)
        gc.freeze()
        try:
            after = full_collections_ms(repeat)
            left = len(gc.get_objects())
            frozen = gc.get_freeze_count()
        finally:
            gc.unfreeze()
    finally:
        service.close()
    return {
        "open_s": opened,
        "tracked_objects": tracked,
        "frozen_objects": frozen,
        "tracked_after_freeze": left,
        "full_collection_ms": before,
        "full_collection_ms_frozen": after,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = None if args.config is None else json.loads(args.config.read_text())
    with tempfile.TemporaryDirectory(prefix="gc-pause-") as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(args.home, home)
        r = measure(home, config, args.repeat)
    print(
        f"service opened in {r['open_s']:.1f} s; the collector tracks {r['tracked_objects']:,} objects"
    )
    for key, label in (
        ("full_collection_ms", "as started"),
        ("full_collection_ms_frozen", f"after gc.freeze ({r['frozen_objects']:,} frozen)"),
    ):
        ms = r[key]
        print(
            f"full collection {label}: median {statistics.median(ms):.1f} ms, "
            f"min {min(ms):.1f}, max {max(ms):.1f} ({len(ms)} runs)"
        )
    return r


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
