"""Data-parallel training under ``torchrun``: which process this is, and its shard.

Run any command that fits a model under ``torchrun --nproc-per-node N`` (and
``torchrun``'s own flags for several machines): every process builds the same model from
the same seed, and training is data-parallel with PyTorch's
:class:`~torch.nn.parallel.DistributedDataParallel` (gloo on CPU, NCCL with CUDA; a
sparse item-table gradient is all-reduced as one): each process trains on its own
contiguous block of the training windows (windows are built user by user, so a block
holds whole users but at its two ends), with ``1/N`` of the mini-batch size, so that one
step averages the gradients of a global batch of the usual size. Every process then holds
the same weights; validation and early stopping run in each on the same held-out events,
so they decide alike without talking. :func:`is_main` says which process writes results.

Nothing here is used outside ``torchrun``: :func:`world` is ``(0, 1)`` unless the
environment names a world of more than one process (``WORLD_SIZE``) or a process group
already exists.
"""

from __future__ import annotations

import atexit
import os

import numpy as np
import torch

from lifelongrec.nn._sequences import Windows, _stack

__all__ = ["is_main", "shard", "world"]


def world() -> tuple[int, int]:
    """``(rank, size)`` of the process group this process trains in; ``(0, 1)`` alone.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the default process group
    is initialised on first use: NCCL when CUDA is available, else gloo.
    """
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    # Torn down before the interpreter exits: a gloo group left to the interpreter's
    # teardown sometimes crashed a process after its work was done (SIGSEGV at exit).
    atexit.register(_destroy)
    return dist.get_rank(), dist.get_world_size()


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this process writes results: rank 0, or the only process (read from the
    environment when no process group exists yet)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def shard(windows: Windows, rank: int, size: int) -> Windows:
    """The ``rank``-th of ``size`` contiguous blocks of ``windows`` (sizes differ by at
    most one)."""
    lo, hi = (len(windows) * r // size for r in (rank, rank + 1))
    return _stack((windows,), np.arange(lo, hi))
