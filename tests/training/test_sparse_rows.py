"""Row-sparse training of the item table: RowAdamW against AdamW and the lazy rule written
out, sparse-aware clipping against torch's, and an online step on a sampled-softmax
catalogue that leaves the rows it did not touch alone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lifelongrec._errors import ParameterError
from lifelongrec.data import Dataset
from lifelongrec.models import SequentialRecommender
from lifelongrec.training import RowAdamW, clip_grad_norm, make_optimizer

BETAS, EPS, LR = (0.9, 0.999), 1e-8, 0.05


def twins(n=6, d=3, seed=0):
    """The same initial table as a sparse and a dense embedding."""
    torch.manual_seed(seed)
    sparse = nn.Embedding(n, d, sparse=True)
    dense = nn.Embedding(n, d)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def loss_on(emb, rows, target):
    return ((emb(torch.tensor(rows)) - target) ** 2).sum()


@pytest.mark.parametrize("n_touched", [5, 6])  # all rows but one (lazy path), all (dense)
def test_rows_touched_at_every_step_follow_adamw(n_touched):
    """Rows in every step's gradient, and an untouched row with no momentum, are where
    AdamW puts them; touching every row takes AdamW's own (dense) step."""
    sparse, dense = twins()
    a = RowAdamW(sparse.parameters(), lr=LR, weight_decay=0.1)
    b = torch.optim.AdamW(dense.parameters(), lr=LR, weight_decay=0.1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        target = torch.as_tensor(rng.normal(size=(n_touched + 2, 3)), dtype=torch.float32)
        dupes = rng.integers(0, n_touched, 2)
        rows = list(rng.permutation(np.r_[np.arange(n_touched), dupes]))
        for emb, opt in ((sparse, a), (dense, b)):
            opt.zero_grad()
            loss_on(emb, rows, target).backward()
            opt.step()
        assert sparse.weight.grad.is_sparse == (n_touched < 6)
    if n_touched < 6:  # AdamW decays the untouched row; the lazy rule leaves it
        dense.weight.data[5] = sparse.weight.data[5]
    assert torch.allclose(sparse.weight, dense.weight, atol=1e-6)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.allclose(a.state[sparse.weight][key], b.state[dense.weight][key], atol=1e-7)
    assert float(a.state[sparse.weight]["step"]) == 5


def test_untouched_rows_keep_weights_and_moments_and_a_new_row_follows_the_lazy_rule():
    sparse, _ = twins()
    opt = RowAdamW(sparse.parameters(), lr=LR, weight_decay=0.0)
    target = torch.ones(2, 3)
    opt.zero_grad()
    loss_on(sparse, [1, 2], target).backward()
    opt.step()
    before = sparse.weight.detach().clone()
    moments = {k: v.clone() for k, v in opt.state[sparse.weight].items()}
    w3 = before[3].clone()
    opt.zero_grad()
    loss_on(sparse, [3], torch.zeros(1, 3)).backward()
    opt.step()
    after = sparse.weight.detach()
    untouched = [0, 1, 2, 4, 5]
    assert torch.equal(after[untouched], before[untouched])  # dense AdamW would move 1, 2
    state = opt.state[sparse.weight]
    assert torch.equal(state["exp_avg"][untouched], moments["exp_avg"][untouched])
    # row 3's first gradient at global step 2: AdamW's formula with that step's corrections
    g = 2 * w3
    m, v = (1 - BETAS[0]) * g, (1 - BETAS[1]) * g * g
    denom = (v / (1 - BETAS[1] ** 2)).sqrt() + EPS
    expected = w3 - LR / (1 - BETAS[0] ** 2) * m / denom
    assert torch.allclose(after[3], expected, atol=1e-6)


def test_weight_decay_reaches_touched_rows_only():
    sparse, _ = twins()
    opt = RowAdamW(sparse.parameters(), lr=LR, weight_decay=0.5)
    before = sparse.weight.detach().clone()
    opt.zero_grad()
    (sparse(torch.tensor([2])) * 0.0).sum().backward()  # row 2 in the gradient, zero values
    opt.step()
    after = sparse.weight.detach()
    assert torch.allclose(after[2], before[2] * (1 - LR * 0.5))
    assert torch.equal(after[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])


def test_dense_parameters_beside_a_sparse_table_take_adamws_step():
    torch.manual_seed(1)
    emb = nn.Embedding(5, 2, sparse=True)
    lin = nn.Linear(2, 1)
    ref = nn.Linear(2, 1)
    ref.load_state_dict(lin.state_dict())
    opt = RowAdamW([*emb.parameters(), *lin.parameters()], lr=LR)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=LR)
    x = emb(torch.tensor([0, 3]))
    for model, o, inp in ((lin, opt, x), (ref, ref_opt, x.detach())):
        o.zero_grad()
        model(inp).sum().backward()
        o.step()
    assert torch.equal(lin.weight, ref.weight) and torch.equal(lin.bias, ref.bias)
    assert emb.weight.grad.is_sparse  # handed back after the step


