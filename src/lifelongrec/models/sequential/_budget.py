"""How many passes an update takes by default: the passes that spend a set share of what
refitting the model on everything it has learned would cost.

The cost of a pass is estimated in floating-point operations of the forward pass, from
the shapes of the training windows and the module (the backward pass is a constant
multiple of the same terms, so it cancels in every ratio used here). Per pass over ``W``
windows of ``L`` positions with ``P`` weighted targets, in mini-batches of ``B``:

* every input position embeds its item (``d`` for the id, ``d * F`` more for the
  projection of an ``F``-wide content vector) and runs the encoder (per layer
  ``d^2 (4 + 2 * ffn_mult)`` for the projections and ``2 L d`` for attention);
* every mini-batch embeds the items it scores (the whole catalogue of ``N`` items with
  full softmax, else the sampled negatives);
* every target scores those items (``d`` each);
* every mini-batch also pays a fixed cost (:data:`BATCH_OVERHEAD_FLOPS`): the optimiser
  step, the loss heads and the framework's own work, which no shape above counts. It
  matters when windows are short: an update's 8-event windows make many small batches,
  a refit's 50-event windows few large ones.

A refit runs the fit's number of epochs (as many as the first fit ran, early stopping
included) over the windows a fit on every user's events would build
(:func:`refit_shape`), each epoch followed by ranking the validation users. An update
then takes

    passes = clamp(round(share * refit_flops / update_pass_flops), 1, MAX_PASSES)

so a small window is trained harder than a large one, and updates grow as the model has
seen more (a refit would cost more too). ``share`` is the larger of the budget and the
catch-up share (:func:`catchup_share`): ``catchup`` times the new events' part of the
refit (``n_new / refit targets``, since a refit trains every target alike). The first
updates after a fit on little data bring events that are a large part of everything
learned; a fixed share of the refit would train them less than the fit trained its own
events, and they fall behind a retrain that trains them fully (on the train family the
first update lost the most: 6 % of retrain's NDCG@10 on the first updated window of
train-gradual-100k). The estimate is deterministic: the same stream and seed give the
same passes on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelongrec.models.sequential._params import MAX_VALIDATION_USERS
from lifelongrec.nn import Windows

__all__ = [
    "BATCH_OVERHEAD_FLOPS",
    "MAX_PASSES",
    "CostModel",
    "budget_passes",
    "catchup_share",
    "cost_model",
    "epoch_flops",
    "plan_passes",
    "refit_shape",
    "windows_flops",
]

#: The most passes an update takes, whatever the budget.
MAX_PASSES = 64

#: The fixed cost of one mini-batch, in FLOPs of the estimate: about 9 ms of a training
#: mini-batch of the default model on 2 CPU cores that its FLOPs do not explain, at the
#: ~19 GFLOP/s the passes ran at. With it, update passes and fit epochs of the train
#: family's small streams run at the same seconds per estimated GFLOP
#: (``benchmarks/update_cost.py``: 0.050-0.053 s/GFLOP on train-small-10k's first 3,000
#: events, updates and refits alike).
BATCH_OVERHEAD_FLOPS = 2.0e8


@dataclass(frozen=True)
class CostModel:
    """Forward FLOPs of training passes of one module (see the module docstring).

    ``n_scored``: items each target is scored against (the catalogue with full softmax,
    else the negatives); ``content_dim``: width of the item content vectors (0: none);
    ``encoder``: the kind of the encoder's blocks (``"hstu"``: ``5 * dim**2`` weights per
    layer, else ``(4 + 2 * ffn_mult) * dim**2``).

    >>> m = CostModel(dim=2, n_layers=1, ffn_mult=1, content_dim=0, n_scored=10,
    ...               batch_size=4, batch_overhead=0.0)
    >>> m.pass_flops(n_windows=4, length=3, n_targets=5)  # 12 * 38 + 1 * 20 + 5 * 20
    576.0
    """

    dim: int
    n_layers: int
    ffn_mult: int
    content_dim: int
    n_scored: int
    batch_size: int
    batch_overhead: float = BATCH_OVERHEAD_FLOPS
    encoder: str = "sasrec"

    @property
    def embed(self) -> float:
        """FLOPs of one item vector (id plus projected content)."""
        return float(self.dim * (1 + self.content_dim))

    def position(self, length: int) -> float:
        """FLOPs of one input position in a window of ``length``: its item vector and
        the encoder layers."""
        d = self.dim
        weights = 5 if self.encoder == "hstu" else 4 + 2 * self.ffn_mult
        per_layer = d * d * weights + 2 * length * d
        return self.embed + self.n_layers * per_layer

    def pass_flops(self, n_windows: int, length: int, n_targets: int) -> float:
        """One pass over ``n_windows`` windows of ``length`` with ``n_targets`` targets."""
        batches = -(-int(n_windows) // int(self.batch_size))
        return (
            n_windows * length * self.position(length)
            + batches * (self.n_scored * self.embed + self.batch_overhead)
            + n_targets * self.n_scored * self.dim
        )

    def ranking_flops(self, n_users: int, length: int, n_items: int) -> float:
        """Ranking ``n_users`` users (``length`` inputs each) against ``n_items`` items
        (a fit's validation after each epoch)."""
        return (
            n_users * length * self.position(length)
            + n_items * self.embed
            + n_users * n_items * self.dim
        )


def refit_shape(lengths: np.ndarray, max_len: int, n_windows: int) -> tuple[int, int]:
    """``(windows, targets)`` of a fit on users with ``lengths`` events each: windows of
    ``max_len`` targets, at most ``n_windows`` per user, each user's earliest event no
    target (as :func:`lifelongrec.nn.training_windows` builds them).

    >>> refit_shape(np.array([1, 2, 5, 12]), max_len=4, n_windows=2)
    (4, 13)
    """
    n = np.asarray(lengths, dtype=np.int64)
    targets = np.minimum(np.maximum(n - 1, 0), int(max_len) * int(n_windows))
    windows = -(-targets // int(max_len))
    return int(windows.sum()), int(targets.sum())


def budget_passes(share: float, refit_flops: float, pass_flops: float) -> int:
    """The passes whose cost is closest to ``share`` of ``refit_flops``, in
    ``[1, MAX_PASSES]``.

    >>> budget_passes(0.1, refit_flops=1000.0, pass_flops=30.0)
    3
    >>> budget_passes(0.1, refit_flops=1000.0, pass_flops=500.0)
    1
    """
    if pass_flops <= 0:
        return 1
    return int(max(1, min(MAX_PASSES, round(share * refit_flops / pass_flops))))


def catchup_share(catchup: float, n_new: int, refit_targets: int) -> float:
    """The share of a refit's compute that spends ``catchup`` of it on ``n_new`` of its
    ``refit_targets`` targets: a refit trains every target the same, so the new events'
    part of it is ``n_new / refit_targets`` (at most all of it).

    >>> catchup_share(1.0, n_new=500, refit_targets=1000)
    0.5
    >>> catchup_share(0.5, n_new=2000, refit_targets=1000)
    0.5
    >>> catchup_share(1.0, n_new=10, refit_targets=0)
    0.0
    """
    if refit_targets <= 0:
        return 0.0
    return float(catchup) * min(1.0, int(n_new) / int(refit_targets))


def cost_model(p: Mapping[str, Any], n_items: int, content_dim: int) -> CostModel:
    """The :class:`CostModel` of a model with the hyperparameters ``p`` over ``n_items``
    items with ``content_dim``-wide content."""
    if p["loss"] == "gbce":
        n_scored = min(int(n_items), int(p["n_negatives"]))
    else:
        full = n_items <= int(p["full_softmax_max_items"])
        n_scored = int(n_items) if full else int(p["n_negatives"])
    return CostModel(
        dim=int(p["dim"]),
        n_layers=int(p["n_layers"]),
        ffn_mult=int(p["ffn_mult"]),
        content_dim=int(content_dim),
        n_scored=n_scored,
        batch_size=int(p["batch_size"]),
        encoder=str(p["encoder"]),
    )


def windows_flops(model: CostModel, windows: Windows, distill: bool) -> float:
    """One pass over ``windows`` (a third more with a distillation teacher's forward
    pass)."""
    length = windows.items.shape[1] if len(windows) else 1
    flops = model.pass_flops(len(windows), length, int((windows.target_weight > 0).sum()))
    return flops * 4.0 / 3.0 if distill else flops


def epoch_flops(
    model: CostModel,
    windows: Windows,
    distill: bool,
    validation_users: int = 0,
    validation_len: int = 0,
    n_items: int = 0,
) -> float:
    """Estimated FLOPs of one epoch of a training run: a pass over ``windows``, then,
    with a validation set, ranking ``validation_users`` users (``validation_len``
    inputs each) against ``n_items`` items.

    >>> m = CostModel(dim=2, n_layers=1, ffn_mult=1, content_dim=0, n_scored=10,
    ...               batch_size=4, batch_overhead=0.0)
    >>> z = np.zeros((4, 3), np.int64)
    >>> w = Windows(z, z, z, z, z, np.ones((4, 3), np.float32))  # 4 windows, 12 targets
    >>> m.pass_flops(4, 3, 12), m.ranking_flops(3, 2, 5)
    (716.0, 244.0)
    >>> epoch_flops(m, w, distill=False, validation_users=3, validation_len=2, n_items=5)
    960.0
    """
    flops = windows_flops(model, windows, distill) if len(windows) else 0.0
    if validation_users > 0:
        flops += model.ranking_flops(validation_users, validation_len, n_items)
    return flops


def plan_passes(
    p: Mapping[str, Any],
    share: float,
    update: Windows,
    lengths: np.ndarray,
    n_items: int,
    content_dim: int,
    fit_epochs: int,
    n_new: int,
) -> dict[str, Any]:
    """The passes of an update over the windows ``update`` that spend ``share`` of a
    refit's estimated compute, for a model with the hyperparameters ``p`` whose users
    hold ``lengths`` events each, over ``n_items`` items with ``content_dim``-wide
    content, whose fit ran ``fit_epochs`` epochs; or, when larger, the share
    ``p["partial_fit_catchup"] * n_new / refit targets`` (:func:`catchup_share`) for
    ``n_new`` new target events. Returns ``passes``, ``budget`` (the share given),
    ``share`` (the share spent), ``pass_flops``, ``refit_flops`` and ``shrink`` (what
    the weights are multiplied by before the passes: :func:`shrink_factor` of
    ``p["partial_fit_shrink"]``)."""
    model = cost_model(p, n_items, content_dim)
    per_pass = windows_flops(model, update, float(p["distill_weight"]) > 0)
    L = int(p["max_len"])
    windows, targets = refit_shape(lengths, L, int(p["n_windows"]))
    epoch = model.pass_flops(windows, L, targets)
    if p["validation"]:
        held = np.minimum(np.asarray(lengths) - 1, int(p["validation_events"])).clip(0)
        n_val = min(int(held.sum()), MAX_VALIDATION_USERS * int(p["validation_events"]))
        epoch += model.ranking_flops(n_val, L, n_items)
    refit = float(fit_epochs) * epoch
    spent = max(float(share), catchup_share(float(p["partial_fit_catchup"]), n_new, targets))
    plan = {
        "passes": budget_passes(spent, refit, per_pass),
        "budget": float(share),
        "share": spent,
        "pass_flops": per_pass,
        "refit_flops": refit,
    }
    return {**plan, "shrink": shrink_factor(float(p["partial_fit_shrink"]), plan)}


def shrink_factor(shrink: float, plan: Mapping[str, Any]) -> float:
    """What an update multiplies the module's weights by before it trains:
    ``shrink ** min(1, spent / budget)``, ``spent`` being the share of a refit's
    estimated compute that the update's passes cost (``passes * pass_flops /
    refit_flops`` of ``plan``) and ``budget`` the share its budget gives. An update that
    trains as much as its budget (or more: the catch-up) shrinks by ``shrink``; one that
    trains less (a small batch, whose passes stop at the most an update may take)
    shrinks as much less: small updates that together train as much as one large one
    shrink as much. (Updates with fixed passes have no budget and do not shrink.)"""
    refit = float(plan["refit_flops"])
    if refit <= 0.0:  # no refit to measure against
        return 1.0
    spent = float(plan["passes"]) * float(plan["pass_flops"]) / refit
    return float(shrink ** min(1.0, spent / float(plan["budget"])))
