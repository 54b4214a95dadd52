"""The train wrapper: one batch of windows in, the weighted multi-task loss out."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from lifelongrec.nn._forgetting import EWC, Distillation
from lifelongrec.nn._loop import TrainConfig
from lifelongrec.nn._losses import (
    _weighted_mean,
    full_softmax_loss,
    gbce_beta,
    gbce_loss,
    mixed_log_q,
    sampled_softmax_loss,
    soft_cross_entropy,
)

__all__ = ["MultiTaskLoss"]


class MultiTaskLoss(nn.Module):
    """Train wrapper: one batch of windows in, the weighted multi-task loss out.

    ``model`` is duck-typed: ``model.hidden(items, types, gaps) -> (B, L, D)``,
    ``model.heads(h) -> dict`` with ``"user"`` ``(..., D)`` and optionally
    ``"event_type"`` ``(..., T)`` / ``"category"`` ``(..., C)`` logits, and
    ``model.item_tower`` with ``all() -> (N, D)`` and ``__call__(shifted_rows)``.

    Parameters
    ----------
    model
        The sequential module.
    config
        Loss weights (``task_weights`` keys ``next_item``, ``event_type``, ``category``),
        the next-item loss (full or sampled softmax, or gBCE) and the number of negatives.
    item_categories
        ``(N, C)`` CSR of soft category targets per item row (rows sum to 1; empty rows
        mean no target), or ``None`` without a category head.
    item_prob
        ``(N,)`` tensor, how often each item is a target (sums to 1), for logQ.
    distillation, distill_weight
        A :class:`Distillation` from the previous version and its loss weight (off at 0).
    ewc, ewc_weight
        An :class:`EWC` penalty and its weight (off at 0).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        item_categories: sp.csr_matrix | None,
        item_prob: torch.Tensor,
        distillation: Distillation | None = None,
        distill_weight: float = 0.0,
        ewc: EWC | None = None,
        ewc_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.item_categories = item_categories
        self.register_buffer("item_prob", item_prob, persistent=False)
        self.distillation = distillation if distill_weight > 0 else None
        self.distill_weight = float(distill_weight)
        self.ewc = ewc if ewc_weight > 0 else None
        self.ewc_weight = float(ewc_weight)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, model = self.config, self.model
        h = model.hidden(batch["items"], batch["types"], batch["gaps"])  # (B, L, D)
        out = model.heads(h)
        mask = (batch["target_items"] > 0) & (batch["target_weight"] > 0)  # (B, L)
        weight = batch["target_weight"][mask]  # (P,)
        targets = batch["target_items"][mask] - 1  # (P,) item rows
        user = out["user"][mask]  # (P, D)
        parts: dict[str, torch.Tensor] = {}
        if cfg.loss == "gbce":
            parts["next_item"] = self._gbce(out["user"], mask, targets, weight)
        elif cfg.full_softmax:
            parts["next_item"] = full_softmax_loss(user, model.item_tower.all(), targets, weight)
        else:
            parts["next_item"] = self._sampled(user, targets, weight)
        w_type = cfg.task_weights.get("event_type", 0.0)
        if "event_type" in out and w_type > 0:
            tt = batch["target_types"][mask]
            ok = tt >= 0
            if ok.any():
                ce = F.cross_entropy(out["event_type"][mask][ok], tt[ok], reduction="none")
                parts["event_type"] = _weighted_mean(ce, weight[ok])
        w_cat = cfg.task_weights.get("category", 0.0)
        if "category" in out and w_cat > 0 and self.item_categories is not None:
            rows = targets.cpu().numpy()
            probs = self.item_categories[rows]
            has = np.diff(probs.indptr) > 0
            if has.any():
                dense = torch.as_tensor(probs[has].toarray(), device=user.device)
                sel = torch.as_tensor(has, device=user.device)
                logits = out["category"][mask][sel]
                parts["category"] = soft_cross_entropy(logits, dense, weight[sel])
        total = sum(cfg.task_weights.get(name, 0.0) * loss for name, loss in parts.items())
        if self.distillation is not None:
            parts["distill"] = self.distillation.loss(
                model, batch, mask, user, targets, weight, cfg.full_softmax, cfg.n_negatives
            )
            total = total + self.distill_weight * parts["distill"]
        if self.ewc is not None:
            parts["ewc"] = self.ewc.penalty(model)
            total = total + self.ewc_weight * parts["ewc"]
        return total, {name: float(loss.detach()) for name, loss in parts.items()}

    def _sampled(
        self, user: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        tower = self.model.item_tower
        n_items = len(self.item_prob)
        m = self.config.n_negatives
        uniform = torch.randint(0, n_items, (m,), device=user.device)
        in_batch = torch.unique(targets)
        if len(in_batch) > m:
            in_batch = in_batch[torch.randperm(len(in_batch), device=user.device)[:m]]
        neg_ids = torch.cat([in_batch, uniform])
        n_in = len(in_batch)
        vecs = tower(torch.cat([targets, neg_ids]) + 1)
        pos_vecs, neg_vecs = vecs[: len(targets)], vecs[len(targets) :]
        log_q = mixed_log_q(torch.cat([targets, neg_ids]), self.item_prob, n_in, m, n_items)
        return sampled_softmax_loss(
            user,
            pos_vecs,
            neg_vecs,
            targets,
            neg_ids,
            log_q[: len(targets)],
            log_q[len(targets) :],
            weight,
        )

    def _gbce(
        self,
        user_seq: torch.Tensor,
        mask: torch.Tensor,
        targets: torch.Tensor,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        """gBCE with ``n_negatives`` uniform negatives per training window, shared by
        the window's positions (gSASRec draws them per position; one set for the whole
        batch would push the same few items down with every target at once), or every
        item when the catalogue is no larger."""
        tower = self.model.item_tower
        n_items = len(self.item_prob)
        m = self.config.n_negatives
        beta = gbce_beta(m, n_items, self.config.gbce_t)
        user = user_seq[mask]  # (P, D)
        pos_logit = (user * tower(targets + 1)).sum(-1)
        if m >= n_items - 1:  # every item: plain BCE over the catalogue (beta = 1)
            neg_ids = torch.arange(n_items, device=user.device)
            neg_logit = user @ tower(neg_ids + 1).T  # (P, N)
            hits = neg_ids[None, :] == targets[:, None]
        else:
            B = user_seq.shape[0]
            neg_ids = torch.randint(0, n_items, (B, m), device=user.device)
            per_row = torch.bmm(user_seq, tower(neg_ids + 1).transpose(1, 2))  # (B, L, M)
            neg_logit = per_row[mask]  # (P, M)
            hits = neg_ids[mask.nonzero(as_tuple=True)[0]] == targets[:, None]
        return gbce_loss(pos_logit, neg_logit, beta, hits, weight)
