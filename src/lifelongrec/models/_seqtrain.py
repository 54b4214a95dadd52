"""Training pieces of the sequential recommender, composed by the model.

Re-exported as the public training toolkit by :mod:`lifelongrec.training`.

Nothing here knows a model class: each piece takes arrays, tensors or a module with a
small, documented duck-typed interface, so it can be unit-tested on its own.

* **Sequence building** (numpy, vectorised): :func:`order_events`,
  :func:`positions_from_end`, :func:`gap_buckets`, :func:`right_align`,
  :func:`training_windows`.
* **Batching**: :class:`Windows` (padded training windows) and :func:`minibatches`.
* **Losses**: :func:`full_softmax_loss`, :func:`sampled_softmax_loss` (logQ-corrected,
  in-batch plus uniform negatives, :func:`mixed_log_q`), :func:`soft_cross_entropy`,
  and :class:`MultiTaskLoss`, the train wrapper that turns a batch into one loss.
* **Loop pieces**: :func:`make_optimizer`, :func:`train_epoch`, :class:`EarlyStopping`,
  :func:`target_ranks` (full-ranking validation), :func:`grow_parameter` (add rows to an
  embedding while keeping the optimiser state), :func:`optimizer_arrays` /
  :func:`load_optimizer_arrays` (AdamW state as numpy arrays, no pickle).

Shapes use one set of symbols: ``B`` sequences in a batch, ``L`` the window length
(``max_len``), ``D`` the model width, ``N`` items in the catalogue, ``M`` sampled
negatives, ``T`` event-type classes, ``C`` categories. Item rows inside sequences are
shifted by one: ``0`` is padding, ``r + 1`` is item row ``r``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Distillation",
    "EWC",
    "EarlyStopping",
    "MultiTaskLoss",
    "TrainConfig",
    "Windows",
    "concat_windows",
    "estimate_fisher",
    "full_softmax_loss",
    "gap_buckets",
    "grow_parameter",
    "load_optimizer_arrays",
    "make_optimizer",
    "minibatches",
    "mixed_log_q",
    "optimizer_arrays",
    "order_events",
    "positions_from_end",
    "right_align",
    "sampled_softmax_loss",
    "soft_cross_entropy",
    "target_ranks",
    "train_epoch",
    "training_windows",
    "windows_ending_at",
]

#: Time-gap bucket ids: 0 padding, 1 "no previous event", 2.. ``floor(log2(1 + gap))``.
GAP_PAD, GAP_FIRST = 0, 1


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


# ------------------------------------------------------------------ sequences
def order_events(user_rows: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Permutation that groups events by user and sorts each user's events by time.

    Stable: events with equal user and timestamp keep their input order.
    """
    n = len(user_rows)
    return np.lexsort((np.arange(n), np.asarray(timestamps), np.asarray(user_rows)))


def positions_from_end(sorted_user_rows: np.ndarray) -> np.ndarray:
    """For events grouped by user (see :func:`order_events`): how many of the user's
    events come later (``0`` for each user's most recent event)."""
    u = np.asarray(sorted_user_rows)
    n = len(u)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    change = np.flatnonzero(u[1:] != u[:-1])
    run_end = np.r_[change, n - 1]
    run_id = np.r_[0, np.cumsum(u[1:] != u[:-1])]
    return (run_end[run_id] - np.arange(n)).astype(np.int64)


def gap_buckets(
    sorted_user_rows: np.ndarray, sorted_timestamps: np.ndarray, n_buckets: int
) -> np.ndarray:
    """Log-bucketised time gap of each event to the user's previous one.

    ``1`` for a user's first event, else ``2 + min(n_buckets - 3, floor(log2(1 + gap)))``
    with the gap in timestamp units (seconds) clipped at 0. ``0`` is left for padding.
    """
    u = np.asarray(sorted_user_rows)
    ts = np.asarray(sorted_timestamps, dtype=np.float64)
    out = np.full(len(u), GAP_FIRST, dtype=np.int64)
    if len(u) > 1:
        same = u[1:] == u[:-1]
        gap = np.maximum(ts[1:] - ts[:-1], 0.0)
        b = 2 + np.minimum(n_buckets - 3, np.floor(np.log2(1.0 + gap))).astype(np.int64)
        out[1:] = np.where(same, b, GAP_FIRST)
    return out


def right_align(
    rows: np.ndarray,
    pos_from_end: np.ndarray,
    values: np.ndarray,
    n_rows: int,
    width: int,
    fill: int = 0,
    dtype: Any = np.int64,
) -> np.ndarray:
    """``(n_rows, width)`` matrix with each row's most recent ``width`` values, right-aligned.

    Event ``i`` goes to row ``rows[i]``, column ``width - 1 - pos_from_end[i]`` when that
    is ``>= 0``; other cells hold ``fill`` (left padding).
    """
    out = np.full((n_rows, width), fill, dtype=dtype)
    keep = (pos_from_end >= 0) & (pos_from_end < width)
    out[rows[keep], width - 1 - pos_from_end[keep]] = values[keep]
    return out


