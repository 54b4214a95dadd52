"""Training pieces of the sequential model: sequence building, losses, loop helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lifelongrec.training import (
    EarlyStopping,
    full_softmax_loss,
    gap_buckets,
    gbce_beta,
    gbce_loss,
    grow_parameter,
    load_optimizer_arrays,
    make_optimizer,
    minibatches,
    mixed_log_q,
    optimizer_arrays,
    order_events,
    positions_from_end,
    right_align,
    sampled_softmax_loss,
    soft_cross_entropy,
    target_ranks,
    training_windows,
)


def random_log(seed=0, n=300, n_users=12):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    ts = rng.integers(0, 40, n)  # many ties: the input order must decide
    items = rng.integers(1, 50, n)
    return users, ts, items


def reference_sequences(users, ts, values):
    """Slow reference: per user, values in (timestamp, input position) order."""
    out = {}
    for u in np.unique(users):
        idx = [i for i in range(len(users)) if users[i] == u]
        idx.sort(key=lambda i: (ts[i], i))
        out[u] = [values[i] for i in idx]
    return out


# ------------------------------------------------------------------ sequences
def test_order_and_positions_match_reference():
    users, ts, items = random_log()
    order = order_events(users, ts)
    ref = reference_sequences(users, ts, items)
    su, si = users[order], items[order]
    pos = positions_from_end(su)
    for u, seq in ref.items():
        got = si[su == u]
        assert got.tolist() == seq
        assert pos[su == u].tolist() == list(range(len(seq) - 1, -1, -1))


def test_right_align_pads_and_truncates_like_reference():
    users, ts, items = random_log(seed=1)
    order = order_events(users, ts)
    su, si = users[order], items[order]
    width = 7
    M = right_align(su, positions_from_end(su), si, 12, width)
    ref = reference_sequences(users, ts, items)
    for u in range(12):
        seq = ref.get(u, [])[-width:]
        expected = [0] * (width - len(seq)) + seq
        assert M[u].tolist() == expected


@pytest.mark.parametrize("n_windows", [1, 2, 3])
def test_training_windows_match_reference(n_windows):
    users, ts, items = random_log(seed=2, n=200, n_users=6)
    order = order_events(users, ts)
    su, si = users[order], items[order]
    L = 9
    ones = np.ones(len(su), np.float32)
    w = training_windows(su, si, si * 10, si * 0 + 2, si % 3, ones, L, n_windows)
    ref = reference_sequences(users, ts, items)
    expected = []
    for k in range(n_windows):  # window k of every user, then window k + 1
        for u in sorted(ref):
            seq = ref[u]
            end = len(seq) - k * L
            window = seq[max(0, end - L - 1) : end]
            if len(window) < 2:
                continue
            inp, tgt = window[:-1], window[1:]
            pad = L - len(inp)
            expected.append(([0] * pad + inp, [0] * pad + tgt))
    assert len(w) == len(expected)
    for row, (inp, tgt) in enumerate(expected):
        assert w.items[row].tolist() == inp
        assert w.target_items[row].tolist() == tgt
        assert w.types[row].tolist() == [10 * x for x in inp]
        assert w.target_types[row].tolist() == [x % 3 if x else -1 for x in tgt]
        assert w.target_weight[row].tolist() == [float(x > 0) for x in tgt]
    # every event is a target at most once across windows
    assert (w.target_items > 0).sum() == sum(min(len(s) - 1, n_windows * L) for s in ref.values())


def test_training_windows_weight_drops_unweighted_windows():
    su = np.array([0, 0, 0, 1, 1])
    items = np.array([1, 2, 3, 4, 5])
    weight = np.array([0, 0, 1, 0, 0], np.float32)  # only user 0's last event is new
    w = training_windows(su, items, items, items, items, weight, 4)
    assert len(w) == 1
    assert w.target_weight[0].tolist() == [0, 0, 0, 1]
    assert w.items[0].tolist() == [0, 0, 1, 2]


def test_gap_buckets():
    su = np.array([0, 0, 0, 0, 1])
    ts = np.array([100, 100, 103, 10**9, 5])
    b = gap_buckets(su, ts, n_buckets=10)
    # first event 1; gap 0 -> 2 + floor(log2 1) = 2; gap 3 -> 2 + 2; huge gap capped at 9
    assert b.tolist() == [1, 2, 4, 9, 1]


def test_minibatches_cover_everything_once():
    rng = np.random.default_rng(0)
    idx = np.concatenate(list(minibatches(23, 5, rng)))
    assert sorted(idx.tolist()) == list(range(23))
    assert [len(b) for b in minibatches(23, 5, None)] == [5, 5, 5, 5, 3]


# --------------------------------------------------------------------- losses
def test_full_softmax_loss_is_cross_entropy():
    torch.manual_seed(0)
    u, V = torch.randn(5, 4), torch.randn(9, 4)
    t = torch.tensor([0, 3, 8, 2, 2])
    assert torch.allclose(full_softmax_loss(u, V, t), F.cross_entropy(u @ V.T, t))
    w = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0])
    per = F.cross_entropy(u @ V.T, t, reduction="none")
    assert torch.allclose(full_softmax_loss(u, V, t, w), (per * w).sum() / w.sum())


def test_sampled_softmax_loss_matches_hand_computation_with_log_q():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    pos_ids = torch.tensor([7, 4])
    neg_ids = torch.tensor([3, 4, 5])  # id 4 is row 1's positive: an accidental hit
    pos_q = torch.tensor([0.1, 0.2])
    neg_q = torch.tensor([0.3, 0.2, 0.5])
    got = sampled_softmax_loss(u, pos, neg, pos_ids, neg_ids, pos_q, neg_q)

    def row_loss(pos_logit, neg_logits):
        z = [pos_logit, *neg_logits]
        return -(pos_logit - math.log(sum(math.exp(x) for x in z)))

    # row 0: u=(1,0): pos 2 - 0.1; negs 1-0.3, 0-0.2, -1-0.5
    l0 = row_loss(2 - 0.1, [1 - 0.3, 0 - 0.2, -1 - 0.5])
    # row 1: u=(0,2): pos 2 - 0.2; negs 2-0.3, (masked), 0-0.5
    l1 = row_loss(2 - 0.2, [2 - 0.3, 0 - 0.5])
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    # without the correction the loss differs
    plain = sampled_softmax_loss(u, pos, neg, pos_ids, neg_ids)
    assert plain.item() != pytest.approx(got.item())


def test_gbce_loss_matches_hand_computation():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    pos_ids = torch.tensor([7, 4])
    neg_ids = torch.tensor([3, 4, 5])  # id 4 is row 1's positive: left out of row 1
    weight = torch.tensor([1.0, 3.0])

    def log_sig(x):
        return -math.log1p(math.exp(-x))

    beta = 0.4
    # row 0: positive logit 2, negatives 1, 0, -1
    l0 = -beta * log_sig(2) - sum(log_sig(-x) for x in (1, 0, -1))
    # row 1: positive logit 2, negatives 2 and 0 (the accidental hit is skipped)
    l1 = -beta * log_sig(2) - sum(log_sig(-x) for x in (2, 0))
    pos_logit = (u * pos).sum(-1)
    neg_logit = u @ neg.T
    hits = neg_ids[None, :] == pos_ids[:, None]
    got = gbce_loss(pos_logit, neg_logit, beta, hits, weight)
    assert got.item() == pytest.approx((l0 + 3 * l1) / 4, rel=1e-6)
    # without the hit mask row 1's own item counts as a negative (logit 2)
    unmasked = gbce_loss(pos_logit, neg_logit, beta, None, weight)
    l1_all = l1 - log_sig(-2)
    assert unmasked.item() == pytest.approx((l0 + 3 * l1_all) / 4, rel=1e-6)


def test_gbce_beta_against_the_papers_formula():
    # gSASRec eq. 7 written out: alpha = k / (N - 1), beta = alpha (t (1 - 1/alpha) + 1/alpha)
    for k, n, t in [(256, 3417, 0.75), (128, 1000, 0.5), (10, 11, 0.3), (5000, 100, 0.9)]:
        alpha = min(1.0, k / (n - 1))
        assert gbce_beta(k, n, t) == pytest.approx(alpha * (t * (1 - 1 / alpha) + 1 / alpha))
    # t = 1 gives beta = alpha: sigmoid(s)^alpha, the full catalogue's calibration
    assert gbce_beta(256, 3417, 1.0) == pytest.approx(256 / 3416)


def test_mixed_log_q_formula():
    p = torch.tensor([0.5, 0.25, 0.25, 0.0])
    got = mixed_log_q(torch.tensor([0, 3]), p, n_in_batch=10, n_uniform=8, n_items=4)
    expected = torch.log(torch.tensor([10 * 0.5 + 8 / 4, 10 * 0.0 + 8 / 4]))
    assert torch.allclose(got, expected)


def test_soft_cross_entropy():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75)
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- loop pieces
def test_target_ranks_excludes_seen_but_not_the_target():
    S = torch.tensor([[0.9, 0.5, 0.7, 0.1], [0.2, 0.3, 0.4, 0.5]])
    ranks = target_ranks(S.clone(), torch.tensor([1, 0]), np.array([0, 1, 1]), np.array([0, 0, 3]))
    # row 0: item 0 seen (excluded); 0.7 > 0.5 -> rank 1. Row 1: target 0 "seen" stays;
    # item 3 excluded; 0.3, 0.4 above 0.2 -> rank 2
    assert ranks.tolist() == [1, 2]


def test_early_stopping_keeps_best_weights():
    lin = nn.Linear(2, 1)
    stop = EarlyStopping(patience=2)
    assert not stop.step(0.1, 0, lin)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    assert not stop.step(0.5, 1, lin, {"m": 1})
    best = lin.weight.clone()
    with torch.no_grad():
        lin.weight.fill_(-3.0)
    assert not stop.step(0.4, 2, lin)
    assert stop.step(0.5, 3, lin)  # not better than 0.5: second bad check stops
    stop.restore(lin)
    assert torch.equal(lin.weight, best)
    assert stop.best_epoch == 1 and stop.best_info == {"m": 1}


def _one_step(module, opt):
    loss = module(torch.arange(3)).pow(2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_grow_parameter_keeps_optimizer_state_rows():
    torch.manual_seed(0)
    emb = nn.Embedding(3, 2)
    opt = make_optimizer(emb, 0.1, 0.0)
    _one_step(emb, opt)
    old = emb.weight
    state = {k: v.clone() for k, v in opt.state[old].items()}
    new = nn.Parameter(torch.cat([old.detach(), torch.zeros(2, 2)]))
    grow_parameter(opt, old, new)
    assert any(p is new for g in opt.param_groups for p in g["params"])
    assert old not in opt.state
    got = opt.state[new]
    assert torch.equal(got["exp_avg"][:3], state["exp_avg"])
    assert torch.equal(got["exp_avg"][3:], torch.zeros(2, 2))
    assert torch.equal(got["exp_avg_sq"][:3], state["exp_avg_sq"])
    assert got["step"] == state["step"]


def test_optimizer_arrays_round_trip():
    torch.manual_seed(0)
    emb = nn.Embedding(3, 2)
    opt = make_optimizer(emb, 0.1, 0.0)
    _one_step(emb, opt)
    arrays = optimizer_arrays(opt, list(emb.named_parameters()))
    assert set(arrays) == {"weight/step", "weight/exp_avg", "weight/exp_avg_sq"}
    emb2 = nn.Embedding(3, 2)
    emb2.load_state_dict(emb.state_dict())
    opt2 = make_optimizer(emb2, 0.1, 0.0)
    load_optimizer_arrays(opt2, list(emb2.named_parameters()), arrays)
    _one_step(emb, opt)
    _one_step(emb2, opt2)
    assert torch.equal(emb.weight, emb2.weight)


def test_make_optimizer_decays_only_linear_matrices():
    m = nn.Sequential(nn.Embedding(4, 3), nn.Linear(3, 3), nn.LayerNorm(3))
    opt = make_optimizer(m, 1e-3, 0.5)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.5 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([3, 3])]
    assert len(no_decay["params"]) == 4  # embedding, linear bias, norm weight and bias
