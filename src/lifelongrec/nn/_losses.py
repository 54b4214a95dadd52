"""Losses of next-item prediction: full softmax, logQ-corrected sampled softmax, gBCE,
soft cross-entropy.

Shapes: ``P`` target positions, ``D`` the model width, ``N`` items, ``M`` sampled
negatives, ``C`` classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "exposure_loss",
    "full_softmax_loss",
    "gbce_beta",
    "gbce_loss",
    "mixed_log_q",
    "sampled_softmax_loss",
    "soft_cross_entropy",
]


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
    pos_bias: torch.Tensor | None = None,
    neg_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampled softmax with logQ correction: the positive against ``M`` shared negatives.

    ``user (P, D)``, ``pos_vecs (P, D)`` and ``pos_ids (P,)`` of the targets,
    ``neg_vecs (M, D)`` and ``neg_ids (M,)`` of the negatives; ``*_log_q`` are
    subtracted from the logits (see :func:`mixed_log_q`), ``pos_bias (P,)`` and
    ``neg_bias (P, M)`` added. A negative equal to the row's positive (an accidental
    hit) is masked out. Returns the (weighted) mean loss.
    """
    pos_logit = (user * pos_vecs).sum(-1)
    neg_logit = user @ neg_vecs.T
    if pos_bias is not None:
        pos_logit = pos_logit + pos_bias
    if neg_bias is not None:
        neg_logit = neg_logit + neg_bias
    if pos_log_q is not None:
        pos_logit = pos_logit - pos_log_q
    if neg_log_q is not None:
        neg_logit = neg_logit - neg_log_q[None, :]
    neg_logit = neg_logit.masked_fill(neg_ids[None, :] == pos_ids[:, None], float("-inf"))
    logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
    return _weighted_mean(-torch.log_softmax(logits, dim=1)[:, 0], weight)


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's power on the positive's probability (Petrov & Macdonald 2023, eq. 7):
    ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)`` with the sampling rate
    ``alpha = n_negatives / (n_items - 1)`` (at most 1) and calibration ``t`` in
    ``[0, 1]``: ``t = 0`` is plain binary cross-entropy, ``t = 1`` makes the trained
    probabilities those of the full catalogue.

    >>> gbce_beta(256, 257, 0.75)
    1.0
    >>> round(gbce_beta(100, 1001, 1.0), 4)
    0.1
    >>> gbce_beta(100, 1001, 0.0)
    1.0
    """
    alpha = min(1.0, n_negatives / max(n_items - 1, 1))
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_loss(
    pos_logit: torch.Tensor,
    neg_logit: torch.Tensor,
    beta: float,
    hits: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalised binary cross-entropy (gSASRec): the positive's sigmoid raised to
    ``beta`` (see :func:`gbce_beta`), every negative's pushed to 0.

    ``pos_logit (P,)``, ``neg_logit (P, M)`` (each target's own negatives), ``hits
    (P, M)`` true where a negative is the target itself (left out), optional ``weight
    (P,)``. Per target ``-beta * log sigmoid(s+) - sum_j log sigmoid(-s_j)``: summed over
    the negatives, not averaged as gSASRec's BCE is, so a target weighs about what a
    cross-entropy does beside the auxiliary tasks. Returns the (weighted) mean.
    """
    neg_term = F.logsigmoid(-neg_logit)
    if hits is not None:
        neg_term = neg_term.masked_fill(hits, 0.0)
    per_target = -beta * F.logsigmoid(pos_logit) - neg_term.sum(-1)
    return _weighted_mean(per_target, weight)


def soft_cross_entropy(
    logits: torch.Tensor, target_probs: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``-sum(p * log_softmax(logits))`` per row ``(P, C)``; (weighted) mean over rows."""
    return _weighted_mean(-(target_probs * torch.log_softmax(logits, dim=-1)).sum(-1), weight)


def exposure_loss(
    user: torch.Tensor,
    pos_vecs: torch.Tensor,
    exposed_vecs: torch.Tensor,
    valid: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exposure-aware pairwise loss: each target above the items the user was shown
    just before it and did not act on (BPR, Rendle et al. 2009, with impressions as the
    negatives: what was seen and skipped says more than an item drawn at random).

    ``user (P, D)`` and ``pos_vecs (P, D)`` of the targets, ``exposed_vecs (P, K, D)``
    of up to ``K`` skipped items per target, ``valid (P, K)`` which of them count,
    optional ``weight (P,)`` per target. Returns the mean of
    ``log(1 + exp(s_skipped - s_target))`` over the valid pairs, each weighted by its
    target's weight (0 when there is none).
    """
    pos = (user * pos_vecs).sum(-1)  # (P,)
    neg = torch.einsum("pd,pkd->pk", user, exposed_vecs)  # (P, K)
    pair = F.softplus(neg - pos[:, None])
    w = valid.to(pair.dtype)
    if weight is not None:
        w = w * weight[:, None]
    return (pair * w).sum() / w.sum().clamp_min(1e-12)  # no valid pair: 0, no host sync
