"""Exploratory (issue 3, cold start in the full catalogue): id rows of new items taken from
their content neighbours' id rows instead of zero.

Fits the sequential model on ml-latest-small's global temporal 80 % (as
``benchmarks/sequential.py coldstart``), admits the cold items with ``add_items`` (zero id
rows + content), then, without training, sets each cold item's id row to a softmax-
weighted mean (temperature ``tau`` over cosine similarity of the content projections) of
its ``k`` most similar warm items' id rows, and scores every cold test event from the
user's history before it. Prints full-catalogue and cold-only Recall@10 per setting.

    .venv/bin/python benchmarks/cold_neighbours.py minilm     # or: none (genres only)

Uses the model's private tables (``_module.item_tower``): a probe, not an API.
"""

import sys
import time

import _common as B
import numpy as np
import pandas as pd
import torch

from lifelongrec.data import temporal_split
from lifelongrec.models import get_model

SETTINGS = [(1, 0.1), (3, 0.1), (5, 0.1), (10, 0.1), (20, 0.1), (50, 0.1), (5, 1.0), (10, 0.03)]


def main() -> None:
    text = sys.argv[1] if len(sys.argv) > 1 else "minilm"
    params = {"text_encoder": None if text == "none" else text, "verbose": False}
    split = temporal_split(B.load_prepared({"dataset": "ml-latest-small"}), test_fraction=0.2)
    cold, _ = B.cold_test_events(split)
    model = get_model("sequential", **params)
    t0 = time.time()
    model.fit(split.train_full)
    print(f"text={text} fit {time.time() - t0:.0f} s", flush=True)
    n_warm = len(model.item_ids_)
    ids = dict.fromkeys(split.test.events["item_id"].astype(str))
    known = set(model.item_ids_)
    cold_ids = [i for i in ids if i not in known]
    B.admit_items(model, split.train_full, cold_ids)
    history = pd.concat([split.train_full.events, split.test.events], ignore_index=True)
    index = pd.Index(np.asarray(model.item_ids_, dtype=object))
    cold_cols = index.get_indexer(cold_ids)

    def evaluate(tag: str) -> None:
        model._item_cache = None  # item vectors changed below
        m = B.cold_metrics(model, cold, history, index, cold_cols, 10, 0)
        print(
            f"{tag}: full Recall@10 {m['full_recall@10']:.4f} "
            f"cold-only {m['coldonly_recall@10']:.4f}",
            flush=True,
        )

    evaluate("zero id rows (add_items)")
    tower = model._module.item_tower
    with torch.no_grad():
        E = tower.id_emb.weight
        C = torch.nn.functional.normalize(tower.proj(tower.content), dim=1)
        warm = torch.arange(1, n_warm + 1)
        rows = torch.as_tensor(cold_cols + 1)
        sim = C[rows] @ C[warm].T
        for k, tau in SETTINGS:
            top = sim.topk(k, dim=1)
            w = torch.softmax(top.values / tau, dim=1)
            E[rows] = (w[:, :, None] * E[warm][top.indices]).sum(1)
            evaluate(f"neighbour id rows k={k} tau={tau}")
        E[rows] = E[warm].mean(0)
        evaluate("mean warm id row")


if __name__ == "__main__":
    main()