@dataclass
class Windows:
    """Padded training windows: input ``(W, L)`` features and per-position targets.

    ``items, types, gaps`` are the inputs (``items`` shifted: 0 pad); ``target_items``
    (shifted, 0 = no target), ``target_types`` (class or -1) and ``target_weight``
    (0/1 float) describe the next event at each position.
    """

    items: np.ndarray
    types: np.ndarray
    gaps: np.ndarray
    target_items: np.ndarray
    target_types: np.ndarray
    target_weight: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """Rows ``idx`` as tensors on ``device``."""
        return {
            name: torch.as_tensor(getattr(self, name)[idx], device=device)
            for name in (
                "items",
                "types",
                "gaps",
                "target_items",
                "target_types",
                "target_weight",
            )
        }


def training_windows(
    sorted_user_rows: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    gaps: np.ndarray,
    target_types: np.ndarray,
    weight: np.ndarray,
    max_len: int,
    n_windows: int = 1,
) -> Windows:
    """SASRec-style windows: inputs ``seq[:-1]``, targets ``seq[1:]`` over the last events.

    Arrays are per event, grouped by user in time order (:func:`order_events`). Window
    ``k`` (``0 <= k < n_windows``) holds the ``max_len + 1`` events ending ``k * max_len``
    events before each user's last one, so consecutive windows share one event and every
    event is a target at most once. Positions whose target has ``weight == 0`` do not
    count in the loss; windows without any weighted target are dropped.
    """
    pos = positions_from_end(sorted_user_rows)
    uniq, inverse = np.unique(sorted_user_rows, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    L = max_len
    parts: list[Windows] = []
    for k in range(n_windows):
        lo = k * L
        users_k = np.flatnonzero(counts >= lo + 2)
        if len(users_k) == 0:
            break
        slot = np.full(len(uniq), -1, dtype=np.int64)
        slot[users_k] = np.arange(len(users_k))
        row = slot[inverse]
        ok = row >= 0
        # inputs: events with pos in [lo + 1, lo + L] at column L - (pos - lo)
        p_in = np.where(ok, pos - lo - 1, -1)
        # targets: events with pos in [lo, lo + L - 1] at column L - 1 - (pos - lo)
        p_t = np.where(ok, pos - lo, -1)
        n = len(users_k)
        r = np.where(ok, row, 0)
        w = Windows(
            items=right_align(r, p_in, items, n, L),
            types=right_align(r, p_in, types, n, L),
            gaps=right_align(r, p_in, gaps, n, L),
            target_items=right_align(r, p_t, items, n, L),
            target_types=right_align(r, p_t, target_types, n, L, fill=-1),
            target_weight=right_align(r, p_t, weight, n, L, fill=0, dtype=np.float32),
        )
        # a target without an input before it (the first event of a short window) is void
        void = w.items == 0
        w.target_items[void] = 0
        w.target_types[void] = -1
        w.target_weight[void] = 0.0
        parts.append(w)
    if not parts:
        empty = np.zeros((0, L), dtype=np.int64)
        return Windows(empty, empty, empty, empty, empty.copy(), np.zeros((0, L), dtype=np.float32))
    out = Windows(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("items", "types", "gaps", "target_items", "target_types", "target_weight")
        )
    )
    keep = (out.target_weight > 0).any(axis=1)
    return Windows(
        out.items[keep],
        out.types[keep],
        out.gaps[keep],
        out.target_items[keep],
        out.target_types[keep],
        out.target_weight[keep],
    )


def windows_ending_at(
    sorted_user_rows: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    gaps: np.ndarray,
    target_types: np.ndarray,
    anchors: np.ndarray,
    max_len: int,
) -> Windows:
    """One window per anchor event: the ``max_len + 1`` events of its user ending at it.

    For replay: ``anchors`` are indices into the per-event arrays (grouped by user in time
    order, :func:`order_events`) of past events drawn from a replay buffer. Each window
    re-learns the anchor and the events before it (every valid position is a target of
    weight 1), exactly as they were seen, whatever came after.
    """
    u = np.asarray(sorted_user_rows)
    a = np.asarray(anchors, dtype=np.int64)
    L = max_len
    if len(a) == 0:
        empty = np.zeros((0, L), dtype=np.int64)
        return Windows(empty, empty, empty, empty, empty.copy(), np.zeros((0, L), np.float32))
    idx = a[:, None] - np.arange(L, -1, -1)[None, :]  # (A, L + 1), oldest .. anchor
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    valid &= u[safe] == u[a][:, None]

    def take(values: np.ndarray, fill: int = 0) -> np.ndarray:
        return np.where(valid, values[safe], fill)

    it, ty, gp, tt = take(items), take(types), take(gaps), take(target_types, -1)
    has_input = valid[:, :-1]
    target_ok = valid[:, 1:] & has_input
    return Windows(
        items=it[:, :-1],
        types=ty[:, :-1],
        gaps=gp[:, :-1],
        target_items=np.where(target_ok, it[:, 1:], 0),
        target_types=np.where(target_ok, tt[:, 1:], -1),
        target_weight=target_ok.astype(np.float32),
    )


