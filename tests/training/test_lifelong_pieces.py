"""Anti-forgetting training pieces: replay windows, distillation, EWC."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lifelongrec.models.heads import HeadsConfig
from lifelongrec.models.sequential import EncoderConfig, ItemTowerConfig, SequentialModule
from lifelongrec.nn import (
    EWC,
    Distillation,
    MultiTaskLoss,
    TrainConfig,
    concat_windows,
    estimate_fisher,
    order_events,
    training_windows,
    windows_ending_at,
)


# --------------------------------------------------------------- replay windows
def test_windows_ending_at_match_a_slow_reference():
    rng = np.random.default_rng(3)
    n = 200
    users = rng.integers(0, 7, n)
    ts = rng.integers(0, 30, n)
    order = order_events(users, ts)
    u = users[order]
    items = rng.integers(1, 40, n)
    types = rng.integers(2, 5, n)
    gaps = rng.integers(1, 9, n)
    ttypes = types - 2
    anchors = np.sort(rng.choice(n, 25, replace=False))
    L = 6
    w = windows_ending_at(u, items, types, gaps, ttypes, anchors, L)
    assert w.items.shape == (25, L)
    for j, a in enumerate(anchors):
        own = [i for i in range(a + 1) if u[i] == u[a]][-(L + 1) :]
        seq = [0] * (L + 1 - len(own)) + [items[i] for i in own]
        typ = [0] * (L + 1 - len(own)) + [types[i] for i in own]
        assert w.items[j].tolist() == seq[:-1]
        assert w.types[j].tolist() == typ[:-1]
        want_t = [t if seq[c] != 0 else 0 for c, t in enumerate(seq[1:])]
        assert w.target_items[j].tolist() == want_t
        assert w.target_weight[j].tolist() == [1.0 if t else 0.0 for t in want_t]
        assert w.target_items[j, -1] == items[a]  # the anchor is always a target


def test_windows_ending_at_the_last_event_equal_the_first_training_window():
    rng = np.random.default_rng(5)
    users = np.sort(rng.integers(0, 5, 120))
    items = rng.integers(1, 30, 120)
    z = np.zeros(120, np.int64)
    last = np.r_[np.flatnonzero(users[1:] != users[:-1]), 119]
    a = windows_ending_at(users, items, z + 2, z + 1, z, last, 8)
    b = training_windows(users, items, z + 2, z + 1, z, np.ones(120, np.float32), 8, 1)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.target_items, b.target_items)
    both = concat_windows(a, b)
    assert len(both) == len(a) + len(b)


def test_no_anchor_no_window():
    z = np.zeros(4, np.int64)
    assert len(windows_ending_at(z, z + 1, z, z, z, np.array([], np.int64), 5)) == 0


# ---------------------------------------------------------- distillation / EWC
def tiny_module(n_items=30, seed=0):
    torch.manual_seed(seed)
    return SequentialModule(
        ItemTowerConfig(n_items=n_items, dim=8),
        EncoderConfig(
            dim=8, n_layers=1, n_heads=2, dropout=0.0, max_len=5, n_type_ids=3, n_time_buckets=8
        ),
        HeadsConfig(dim=8),
    ).eval()


def tiny_batch(seed=1, n_items=30):
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, n_items + 1, (6, 5), generator=g)
    return {
        "items": items,
        "types": torch.full((6, 5), 2),
        "gaps": torch.ones((6, 5), dtype=torch.long),
        "target_items": torch.randint(1, n_items + 1, (6, 5), generator=g),
        "target_types": torch.full((6, 5), -1),
        "target_weight": torch.ones((6, 5)),
    }


def config(full=True, next_item=1.0):
    return TrainConfig(
        epochs=1,
        batch_size=6,
        lr=0.01,
        weight_decay=0.0,
        grad_clip=0.0,
        patience=1,
        full_softmax=full,
        n_negatives=10,
        task_weights={"next_item": next_item},
    )


@pytest.mark.parametrize("full", [True, False])
def test_distillation_is_zero_for_an_identical_student_and_positive_otherwise(full):
    teacher = tiny_module()
    prob = torch.full((30,), 1 / 30)
    same = MultiTaskLoss(
        copy.deepcopy(teacher), config(full), None, prob, Distillation(teacher), 1.0
    )
    _, parts = same(tiny_batch())
    assert parts["distill"] == pytest.approx(0.0, abs=1e-6)
    other = MultiTaskLoss(tiny_module(seed=7), config(full), None, prob, Distillation(teacher), 1.0)
    _, parts = other(tiny_batch())
    assert parts["distill"] > 1e-3


def test_distillation_matches_an_independent_kl_and_training_on_it_reduces_it():
    teacher, student = tiny_module(), tiny_module(seed=4)
    d = Distillation(teacher, temperature=2.0)
    batch = tiny_batch()
    mask = batch["target_items"] > 0
    with torch.no_grad():
        u_s = student.heads(student.hidden(batch["items"], batch["types"], batch["gaps"]))["user"][
            mask
        ]
        u_t = teacher.heads(teacher.hidden(batch["items"], batch["types"], batch["gaps"]))["user"][
            mask
        ]
        s = u_s @ student.item_tower.all().T / 2.0
        t = u_t @ teacher.item_tower.all().T / 2.0
        want = (torch.softmax(t, -1) * (torch.log_softmax(t, -1) - torch.log_softmax(s, -1))).sum(
            -1
        )
        want = 4.0 * want.mean()
    targets = batch["target_items"][mask] - 1
    got = d.loss(student, batch, mask, u_s, targets, torch.ones(len(targets)), True, 0)
    assert float(got.detach()) == pytest.approx(float(want), rel=1e-5)
    # trained on the distillation term alone, the student moves towards the teacher
    loss = MultiTaskLoss(
        student.train(), config(next_item=0.0), None, torch.full((30,), 1 / 30), d, 1.0
    )
    opt = torch.optim.Adam(student.parameters(), lr=0.01)
    first = distill = None
    for _ in range(30):
        total, parts = loss(batch)
        distill = parts["distill"]
        first = distill if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert distill < 0.5 * first


def test_distillation_ignores_items_the_teacher_never_knew():
    teacher = tiny_module(n_items=30)
    student = copy.deepcopy(teacher)
    old, new = student.item_tower.grow(None, 5)  # 5 new items, zero id rows
    with torch.no_grad():
        new[31:] = torch.randn(5, 8) * 10  # whatever the new rows hold
    d = Distillation(teacher)
    batch = tiny_batch()
    mask = batch["target_items"] > 0
    u = student.heads(student.hidden(batch["items"], batch["types"], batch["gaps"]))["user"][mask]
    targets = batch["target_items"][mask] - 1
    got = d.loss(student, batch, mask, u, targets, torch.ones(len(targets)), True, 0)
    assert float(got.detach()) == pytest.approx(0.0, abs=1e-6)


def test_ewc_penalty_is_the_fisher_weighted_distance_and_spares_grown_rows():
    m = tiny_module()
    named = dict(m.named_parameters())
    fisher = {n: torch.rand_like(p) for n, p in named.items()}
    ewc = EWC(fisher, {n: p.detach().clone() for n, p in named.items()})
    assert float(ewc.penalty(m).detach()) == 0.0
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1)
    want = 0.5 * sum(float((f * 0.01).sum()) for f in fisher.values())
    assert float(ewc.penalty(m).detach()) == pytest.approx(want, rel=1e-4)
    before = float(ewc.penalty(m).detach())
    _, new = m.item_tower.grow(None, 3)
    with torch.no_grad():
        new[-3:] = 5.0
    assert float(ewc.penalty(m).detach()) == pytest.approx(before, rel=1e-6)


def test_estimate_fisher_is_the_mean_squared_gradient_scaled_to_mean_one():
    m = tiny_module()
    prob = torch.full((30,), 1 / 30)
    loss = MultiTaskLoss(m, config(), None, prob)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(6), 7)
    items = np.random.default_rng(1).integers(1, 31, 42)
    z = np.zeros(42, np.int64)
    w = training_windows(users, items, z + 2, z + 1, z - 1, np.ones(42, np.float32), 5, 1)
    ewc = estimate_fisher(
        loss, m, w, batch_size=3, n_batches=2, rng=rng, device=torch.device("cpu")
    )
    # independent: the same two batches, squared gradients averaged
    order = np.random.default_rng(0).permutation(len(w))
    acc = {n: torch.zeros_like(p) for n, p in m.named_parameters()}
    for idx in (order[:3], order[3:6]):
        m.zero_grad()
        total, _ = loss(w.batch(idx, torch.device("cpu")))
        total.backward()
        for n, p in m.named_parameters():
            if p.grad is not None:
                acc[n] += p.grad**2
    # scaled to mean 1 over all entries
    mean = sum(float(a.sum()) for a in acc.values()) / sum(a.numel() for a in acc.values())
    for n in acc:
        torch.testing.assert_close(ewc.fisher[n], acc[n] / mean)
    assert float(ewc.penalty(m).detach()) == 0.0


def test_distillation_feeds_the_teacher_padding_for_items_it_never_knew():
    """Input events of items added after the teacher: the teacher reads them as padding
    (the history without them), and the loss equals the one computed by hand that way."""
    teacher = tiny_module(n_items=30)
    student = tiny_module(n_items=30, seed=5)
    student.item_tower.grow(None, 5)
    batch = tiny_batch(n_items=30)
    batch["items"][:, 1] = 33  # shifted row 33 = a new item (the teacher has 31 rows)
    batch["items"][0, -1] = 35
    mask = batch["target_items"] > 0
    u = student.heads(student.hidden(batch["items"], batch["types"], batch["gaps"]))["user"][mask]
    targets = batch["target_items"][mask] - 1
    got = Distillation(teacher).loss(
        student, batch, mask, u, targets, torch.ones(len(targets)), True, 0
    )
    seen = batch["items"].masked_fill(batch["items"] > 30, 0)
    with torch.no_grad():
        u_t = teacher.heads(teacher.hidden(seen, batch["types"], batch["gaps"]))["user"][mask]
        t = u_t @ teacher.item_tower.all().T
        s = u.detach() @ student.item_tower.all()[:30].T
        want = (torch.softmax(t, -1) * (torch.log_softmax(t, -1) - torch.log_softmax(s, -1))).sum(
            -1
        )
    assert float(got.detach()) == pytest.approx(float(want.mean()), rel=1e-5)