def test_sparse_gradients_refuse_amsgrad_by_name():
    emb = nn.Embedding(3, 2, sparse=True)
    opt = RowAdamW(emb.parameters(), lr=LR, amsgrad=True)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="amsgrad"):
        opt.step()


@pytest.mark.parametrize("max_norm", [0.1, 100.0])
def test_clip_grad_norm_matches_torch_on_the_dense_equivalent(max_norm):
    sparse, dense = twins(seed=3)
    lin_s, lin_d = nn.Linear(3, 1), nn.Linear(3, 1)
    lin_d.load_state_dict(lin_s.state_dict())
    rows = torch.tensor([1, 4, 4, 0])
    for emb, lin in ((sparse, lin_s), (dense, lin_d)):
        (lin(emb(rows)) ** 2).sum().backward()
    got = clip_grad_norm([*sparse.parameters(), *lin_s.parameters()], max_norm)
    want = nn.utils.clip_grad_norm_([*dense.parameters(), *lin_d.parameters()], max_norm)
    assert math.isclose(float(got), float(want), rel_tol=1e-5)
    assert sparse.weight.grad.is_sparse and sparse.weight.grad.is_coalesced()
    assert torch.allclose(sparse.weight.grad.to_dense(), dense.weight.grad, atol=1e-6)
    assert torch.allclose(lin_s.weight.grad, lin_d.weight.grad, atol=1e-6)


def test_make_optimizer_is_row_sparse():
    assert isinstance(make_optimizer(nn.Embedding(3, 2, sparse=True), 0.1, 0.0), RowAdamW)


def test_the_item_table_is_sparse_exactly_when_the_loss_samples(tiny_events):
    base = dict(dim=8, n_layers=1, n_heads=1, max_len=8, epochs=1, text_encoder=None)
    base |= dict(validation=False, verbose=False, random_state=0)
    full = SequentialRecommender(**base).fit(Dataset(tiny_events))
    assert not full.module_.item_tower.id_emb.sparse  # the whole catalogue is scored
    for extra in ({"full_softmax_max_items": 10}, {"loss": "gbce"}):
        model = SequentialRecommender(**base, **extra).fit(Dataset(tiny_events))
        assert model.module_.item_tower.id_emb.sparse, extra


def random_events(n_items, n_events, n_users=100, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, n_users, n_events).astype(str),
            "item_id": rng.integers(0, n_items, n_events).astype(str),
            "timestamp": np.sort(rng.integers(0, 10**6, n_events)),
            "event_type": "view",
            "value": 1.0,
        }
    )


@pytest.fixture(scope="module")
def tiny_events():
    return random_events(60, 600, n_users=20)


def test_an_online_step_on_a_sampled_catalogue_moves_only_the_rows_it_touched():
    """Before row-sparse steps, AdamW moved every row the fit had given momentum."""
    torch.set_num_threads(1)
    events = random_events(3000, 4000)
    model = SequentialRecommender(
        dim=8,
        n_layers=1,
        n_heads=1,
        max_len=8,
        epochs=2,
        batch_size=64,
        n_negatives=32,
        full_softmax_max_items=100,
        text_encoder=None,
        validation=False,
        verbose=False,
        random_state=0,
    ).fit(Dataset(events))
    before = model.module_.item_tower.id_emb.weight.detach().clone()
    n_rows = before.shape[0]
    assert n_rows > 2000  # most items have rows, and fit gave them momentum
    new = events.sample(5, random_state=1).assign(timestamp=10**6 + np.arange(5))
    model.observe(new)
    assert model.online_step(1)["n_steps"] == 1
    after = model.module_.item_tower.id_emb.weight.detach()
    moved = int((after != before).any(dim=1).sum())
    # the step touches at most 5 windows of 8 inputs and one more target each, 32 negatives
    assert 0 < moved <= 5 * 9 + 32


def test_sparse_rows_false_keeps_dense_adamw_steps(tiny_events):
    base = dict(dim=8, n_layers=1, n_heads=1, max_len=8, epochs=1, text_encoder=None)
    base |= dict(validation=False, verbose=False, random_state=0, full_softmax_max_items=10)
    model = SequentialRecommender(**base, sparse_rows=False).fit(Dataset(tiny_events))
    assert not model.module_.item_tower.id_emb.sparse
    with pytest.raises(ParameterError, match="sparse_rows"):
        SequentialRecommender(sparse_rows="yes").fit(Dataset(tiny_events))
