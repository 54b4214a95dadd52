"""The HSTU encoder (``encoder="hstu"``): the block against a loop over queries and heads,
relative time read from the gap buckets, the encoder's causality and padding, and the
model's contract (fit, updates, save/load, cost model) with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sequential import TINY, assert_causal, two_worlds

from lifelongrec.data import make_events
from lifelongrec.models import Recommender, SequentialRecommender
from lifelongrec.models.sequential._budget import CostModel
from lifelongrec.models.sequential._modules import HSTUBlock, relative_time_buckets
from lifelongrec.nn import gap_buckets

HSTU = {**TINY, "encoder": "hstu"}


@pytest.fixture(scope="module")
def hstu():
    return SequentialRecommender(**HSTU).fit(two_worlds())


def _naive_block(block: HSTUBlock, x, mask, buckets):
    """The HSTU layer written out per user, head, query and key."""
    B, L, D = x.shape
    H = block.n_heads
    d = D // H
    u, v, q, k = torch.nn.functional.silu(block.uvqk(block.norm(x))).split(D, dim=-1)
    y = torch.zeros(B, L, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            cols = slice(h * d, (h + 1) * d)
            for i in range(L):
                for j in range(L):
                    s = float(q[b, i, cols] @ k[b, j, cols])
                    s += float(block.rel_pos.weight[max(i - j, 0), h])
                    s += float(block.rel_time.weight[buckets[b, i, j], h])
                    a = s / (1 + np.exp(-s)) * float(mask[b, 0, i, j]) / block.max_len
                    y[b, i, cols] += a * v[b, j, cols].double()
    y = y.float()
    return x + block.out(block.out_norm(y) * u)


def test_hstu_block_matches_a_loop_over_users_heads_queries_and_keys():
    torch.manual_seed(0)
    B, L, D, H, T = 2, 5, 8, 2, 6
    block = HSTUBlock(D, H, dropout=0.0, max_len=7, n_time_buckets=T).eval()
    with torch.no_grad():
        block.rel_pos.weight.normal_()  # zero at init: give the biases something to add
        block.rel_time.weight.normal_()
    x = torch.randn(B, L, D)
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    valid = torch.tensor([[False, True, True, True, True], [True] * L])
    mask = (causal[None] & (valid[:, None, :] | torch.eye(L, dtype=torch.bool)[None]))[:, None]
    buckets = torch.randint(0, T, (B, L, L))
    with torch.no_grad():
        got = block(x, mask.float(), buckets)
        want = _naive_block(block, x, mask, buckets)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_relative_time_buckets_recover_the_time_between_events():
    # gaps at bucket lower bounds (2**k - 1 s) are read back exactly
    gaps_s = np.array([0, 1, 7, 0, 1023, 3, 2**20 - 1])
    ts = np.cumsum(gaps_s)
    n_buckets = 32
    g = gap_buckets(np.zeros(len(ts), np.int64), ts, n_buckets)
    got = relative_time_buckets(torch.as_tensor(g)[None], n_buckets)[0].numpy()
    delta = np.clip(ts[:, None] - ts[None, :], 0, None)
    want = np.minimum(np.floor(np.log2(1 + delta)), n_buckets - 1).astype(np.int64)
    np.testing.assert_array_equal(got, want)
    # padding before the first event adds no time; a long gap lands in the last bucket
    padded = relative_time_buckets(torch.as_tensor(np.r_[[0, 0], g])[None], n_buckets)[0]
    np.testing.assert_array_equal(padded[2:, 2:].numpy(), want)
    few = relative_time_buckets(torch.as_tensor(g)[None], 8)[0].numpy()
    np.testing.assert_array_equal(few, np.minimum(want, 7))


def test_hstu_encoder_is_causal_and_ignores_padding(hstu):
    items, types, gaps, h = assert_causal(hstu)
    module = hstu.module_
    with torch.no_grad():
        # garbage features in the padded slots, and a shorter window of the same events
        pad = items == 0
        g = module.hidden(items, types.masked_fill(pad, 1), gaps.masked_fill(pad, 7))
        short = module.hidden(items[:, 2:], types[:, 2:], gaps[:, 2:])
    torch.testing.assert_close(g[:, 2:], h[:, 2:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short, h[:, 2:], atol=1e-5, rtol=1e-5)


def test_hstu_model_learns_each_groups_sequence(hstu):
    # users walk a3 -> a4 -> ... (or b-items): from each prefix of a user's events the
    # model ranks the event that followed first (a group's popularity would not)
    ev = two_worlds().events
    later = ev[ev["user_id"].duplicated()]
    S = hstu.score_histories(later["user_id"].tolist(), ev, before=later["timestamp"].to_numpy())
    cols = np.array([hstu.item_index_[i] for i in later["item_id"]])
    rank = (S > S[np.arange(len(cols)), cols][:, None]).sum(axis=1)
    assert (rank == 0).mean() >= 0.9


def test_hstu_model_updates_and_round_trips(hstu, tmp_path):
    assert type(hstu.module_.encoder.blocks[0]) is HSTUBlock
    loaded = Recommender.load(hstu.save(tmp_path / "m"))
    assert loaded.encoder == "hstu" and type(loaded.module_.encoder.blocks[0]) is HSTUBlock
    users = ["auser0", "buser1"]
    np.testing.assert_array_equal(loaded.score_items(users), hstu.score_items(users))
    upd = make_events(["auser0", "newbie"], ["b5", "a2"], [10**7, 10**7 + 1])
    before = loaded.module_.encoder.blocks[0].uvqk.weight.detach().clone()
    loaded.partial_fit(upd, epochs=2)
    assert not torch.equal(loaded.module_.encoder.blocks[0].uvqk.weight, before)
    assert np.isfinite(loaded.score_items(["newbie"])).all()
    loaded.observe(make_events(["buser1"], ["a3"], [10**7 + 2]))
    assert loaded.online_step()["n_events"] >= 1


def test_cost_model_counts_the_hstu_block():
    kw = dict(dim=16, n_layers=2, ffn_mult=4, content_dim=0, n_scored=10, batch_size=4)
    sasrec, hstu = CostModel(**kw), CostModel(**kw, encoder="hstu")
    L = 8
    # per layer: the weight matrices (SASRec: qkv + out + the 4x feed-forward; HSTU:
    # uvqk + out) and the L x L attention products
    assert sasrec.position(L) - sasrec.embed == 2 * (16 * 16 * (4 + 8) + 2 * L * 16)
    assert hstu.position(L) - hstu.embed == 2 * (16 * 16 * 5 + 2 * L * 16)
    m = SequentialRecommender(**{**HSTU, "epochs": 1}).fit(two_worlds())
    n_weights = sum(
        p.numel()
        for n, p in m.module_.encoder.blocks[0].named_parameters()
        if n.endswith("weight") and p.ndim == 2 and "rel_" not in n
    )
    assert n_weights == 5 * 16 * 16
