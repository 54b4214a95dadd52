"""Run one RecBole 1.2.1 sequential model on pre-split atomic files (inside the RecBole venv).

Not part of the package and not run with our interpreter: ``benchmarks/recbole_peer.py``
starts it with ``benchmarks/_work/recbole-venv/bin/python`` once per (dataset, model) and
reads the JSON it writes. It only imports RecBole, torch and NumPy.

What it changes at run time (nothing in site-packages is edited):

* NumPy 2 aliases. RecBole 1.2.1 uses ``np.float``/``np.bool``/``np.long``... and its own
  ``Config.compatibility_settings`` reads ``np.float_``, ``np.complex_`` and ``np.unicode_``,
  which NumPy 2 removed; the missing names are put back before RecBole is imported.
* ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``: torch >= 2.6 loads with ``weights_only=True`` by
  default; RecBole's checkpoints hold its Config object, so ``trainer.evaluate(...,
  load_best_model=True)`` would fail without it.
* History masking (``--mask-history``, default on): RecBole's full-sort evaluation of
  *sequential* models masks only the padding item 0, never the user's earlier items. Our
  evaluation excludes everything the user interacted with before the target and ranks only
  the items our model knows (items of the training data). The model's ``full_sort_predict``
  is wrapped to do the same: the user's earlier items and items outside the catalogue get
  -inf. Test metrics are also reported without the mask (``test_native``: RecBole's own
  protocol) for reference.
* Timing: ``trainer._train_epoch`` and ``trainer._valid_epoch`` are wrapped with a clock;
  ``--time-budget`` stops training before a new epoch once that many seconds of training
  and validation have been spent (the best-validation checkpoint is then tested as usual).
"""

from __future__ import annotations

import os

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import numpy as np  # noqa: E402

# NumPy 2 removed these aliases; RecBole 1.2.1 still uses them (see module docstring).
NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}
SHIMMED = []
for _name, _value in NUMPY_ALIASES.items():
    if _name not in np.__dict__:  # removed names live only in numpy.__getattr__
        setattr(np, _name, _value)
        SHIMMED.append(_name)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402


class TimeBudgetReached(Exception):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-path", required=True, help="folder holding <dataset>/ atomic files")
    p.add_argument("--dataset", required=True, help="RecBole dataset token (folder name)")
    p.add_argument("--model", required=True, choices=["SASRec", "GRU4Rec"])
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--inner-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=2, help="SASRec transformer layers")
    p.add_argument("--gru-layers", type=int, default=1, help="GRU4Rec GRU layers")
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--attn-dropout", type=float, default=0.2)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--stopping-step", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--eval-batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-budget", type=float, default=None, help="seconds of train+valid")
    p.add_argument("--no-mask-history", dest="mask_history", action="store_false")
    p.add_argument("--check-users", nargs="*", default=[], help="user tokens to dump")
    return p.parse_args(argv)


def recbole_config(a) -> dict:
    cfg = {
        # data: the three pre-split files, nothing re-split, re-filtered or augmented
        "data_path": a.data_path,
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "MAX_ITEM_LIST_LENGTH": a.max_len,
        "rm_dup_inter": None,
        "val_interval": None,
        "filter_inter_by_user_or_item": False,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        # training
        "epochs": a.epochs,
        "stopping_step": a.stopping_step,
        "train_batch_size": a.batch_size,
        "learner": "adam",
        "learning_rate": a.lr,
        "weight_decay": 0.0,
        "train_neg_sample_args": None,  # required for loss_type CE
        "eval_step": 1,
        # evaluation: full ranking; order TO is required by SequentialDataset.build
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "group_by": "user",
            "order": "TO",
            "mode": "full",
        },
        "metrics": ["Hit", "NDCG", "Recall", "MRR"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "valid_metric_bigger": True,
        "eval_batch_size": a.eval_batch_size,
        # environment
        "use_gpu": False,
        "device": "cpu",
        "seed": a.seed,
        "reproducibility": True,
        "show_progress": False,
        "checkpoint_dir": a.checkpoint_dir,
        "state": "INFO",
    }
    if a.model == "SASRec":
        cfg.update(
            hidden_size=a.hidden_size,
            inner_size=a.inner_size,
            n_layers=a.layers,
            n_heads=a.heads,
            hidden_dropout_prob=a.dropout,
            attn_dropout_prob=a.attn_dropout,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            initializer_range=0.02,
            loss_type="CE",
        )
    else:
        cfg.update(
            embedding_size=a.hidden_size,
            hidden_size=a.hidden_size,
            num_layers=a.gru_layers,
            dropout_prob=a.dropout,
            loss_type="CE",
        )
    return cfg


