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
    exposure_loss,
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
    ``model.item_tower`` with ``all() -> (N, D)`` and ``__call__(shifted_rows)``; a
    tower whose ``has_age`` is true also gives ``new_norm(ts)``,
    ``age_scores(ts, shifted_rows, norm)``, ``is_known(ts, shifted_rows)`` and
    ``content_vectors(shifted_rows)``: every next-item logit at the target's time
    ``batch["target_ts"]`` then gets the age biases, and with item age
    (``age_bias``) an item without an event before that time is scored by its content
    vector (batches without times get neither).

    Parameters
    ----------
    model
        The sequential module.
    config
        Loss weights (``task_weights`` keys ``next_item``, ``event_type``, ``category``),
        the next-item loss (full or sampled softmax, or gBCE) and the number of negatives;
        ``exposure_weight`` > 0 adds :func:`~lifelongrec.nn.exposure_loss` over the
        batch's ``target_exposed`` (the items shown before each target and skipped;
        plain item vectors, without item-age terms).
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
        age = self._age(batch, mask)
        parts: dict[str, torch.Tensor] = {}
        if cfg.loss == "gbce":
            parts["next_item"] = self._gbce(out["user"], mask, targets, weight, age)
        elif cfg.full_softmax and age is not None:
            logits = age.logits(user, model.item_tower.all(), None)
            ce = F.cross_entropy(logits, targets, reduction="none")
            parts["next_item"] = _weighted_mean(ce, weight)
        elif cfg.full_softmax:
            parts["next_item"] = full_softmax_loss(user, model.item_tower.all(), targets, weight)
        else:
            parts["next_item"] = self._sampled(user, targets, weight, age)
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
        if cfg.exposure_weight > 0 and "target_exposed" in batch:
            rows = batch["target_exposed"][mask]  # (P, K) shifted, 0 pad
            valid = (rows > 0) & (rows != (targets + 1)[:, None])
            vecs = model.item_tower(torch.cat([targets + 1, rows.reshape(-1)]))
            pos, skipped = vecs[: len(targets)], vecs[len(targets) :]
            skipped = skipped.view(*rows.shape, vecs.shape[-1])  # (P, K, D), P may be 0
            parts["exposure"] = exposure_loss(user, pos, skipped, valid, weight)
            total = total + cfg.exposure_weight * parts["exposure"]
        if self.distillation is not None:
            parts["distill"] = self.distillation.loss(
                model, batch, mask, user, targets, weight, cfg.full_softmax, cfg.n_negatives
            )
            total = total + self.distill_weight * parts["distill"]
        if self.ewc is not None:
            parts["ewc"] = self.ewc.penalty(model)
            total = total + self.ewc_weight * parts["ewc"]
        return total, {name: float(loss.detach()) for name, loss in parts.items()}

    def _age(self, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> _AgeBias | None:
        """The item-age bias of the batch's targets' times (``None``: none)."""
        tower = self.model.item_tower
        if not getattr(tower, "has_age", False) or "target_ts" not in batch:
            return None
        return _AgeBias(tower, batch["target_ts"][mask])

    def _sampled(
        self,
        user: torch.Tensor,
        targets: torch.Tensor,
        weight: torch.Tensor,
        age: _AgeBias | None = None,
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
        pos_bias = neg_bias = None
        if age is not None:  # the age bias, and new items by content (as a difference)
            pos_vecs = age.vectors(pos_vecs, targets + 1)
            neg_rows = neg_ids[None, :] + 1
            neg_bias = age(neg_rows) + age.new_difference(user, neg_vecs, neg_rows)
            pos_bias = age.diagonal(targets + 1)
        return sampled_softmax_loss(
            user,
            pos_vecs,
            neg_vecs,
            targets,
            neg_ids,
            log_q[: len(targets)],
            log_q[len(targets) :],
            weight,
            pos_bias,
            neg_bias,
        )

    def _gbce(
        self,
        user_seq: torch.Tensor,
        mask: torch.Tensor,
        targets: torch.Tensor,
        weight: torch.Tensor,
        age: _AgeBias | None = None,
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
        pos_vecs = tower(targets + 1)
        if age is not None:
            pos_vecs = age.vectors(pos_vecs, targets + 1)
        pos_logit = (user * pos_vecs).sum(-1)
        if m >= n_items - 1:  # every item: plain BCE over the catalogue (beta = 1)
            neg_ids = torch.arange(n_items, device=user.device)
            hits = neg_ids[None, :] == targets[:, None]
            if age is not None:
                neg_logit = age.logits(user, tower(neg_ids + 1), None)
            else:
                neg_logit = user @ tower(neg_ids + 1).T  # (P, N)
        else:
            B = user_seq.shape[0]
            neg_ids = torch.randint(0, n_items, (B, m), device=user.device)
            per_row = torch.bmm(user_seq, tower(neg_ids + 1).transpose(1, 2))  # (B, L, M)
            neg_logit = per_row[mask]  # (P, M)
            window = mask.nonzero(as_tuple=True)[0]
            if age is not None and not age.masks:
                neg_logit = neg_logit + age(neg_ids[window] + 1)
            elif age is not None:
                content = tower.content_vectors(neg_ids + 1)  # (B, M, D) or None
                if content is None:
                    by_content = torch.zeros_like(neg_logit)
                else:
                    by_content = torch.bmm(user_seq, content.transpose(1, 2))[mask]
                rows = neg_ids[window] + 1  # (P, M)
                known = age.known(rows)
                neg_logit = torch.where(known, neg_logit, by_content) + age(rows)
            neg_ids = neg_ids[window]  # (P, M)
            hits = neg_ids == targets[:, None]
        if age is not None:
            pos_logit = pos_logit + age.diagonal(targets + 1)
        return gbce_loss(pos_logit, neg_logit, beta, hits, weight)


class _AgeBias:
    """Item age at the times ``ts`` ``(P,)`` (int64 epoch seconds) of ``P`` targets.

    Called with shifted item rows ``(1 or P, M)`` (``None``: every item) it gives the
    age bias ``(P, M)``; :meth:`diagonal` with ``(P,)`` (each target's own item) ``(P,)``.
    With item age (``masks``), an item without an event before a target's time is
    scored by its content alone (:meth:`logits`, :meth:`vectors`,
    :meth:`new_difference`), as a cold item is served, so the new items' bias learns
    what serving needs; with release age alone every item keeps its full vector.
    """

    def __init__(self, tower: nn.Module, ts: torch.Tensor) -> None:
        self.tower, self.ts = tower, ts
        self.masks = getattr(tower, "age_bias", None) is not None
        self.norm = tower.new_norm(ts)

    def __call__(self, rows: torch.Tensor | None) -> torch.Tensor:
        return self.tower.age_scores(self.ts[:, None], rows, self.norm[:, None])

    def diagonal(self, rows: torch.Tensor) -> torch.Tensor:
        return self.tower.age_scores(self.ts, rows, self.norm)

    def known(self, rows: torch.Tensor | None) -> torch.Tensor:
        """``(P, M)``: whether each item had an event before each target's time."""
        return self.tower.is_known(self.ts[:, None], rows)

    def logits(
        self, user: torch.Tensor, vecs: torch.Tensor, rows: torch.Tensor | None
    ) -> torch.Tensor:
        """``(P, M)`` logits of ``user (P, D)`` over items ``rows`` (``(M,)`` shifted,
        ``None``: every item) whose full vectors are ``vecs (M, D)``: by the full vector
        when known at the target's time, else by content; plus the age bias."""
        r = None if rows is None else rows[None, :]
        full = user @ vecs.T
        if not self.masks:
            return full + self(r)
        content = self.tower.content_vectors(rows)
        by_content = user @ content.T if content is not None else torch.zeros_like(full)
        return torch.where(self.known(r), full, by_content) + self(r)

    def vectors(self, vecs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Each target's own item vector ``(P, D)``: content only when it was new."""
        if not self.masks:
            return vecs
        content = self.tower.content_vectors(rows)
        new = content if content is not None else torch.zeros_like(vecs)
        known = self.tower.is_known(self.ts, rows)
        return torch.where(known[:, None], vecs, new)

    def new_difference(
        self, user: torch.Tensor, vecs: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """``(P, M)`` to add to ``user @ vecs.T`` (items ``rows (1, M)``) so that the
        items new at each target's time are scored by content."""
        if not self.masks:
            return torch.zeros((), device=user.device)
        content = self.tower.content_vectors(rows[0])
        by_content = user @ content.T if content is not None else 0.0
        return torch.where(self.known(rows), 0.0, by_content - user @ vecs.T)
