"""Saving and loading models: a folder holding ``model.json`` (class, settings and
JSON-able state) and ``arrays.npz`` (numpy and sparse arrays). No pickle, so loading runs
no stored code; an existing folder is replaced atomically.

:func:`save_model` and :func:`load_model` are the bodies of
:meth:`Recommender.save <lifelongrec.models.Recommender.save>` and
:meth:`Recommender.load <lifelongrec.models.Recommender.load>`; a model adds its own
arrays through its ``_state`` / ``_set_state`` hooks.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lifelongrec.models._vocabulary import FreeRow

__all__ = ["load_model", "save_model"]

_FORMAT_VERSION = 1


def save_model(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` (a fitted :class:`~lifelongrec.models.Recommender`) to the folder
    ``path`` (created; replaced atomically if it exists): the body of ``save``."""
    model._check_fitted()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    arrays, extra = model._state()
    flat: dict[str, np.ndarray] = {
        "_user_ids": np.asarray(model.user_ids_, dtype=str),
        "_item_ids": np.asarray(model.item_ids_, dtype=str),
        "_item_counts": model.item_counts_,
    }
    for key, ids in (("_free_user_rows", model.user_ids_), ("_free_item_rows", model.item_ids_)):
        free = [j for j, i in enumerate(ids) if isinstance(i, FreeRow)]
        if free:  # placeholders are written as text: the rows say which they are
            flat[key] = np.asarray(free, dtype=np.int64)
    sparse_keys = ["_user_items"]
    arrays = {"_user_items": model.user_items_, **arrays}
    for key, value in arrays.items():
        if sp.issparse(value):
            value = value.tocsr()
            flat[f"{key}.data"] = value.data
            flat[f"{key}.indices"] = value.indices
            flat[f"{key}.indptr"] = value.indptr
            flat[f"{key}.shape"] = np.asarray(value.shape, dtype=np.int64)
            if key not in sparse_keys:
                sparse_keys.append(key)
        else:
            flat[key] = np.asarray(value)
    meta = {
        "format_version": _FORMAT_VERSION,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "name": model.name,
        "params": model.get_params(),
        "sparse": sparse_keys,
        "extra": extra,
    }
    with open(tmp / "arrays.npz", "wb") as fh:
        np.savez(fh, **flat)
    (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default))
    model._save_children(tmp)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            _rmtree(old)
        os.replace(path, old)
        os.replace(tmp, path)
        _rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def load_model(cls: type, path: str | os.PathLike) -> Any:
    """Read a model written by :func:`save_model`; its class must be ``cls`` or a
    subclass: the body of ``Recommender.load``."""
    path = Path(path)
    meta_file = path / "model.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path}: not a saved lifelongrec model (no model.json)")
    meta = json.loads(meta_file.read_text())
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {meta.get('format_version')!r} is not "
            f"supported; expected {_FORMAT_VERSION}"
        )
    module, _, qual = meta["class"].rpartition(".")
    klass = getattr(importlib.import_module(module), qual)
    if not issubclass(klass, cls):
        raise TypeError(f"{path} holds a {klass.__name__}, not a {cls.__name__}")
    model = klass(**_restore_tuples(klass, meta["params"]))
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        raw = {k: npz[k] for k in npz.files}
    arrays: dict[str, Any] = {}
    for key in meta["sparse"]:
        arrays[key] = sp.csr_matrix(
            (raw.pop(f"{key}.data"), raw.pop(f"{key}.indices"), raw.pop(f"{key}.indptr")),
            shape=tuple(raw.pop(f"{key}.shape")),
        )
    arrays.update(raw)
    vocab = []
    for key in ("_user", "_item"):
        ids = arrays.pop(f"{key}_ids").astype(object)
        free = arrays.pop(f"_free{key}_rows", np.empty(0, np.int64))
        ids[free] = np.fromiter((FreeRow(r) for r in free), object, len(free))
        vocab.append(ids)
    model._set_vocab(*vocab)
    model.user_items_ = arrays.pop("_user_items")
    model.item_counts_ = arrays.pop("_item_counts")
    model._load_children(path)
    model._set_state(arrays, meta["extra"])
    return model


def _restore_tuples(klass: type, params: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists: give back a tuple where ``__init__``'s default is one."""
    sig = inspect.signature(klass.__init__)
    out = dict(params)
    for name, value in params.items():
        p = sig.parameters.get(name)
        if p is not None and isinstance(p.default, tuple) and isinstance(value, list):
            out[name] = tuple(value)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (tuple, np.ndarray)):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in model.json")


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