def load_history(path: Path) -> dict[str, tuple[list[str], str, str]]:
    """user -> (train items, valid item or '', test item or '') as our split made them."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            user, train, valid, test = line.rstrip("\n").split("\t")
            out[user] = (train.split(" ") if train else [], valid, test)
    return out


def build_masker(dataset, history):
    """Per (user, target): the internal ids to mask and whether the row is a test row;
    and the items outside the catalogue when validating / when testing."""
    u_map = dataset.field2token_id["user_id"]
    i_map = dataset.field2token_id["item_id"]
    n_items = dataset.item_num
    cat_valid = np.zeros(n_items, dtype=bool)  # items our model would know when validating
    cat_test = np.zeros(n_items, dtype=bool)  # ... when testing (train + valid)
    rows: dict[tuple[int, int], tuple[np.ndarray, bool]] = {}
    for user, (train, valid, test) in history.items():
        ids = np.array([i_map[t] for t in train], dtype=np.int64)
        cat_valid[ids] = True
        cat_test[ids] = True
        if valid:
            cat_test[i_map[valid]] = True
        if user not in u_map:
            continue
        uid = u_map[user]
        if valid:
            rows[(uid, i_map[valid])] = (ids, False)
        if test:
            before = np.append(ids, i_map[valid]) if valid else ids
            rows[(uid, i_map[test])] = (before, True)
    off_valid = torch.from_numpy(np.flatnonzero(~cat_valid))
    off_test = torch.from_numpy(np.flatnonzero(~cat_test))
    return rows, off_valid, off_test


def wrap_full_sort(model, rows, off_valid, off_test, state):
    original = model.full_sort_predict

    def full_sort_predict(interaction):
        scores = original(interaction)
        if not state["mask"]:
            return scores
        scores = scores.view(len(interaction), -1)
        keys = zip(interaction["user_id"].tolist(), interaction["item_id"].tolist(), strict=True)
        r_idx, c_idx, test_rows, valid_rows = [], [], [], []
        for r, key in enumerate(keys):
            hist, is_test = rows[key]  # KeyError: a row our split did not make
            r_idx.append(np.full(len(hist), r, dtype=np.int64))
            c_idx.append(hist)
            (test_rows if is_test else valid_rows).append(r)
        if r_idx:
            scores[
                torch.from_numpy(np.concatenate(r_idx)), torch.from_numpy(np.concatenate(c_idx))
            ] = -np.inf
        for rr, off in ((test_rows, off_test), (valid_rows, off_valid)):
            if rr and len(off):
                scores[torch.tensor(rr)[:, None], off[None, :]] = -np.inf
        return scores

    model.full_sort_predict = full_sort_predict


def dump_users(dataset, parts, users):
    """RecBole's own view (after loading and remapping) of some users: per part the
    (history, target) rows in file order, as external tokens."""
    u_map = dataset.field2token_id["user_id"]
    id2item = dataset.field2id_token["item_id"]
    out = {}
    for user in users:
        if user not in u_map:
            out[user] = None
            continue
        uid = u_map[user]
        view = {}
        for name, part in parts.items():
            feat = part.inter_feat
            sel = (feat["user_id"] == uid).nonzero().squeeze(1)
            view[name] = [
                [
                    [
                        str(id2item[i])
                        for i in feat["item_id_list"][j][: int(feat["item_length"][j])].tolist()
                    ],
                    str(id2item[int(feat["item_id"][j])]),
                ]
                for j in sel.tolist()
            ]
        out[user] = view
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config also parses sys.argv (--key=value)
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    config = Config(model=a.model, dataset=a.dataset, config_dict=recbole_config(a))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    t_ready = time.perf_counter()

    history = load_history(Path(a.data_path) / a.dataset / "history.tsv")
    rows, off_valid, off_test = build_masker(dataset, history)
    state = {"mask": a.mask_history}
    wrap_full_sort(model, rows, off_valid, off_test, state)

    # ------------------------------------------------------------------ timing
    train_s, valid_s, valid_scores, train_cpu_s, load_avg = [], [], [], [], []
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*args, **kwargs):
        if a.time_budget is not None and sum(train_s) + sum(valid_s) >= a.time_budget:
            raise TimeBudgetReached
        t0, c0 = time.perf_counter(), time.process_time()
        out = orig_train(*args, **kwargs)
        train_s.append(time.perf_counter() - t0)
        train_cpu_s.append(time.process_time() - c0)  # CPU seconds of this process (all threads)
        load_avg.append(os.getloadavg()[0])
        return out

    def timed_valid(*args, **kwargs):
        t0 = time.perf_counter()
        score, result = orig_valid(*args, **kwargs)
        valid_s.append(time.perf_counter() - t0)
        valid_scores.append(float(score))
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid

    stopped_by = "epoch_cap"
    t_fit = time.perf_counter()
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        if len(train_s) < a.epochs:
            stopped_by = "early_stopping"
    except TimeBudgetReached:
        stopped_by = "time_budget"
    fit_seconds = time.perf_counter() - t_fit

    t_test = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, model_file=trainer.saved_model_file)
    test_seconds = time.perf_counter() - t_test
    state["mask"] = False
    test_native = trainer.evaluate(test_data, load_best_model=False)
    state["mask"] = a.mask_history

    best_epoch = int(np.argmax(valid_scores)) if valid_scores else None  # first max, as RecBole
    n_train = len(train_data._dataset)
    mean_train = float(np.mean(train_s)) if train_s else None
    result = {
        "dataset": a.dataset,
        "model": a.model,
        "versions": {
            "python": platform.python_version(),
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pandas": __import__("pandas").__version__,
            "scipy": __import__("scipy").__version__,
        },
        "numpy_aliases_shimmed": SHIMMED,
        "threads": torch.get_num_threads(),
        "config": {
            k: config[k]
            for k in sorted(recbole_config(a))
            if k not in ("data_path", "checkpoint_dir")
        }
        | {
            k: config[k]
            for k in (
                "embedding_size",
                "hidden_size",
                "inner_size",
                "n_layers",
                "num_layers",
                "n_heads",
                "hidden_dropout_prob",
                "attn_dropout_prob",
                "dropout_prob",
                "loss_type",
                "MAX_ITEM_LIST_LENGTH",
            )
            if config[k] is not None
        },
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "n_items_incl_padding": int(dataset.item_num),
        "n_users_incl_padding": int(dataset.user_num),
        "n_train_targets": int(n_train),
        "n_valid_rows": int(len(valid_data._dataset)),
        "n_test_rows": int(len(test_data._dataset)),
        "mask_history": a.mask_history,
        "epoch_cap": a.epochs,
        "time_budget_s": a.time_budget,
        "epochs_run": len(train_s),
        "stopped_by": stopped_by,
        "best_epoch": best_epoch,
        "best_valid_ndcg@10": max(valid_scores) if valid_scores else None,
        "valid_ndcg@10_per_epoch": valid_scores,
        "train_seconds_per_epoch": train_s,
        "train_cpu_seconds_per_epoch": train_cpu_s,
        "load_average_1min_after_epoch": load_avg,
        "n_cpus": os.cpu_count(),
        "valid_seconds_per_epoch": valid_s,
        "mean_train_seconds_per_epoch": mean_train,
        "mean_train_cpu_seconds_per_epoch": float(np.mean(train_cpu_s)) if train_cpu_s else None,
        "mean_valid_seconds_per_epoch": float(np.mean(valid_s)) if valid_s else None,
        "train_seconds_per_1k_targets": mean_train / (n_train / 1000.0) if mean_train else None,
        "setup_seconds": t_ready - t_start,
        "fit_seconds": fit_seconds,
        "test_seconds": test_seconds,
        "total_seconds": time.perf_counter() - t_start,
        "test": {k: float(v) for k, v in test.items()},
        "test_native": {k: float(v) for k, v in test_native.items()},
        "check_users": dump_users(
            dataset,
            {
                "train": train_data._dataset,
                "valid": valid_data._dataset,
                "test": test_data._dataset,
            },
            a.check_users,
        ),
    }
    Path(a.out).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