def concat_windows(*parts: Windows) -> Windows:
    """Stack windows (same ``max_len``) into one set."""
    fields = ("items", "types", "gaps", "target_items", "target_types", "target_weight")
    return Windows(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` in batches (shuffled when ``rng`` is given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


# --------------------------------------------------------------------- losses
def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum().clamp_min(1e-12)


def full_softmax_loss(
    user: torch.Tensor,
    item_vecs: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the next item over the whole catalogue.

    ``user (P, D)`` vectors, ``item_vecs (N, D)``, ``targets (P,)`` item rows in
    ``[0, N)``, optional ``weight (P,)``. Returns the (weighted) mean over ``P``.
    """
    logits = user @ item_vecs.T
    return _weighted_mean(F.cross_entropy(logits, targets, reduction="none"), weight)


def mixed_log_q(
    ids: torch.Tensor, item_prob: torch.Tensor, n_in_batch: int, n_uniform: int, n_items: int
) -> torch.Tensor:
    """Log of the expected number of times each item in ``ids`` is drawn as a candidate.

    Candidates are ``n_in_batch`` draws from the target distribution ``item_prob`` (the
    in-batch negatives) plus ``n_uniform`` uniform draws over ``n_items``:
    ``q(i) = n_in_batch * p(i) + n_uniform / n_items`` (mixed negative sampling, Yang et
    al. 2020). Subtracting ``log q`` from each logit corrects the sampling bias.
    """
    q = n_in_batch * item_prob[ids] + n_uniform / n_items
    return torch.log(q.clamp_min(1e-12))


def sampled_softmax_loss(
    user: torch.Tensor,
    pos_vecs: torch.Tensor,
    neg_vecs: torch.Tensor,
    pos_ids: torch.Tensor,
    neg_ids: torch.Tensor,
    pos_log_q: torch.Tensor | None = None,
    neg_log_q: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampled softmax with logQ correction: the positive against ``M`` shared negatives.

    ``user (P, D)``, ``pos_vecs (P, D)`` and ``pos_ids (P,)`` of the targets,
    ``neg_vecs (M, D)`` and ``neg_ids (M,)`` of the negatives; ``*_log_q`` are
    subtracted from the logits (see :func:`mixed_log_q`). A negative equal to the
    row's positive (an accidental hit) is masked out. Returns the (weighted) mean loss.
    """
    pos_logit = (user * pos_vecs).sum(-1)
    neg_logit = user @ neg_vecs.T
    if pos_log_q is not None:
        pos_logit = pos_logit - pos_log_q
    if neg_log_q is not None:
        neg_logit = neg_logit - neg_log_q[None, :]
    neg_logit = neg_logit.masked_fill(neg_ids[None, :] == pos_ids[:, None], float("-inf"))
    logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
    return _weighted_mean(-torch.log_softmax(logits, dim=1)[:, 0], weight)


def soft_cross_entropy(
    logits: torch.Tensor, target_probs: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``-sum(p * log_softmax(logits))`` per row ``(P, C)``; (weighted) mean over rows."""
    return _weighted_mean(-(target_probs * torch.log_softmax(logits, dim=-1)).sum(-1), weight)


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
        full or sampled softmax and the number of negatives.
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
        if cfg.full_softmax:
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


# ------------------------------------------------------- anti-forgetting terms
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
                fisher[n] += p.grad.detach() ** 2
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


# ---------------------------------------------------------------- loop pieces
def make_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices of linear layers only (not on embeddings,
    biases, norms or gates), in a fixed parameter order."""
    decay, no_decay = [], []
    embedding_params = {
        id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    for _, p in module.named_parameters():
        if p.ndim >= 2 and id(p) not in embedding_params:
            decay.append(p)
        else:
            no_decay.append(p)
    return torch.optim.AdamW(
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
) -> dict[str, float]:
    """One pass over ``windows`` in shuffled mini-batches; mean loss of each task."""
    sums: dict[str, float] = {}
    n_batches = 0
    for idx in minibatches(len(windows), batch_size, rng):
        total, parts = loss_fn(windows.batch(idx, device))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
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
