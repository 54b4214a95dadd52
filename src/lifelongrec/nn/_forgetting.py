"""Anti-forgetting terms: distillation from a frozen earlier version and elastic weight
consolidation (EWC) with its Fisher estimate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from lifelongrec.nn._losses import _weighted_mean
from lifelongrec.nn._sequences import Windows, minibatches

__all__ = ["EWC", "Distillation", "estimate_fisher"]


class Distillation:
    """Knowledge distillation from a frozen earlier version (the teacher).

    The student is pulled towards the teacher's next-item distribution over a candidate
    set: all items the teacher knows when ``full`` (small catalogues), else the batch's
    targets plus ``n_negatives`` uniform draws among them. Loss:
    ``tau^2 * KL(softmax(teacher / tau) || softmax(student / tau))`` per target position
    (Hinton et al. 2015; "learning without forgetting", Li & Hoiem 2017), averaged with
    the positions' weights. Items added after the teacher have no teacher score and are
    left out of the candidate set; in the teacher's input sequences their events are
    padding (the teacher sees the history without them, as it would have before).
    """

    name = "distill"

    def __init__(self, teacher: nn.Module, temperature: float = 1.0) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature = float(temperature)
        self.n_items = int(teacher.item_tower.n_items)

    def loss(
        self,
        model: nn.Module,
        batch: dict[str, torch.Tensor],
        mask: torch.Tensor,
        user: torch.Tensor,
        targets: torch.Tensor,
        weight: torch.Tensor,
        full: bool,
        n_negatives: int,
    ) -> torch.Tensor:
        with torch.no_grad():
            items = batch["items"]
            unknown = items > self.n_items  # shifted rows the teacher has no row for
            if bool(unknown.any()):
                items = items.masked_fill(unknown, 0)
            h = self.teacher.hidden(items, batch["types"], batch["gaps"])
            t_user = self.teacher.heads(h)["user"][mask]
            if full:
                cand = torch.arange(self.n_items, device=user.device)
            else:
                known = targets[targets < self.n_items]
                uniform = torch.randint(0, self.n_items, (n_negatives,), device=user.device)
                cand = torch.unique(torch.cat([known, uniform]))
            t_logits = t_user @ self.teacher.item_tower(cand + 1).T
        s_logits = user @ model.item_tower(cand + 1).T
        tau = self.temperature
        p_t = torch.softmax(t_logits / tau, dim=-1)
        kl = (p_t * (torch.log(p_t.clamp_min(1e-12)) - torch.log_softmax(s_logits / tau, -1))).sum(
            -1
        )
        return _weighted_mean(kl * tau * tau, weight)


class EWC:
    """Elastic weight consolidation (Kirkpatrick et al. 2017): a quadratic pull towards
    the weights of the previous version, each weighted by its diagonal (empirical)
    Fisher information, ``sum(F * (theta - theta_star)^2) / 2``.

    ``fisher`` and ``anchor`` map parameter names (``module.named_parameters()``) to
    tensors of the parameter's shape; rows a table grew by later (new items) have no
    entry and so are free. Build it with :func:`estimate_fisher`.
    """

    name = "ewc"

    def __init__(self, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]) -> None:
        self.fisher = fisher
        self.anchor = anchor

    def penalty(self, module: nn.Module) -> torch.Tensor:
        total: torch.Tensor | None = None
        for name, p in module.named_parameters():
            f = self.fisher.get(name)
            if f is None:
                continue
            n = f.shape[0]  # a grown table: only its old rows are anchored
            d = p[:n] - self.anchor[name]
            term = (f * d * d).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return 0.5 * total


def estimate_fisher(
    loss_fn: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    module: nn.Module,
    windows: Windows,
    batch_size: int,
    n_batches: int,
    rng: np.random.Generator,
    device: torch.device,
) -> EWC:
    """Diagonal empirical Fisher: mean squared gradient of the training loss over up to
    ``n_batches`` random mini-batches of ``windows``, anchored at the current weights.

    Scaled so that its mean over all entries is 1: the squared gradients of a batch-mean
    loss are tiny and depend on batch size and model size, so without the scaling no one
    ``ewc_weight`` would mean the same on two models. With it, ``ewc_weight`` is the
    strength of an L2 pull towards the anchor for a parameter of average importance.
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    fisher = {n: torch.zeros_like(p) for n, p in named}
    seen = 0
    was_training = module.training
    module.eval()  # no dropout noise in the information estimate
    for idx in minibatches(len(windows), batch_size, rng):
        if seen >= n_batches:
            break
        module.zero_grad(set_to_none=True)
        total, _ = loss_fn(windows.batch(idx, device))
        total.backward()
        for n, p in named:
            if p.grad is not None:
                grad = p.grad.detach()
                fisher[n] += (grad.coalesce().to_dense() if grad.is_sparse else grad) ** 2
        seen += 1
    module.zero_grad(set_to_none=True)
    module.train(was_training)
    n_entries = sum(f.numel() for f in fisher.values())
    mean = float(sum(f.sum() for f in fisher.values())) / max(n_entries, 1)
    scale = 1.0 / mean if mean > 0 else 0.0
    return EWC(
        {n: f * scale for n, f in fisher.items()},
        {n: p.detach().clone() for n, p in named},
    )
