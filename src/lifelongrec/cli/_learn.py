"""``lifelongrec learn``: the background learner of a service's home folder, in a
process of its own (see :mod:`lifelongrec.serving._learner_process`)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from lifelongrec._errors import LifelongrecError, ParameterError
from lifelongrec.cli._common import _fail

__all__ = ["learn"]


def learn(
    home: Annotated[Path, typer.Option("--home", help="The service's home folder.")] = Path(
        "lifelongrec-home"
    ),
    parent: Annotated[
        int | None,
        typer.Option(help="Stop when this process (the service that started it) is gone."),
    ] = None,
    torch_threads: Annotated[int, typer.Option(min=1, help="Threads for torch (training).")] = 1,
    priority: Annotated[
        str,
        typer.Option(
            help="How this process yields the CPU to the services: idle (Linux's "
            "SCHED_IDLE and nice +10 on every thread: it runs on what they leave) or nice "
            "(nice +10 only: a small share even when they take every core)."
        ),
    ] = "idle",
) -> None:
    """Run the online learner of a home folder: learn the stored events, judge
    challengers, write versions to the registry (the services on the home folder serve
    the champions it promotes). `serve` starts one itself unless its settings say
    learner_mode=thread or external; stop it with Ctrl-C or SIGTERM."""
    import torch

    from lifelongrec.serving._config import PRIORITIES
    from lifelongrec.serving._learner_process import (
        NICE,
        LearnerBusyError,
        LearnerProcess,
        lower_priority,
    )

    if priority not in PRIORITIES:
        _fail(ParameterError("--priority", priority, f"one of {list(PRIORITIES)}"))
    torch.set_num_threads(torch_threads)
    lower_priority(NICE, idle=priority == "idle")  # the API processes come first for the CPU
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s (learner): %(message)s")
    )
    logger = logging.getLogger("lifelongrec")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        learner = LearnerProcess(home)
    except (LifelongrecError, LearnerBusyError, OSError) as exc:
        _fail(exc)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        learner.run(stop, parent=parent)
    finally:
        learner.close()
