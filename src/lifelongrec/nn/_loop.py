"""Loop pieces: settings, optimiser (and its state as arrays), one epoch, early stopping,
full-ranking validation ranks, growing an embedding under its optimiser."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lifelongrec.nn._sequences import Windows, minibatches
from lifelongrec.nn._sparse import RowAdamW, clip_grad_norm
from lifelongrec.nn._threads import StepThreads

__all__ = [
    "EarlyStopping",
    "TrainConfig",
    "grow_parameter",
    "load_optimizer_arrays",
    "make_optimizer",
    "optimizer_arrays",
    "target_ranks",
    "train_epoch",
]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training run (fit or partial_fit)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float
    patience: int
    full_softmax: bool
    n_negatives: int
    task_weights: dict[str, float]
    #: ``"softmax"`` (full or logQ-corrected sampled, as ``full_softmax`` says) or
    #: ``"gbce"`` (``n_negatives`` uniform negatives, calibration ``gbce_t``).
    loss: str = "softmax"
    gbce_t: float = 0.75
    #: A loss that samples gives embeddings built with ``sparse`` sparse gradients, whose
    #: rows alone :class:`~lifelongrec.nn.RowAdamW` updates (``False``: dense steps).
    sparse_rows: bool = True
    #: Weight of the exposure loss (:func:`~lifelongrec.nn.exposure_loss`) on batches
    #: whose windows carry ``target_exposed`` (0: off).
    exposure_weight: float = 0.0
    #: CPU threads of each step (``None``: chosen by timing, :class:`StepThreads`).
    threads: int | None = None
    #: Decay of an exponential moving average of the weights, updated after every step;
    #: validation scores the average and the run ends with it in the module (0: off).
    ema_decay: float = 0.0
    #: With validation: checks without a better one before the learning rate is
    #: halved (:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`; 0: never).
    lr_plateau: int = 0


def make_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (:class:`~lifelongrec.nn.RowAdamW`: an embedding with ``sparse=True`` has
    only the rows a batch touched updated); weight decay on matrices of linear layers
    only (not on embeddings, biases, norms or gates), in a fixed parameter order."""
    decay, no_decay = [], []
    embedding_params = {
        id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    for _, p in module.named_parameters():
        if p.ndim >= 2 and id(p) not in embedding_params:
            decay.append(p)
        else:
            no_decay.append(p)
    return RowAdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )


def train_epoch(
    loss_fn: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    windows: Windows,
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    batch_size: int,
    rng: np.random.Generator,
    grad_clip: float,
    device: torch.device,
    threads: StepThreads | None = None,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One pass over ``windows`` in shuffled mini-batches; mean loss of each task.

    ``threads`` (inside its :meth:`~lifelongrec.nn.StepThreads.running`) sets the CPU
    threads of each step; ``after_step`` is called after each optimiser step."""
    sums: dict[str, float] = {}
    n_batches = 0
    length = windows.items.shape[1]
    for idx in minibatches(len(windows), batch_size, rng):
        with contextlib.nullcontext() if threads is None else threads.step(len(idx) * length):
            total, parts = loss_fn(windows.batch(idx, device))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if grad_clip > 0:
                clip_grad_norm(params, grad_clip)
            optimizer.step()
            if after_step is not None:
                after_step()
        for name, value in parts.items():
            sums[name] = sums.get(name, 0.0) + value
        n_batches += 1
    return {name: value / max(n_batches, 1) for name, value in sums.items()}


class EarlyStopping:
    """Stop when the monitored value has not improved for ``patience`` checks; keep the
    best module weights (a copy of the state dict) to restore at the end."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = -math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_info: dict[str, Any] = {}
        self._bad = 0

    def step(
        self, value: float, epoch: int, module: nn.Module, info: dict[str, Any] | None = None
    ) -> bool:
        """Record one check; ``True`` when training should stop."""
        if value > self.best + self.min_delta or self.best_state is None:
            self.best, self.best_epoch, self._bad = value, epoch, 0
            self.best_state = copy.deepcopy(module.state_dict())
            self.best_info = dict(info or {})
            return False
        self._bad += 1
        return self._bad >= self.patience

    def restore(self, module: nn.Module) -> None:
        """Load the best weights seen into ``module`` (no-op before any check)."""
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def target_ranks(
    scores: torch.Tensor, targets: torch.Tensor, exclude_rows: np.ndarray, exclude_cols: np.ndarray
) -> torch.Tensor:
    """0-based rank of each row's target among the non-excluded items (full ranking).

    ``scores (B, N)`` (modified in place), ``targets (B,)`` item rows; the cells
    ``(exclude_rows, exclude_cols)`` (e.g. the items each user saw) are left out, but a
    row's own target never is. Items tied with the target count as ranked above it.
    """
    rows = torch.arange(len(targets), device=scores.device)
    target_score = scores[rows, targets].clone()
    scores[torch.as_tensor(exclude_rows), torch.as_tensor(exclude_cols)] = float("-inf")
    scores[rows, targets] = float("-inf")
    return (scores >= target_score[:, None]).sum(dim=1)


def grow_parameter(
    optimizer: torch.optim.Optimizer | None, old: nn.Parameter, new: nn.Parameter
) -> None:
    """Swap ``old`` for ``new`` (same shape but more rows) inside ``optimizer``, copying
    each state tensor of the old rows and starting the new rows at zero."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        for j, p in enumerate(group["params"]):
            if p is old:
                group["params"][j] = new
    state = optimizer.state.pop(old, None)
    if state is None:
        return
    grown: dict[str, Any] = {}
    for key, value in state.items():
        if torch.is_tensor(value) and value.shape == old.shape:
            pad = torch.zeros(
                (new.shape[0] - old.shape[0], *old.shape[1:]),
                dtype=value.dtype,
                device=value.device,
            )
            grown[key] = torch.cat([value, pad])
        else:
            grown[key] = value
    optimizer.state[new] = grown


def optimizer_arrays(
    optimizer: torch.optim.Optimizer, named: list[tuple[str, nn.Parameter]]
) -> dict[str, np.ndarray]:
    """The optimiser's per-parameter state as numpy arrays keyed ``"<param>/<key>"``."""
    out: dict[str, np.ndarray] = {}
    for name, p in named:
        for key, value in optimizer.state.get(p, {}).items():
            out[f"{name}/{key}"] = (
                value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            )
    return out


def load_optimizer_arrays(
    optimizer: torch.optim.Optimizer,
    named: list[tuple[str, nn.Parameter]],
    arrays: dict[str, np.ndarray],
) -> None:
    """Inverse of :func:`optimizer_arrays` (parameters matched by name)."""
    for name, p in named:
        prefix = f"{name}/"
        state = {
            key[len(prefix) :]: torch.as_tensor(np.array(value), device=p.device)
            for key, value in arrays.items()
            if key.startswith(prefix)
        }
        if state:
            if "step" in state:
                state["step"] = state["step"].to(torch.float32).cpu()
            optimizer.state[p] = state
