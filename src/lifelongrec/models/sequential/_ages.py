"""Item age (``item_age=True``): what the estimator does with the item tower's age parts
(:class:`~lifelongrec.models.sequential._modules.ItemTower`): first events in, the
bias's starting point from a fit's targets, the bias column scoring adds."""

from __future__ import annotations

import numpy as np
import torch

from lifelongrec.models.sequential._events import Events
from lifelongrec.nn import Windows

__all__ = ["age_column", "init_age_bias", "note_first_events"]


def note_first_events(tower: torch.nn.Module, ev: Events) -> None:
    """The events' items' first event times, into the tower (no-op without item age)."""
    if tower.age_bias is None or len(ev["item"]) == 0:
        return
    device = tower.first_ts.device
    tower.seen(torch.as_tensor(ev["item"], device=device), torch.as_tensor(ev["ts"]))


def init_age_bias(tower: torch.nn.Module, windows: Windows, seed: int, sample: int = 2048) -> None:
    """The age bias's start from a seeded sample of ``sample`` of the fit's targets
    (:meth:`ItemTower.init_age_bias`); the training streams are untouched."""
    if tower.age_bias is None or windows.target_ts is None:
        return
    at = np.flatnonzero((windows.target_items > 0) & (windows.target_weight > 0))
    if len(at) == 0:
        return
    if len(at) > sample:
        at = np.random.default_rng(seed).choice(at, sample, replace=False)
    device = tower.first_ts.device
    targets = torch.as_tensor(windows.target_items.ravel()[at], device=device)
    tower.init_age_bias(torch.as_tensor(windows.target_ts.ravel()[at], device=device), targets)


@torch.no_grad()
def age_column(tower: torch.nn.Module, clock: int, live: np.ndarray) -> np.ndarray:
    """The age bias of every item row ``(N,)`` for the next event, one second after
    ``clock`` (the newest event seen): an item first seen at that second is known by
    then (age 0); the new items share the mass among the ``live`` rows. With
    ``new_for`` the model is read as training read it that long after what it knew."""
    device = tower.first_ts.device
    new_for = int(tower.config.new_for)
    ts = torch.as_tensor([int(clock) + 1 + new_for], device=device)
    live_t = torch.as_tensor(np.asarray(live, bool), device=device)
    new = tower.first_ts[1:] >= ts - new_for
    n_new = (new & live_t).sum().to(torch.float32).reshape(1)
    return tower.age_scores(ts, None, n_new).cpu().numpy().astype(np.float32)
