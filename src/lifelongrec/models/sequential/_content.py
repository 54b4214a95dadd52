"""Content features of items (text, categories, numeric attributes) for the item tower
and the category head."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import is_number
from lifelongrec.features._content import TfidfItemEncoder

__all__ = ["ContentFeaturizer", "catalogue_rows", "set_csr_rows"]

_TFIDF_MAX_FEATURES = 2048  # width of TF-IDF text vectors fed to the item tower
_MAX_NUMERIC_ATTRIBUTES = 32


# ============================================================== content features
def _text_encoder(name: str | None) -> tuple[str | None, Any]:
    """``(resolved name, encoder)``; ``"auto"`` prefers MiniLM and falls back to TF-IDF."""
    if name is None:
        return None, None
    if name in ("auto", "minilm"):
        try:
            from lifelongrec.features._text import SentenceItemEncoder  # noqa: PLC0415

            return "minilm", SentenceItemEncoder()
        except Exception as exc:  # missing module, package or model files
            if name == "minilm":
                raise ParameterError(
                    "text_encoder",
                    name,
                    f"an available encoder ('minilm' could not be loaded: {exc}); "
                    "use 'tfidf' or None",
                ) from None
    return "tfidf", TfidfItemEncoder(max_features=_TFIDF_MAX_FEATURES, category_weight=0.0)


class ContentFeaturizer:
    """Fixed content features of items: text vector, multi-hot categories, numeric attributes.

    ``fit(items)`` learns the text vocabulary (TF-IDF) or loads the sentence encoder, the
    category vocabulary (the ``max_categories`` most frequent) and which attributes are
    numeric (``sign(x) log(1 + |x|)``, standardised; missing -> 0). ``transform(items)``
    gives ``(content (n, F) float32, categories (n, C) CSR with rows summing to 1)``.
    Items with nothing known give zero rows.
    """

    def __init__(self, text_encoder: str | None, max_categories: int) -> None:
        self.text_encoder = text_encoder
        self.max_categories = max_categories

    def fit(self, items: pd.DataFrame | None) -> ContentFeaturizer:
        self.text_name_, self._encoder = None, None
        self.categories_: list[str] = []
        self.numeric_: list[str] = []
        self.num_mean_ = np.zeros(0)
        self.num_std_ = np.ones(0)
        self.text_dim_ = 0
        if items is None or len(items) == 0:
            return self
        name, enc = _text_encoder(self.text_encoder)
        for attempt in range(2):
            if enc is None:
                break
            try:
                if hasattr(enc, "fit"):
                    enc.fit(items)
                self.text_dim_ = int(np.asarray(self._text(enc, items.iloc[:1])).shape[1])
                self.text_name_, self._encoder = name, enc
                break
            except DataError:  # no titles at all: no text features
                break
            except Exception:  # the sentence model failed to load: "auto" falls back
                if self.text_encoder != "auto" or attempt:
                    raise
                name, enc = _text_encoder("tfidf")
        counts: dict[str, int] = {}
        for cats in items["categories"].tolist():
            for c in _categories(cats):
                counts[c] = counts.get(c, 0) + 1
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        self.categories_ = ranked[: self.max_categories]
        keys: dict[str, int] = {}
        bad: set[str] = set()
        for attrs in items["attributes"].tolist() if "attributes" in items else []:
            if not isinstance(attrs, dict):
                continue
            for key, v in attrs.items():
                if v is None:
                    continue
                if is_number(v):
                    keys[key] = keys.get(key, 0) + 1
                else:
                    bad.add(key)
        good = sorted((k for k in keys if k not in bad), key=lambda k: (-keys[k], k))
        self.numeric_ = good[:_MAX_NUMERIC_ATTRIBUTES]
        if self.numeric_:
            raw, present = self._numeric_raw(items)
            cnt = present.sum(0).clip(min=1)
            mean = (raw * present).sum(0) / cnt
            var = (((raw - mean) * present) ** 2).sum(0) / cnt
            # a constant attribute's variance is rounding noise: dividing by its root
            # would blow up any later item whose value differs (std 1 instead)
            std = np.sqrt(var)
            constant = std <= 1e-6 * np.maximum(1.0, np.abs(mean))
            self.num_mean_, self.num_std_ = mean, np.where(constant, 1.0, std)
        return self

    @property
    def n_features(self) -> int:
        return self.text_dim_ + len(self.categories_) + len(self.numeric_)

    @staticmethod
    def _text(enc: Any, items: pd.DataFrame) -> np.ndarray:
        out = enc.transform(items)
        out = out.toarray() if sp.issparse(out) else np.asarray(out)
        return out.astype(np.float32)

    def _numeric_raw(self, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        raw = np.zeros((len(items), len(self.numeric_)))
        present = np.zeros_like(raw)
        col = {k: j for j, k in enumerate(self.numeric_)}
        for i, attrs in enumerate(items["attributes"].tolist()):
            if isinstance(attrs, dict):
                for key, v in attrs.items():
                    j = col.get(key)
                    if j is not None and is_number(v):
                        x = float(v)
                        raw[i, j] = math.copysign(math.log1p(abs(x)), x)
                        present[i, j] = 1.0
        return raw, present

    def transform(self, items: pd.DataFrame) -> tuple[np.ndarray, sp.csr_matrix]:
        n = len(items)
        parts = []
        if self._encoder is not None:
            parts.append(self._text(self._encoder, items))
        col = {c: j for j, c in enumerate(self.categories_)}
        rows, cols = [], []
        for i, cats in enumerate(items["categories"].tolist()):
            for c in _categories(cats):
                j = col.get(c)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        multi = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(n, len(self.categories_))
        )
        multi.sum_duplicates()
        multi.data[:] = 1.0
        counts = np.asarray(multi.sum(axis=1)).ravel()
        if self.categories_:
            parts.append((sp.diags(1.0 / np.sqrt(np.maximum(counts, 1.0))) @ multi).toarray())
        if self.numeric_:
            raw, present = self._numeric_raw(items)
            parts.append(((raw - self.num_mean_) / self.num_std_ * present).astype(np.float32))
        content = (
            np.concatenate(parts, axis=1).astype(np.float32)
            if parts
            else np.zeros((n, 0), np.float32)
        )
        soft = (sp.diags(1.0 / np.maximum(counts, 1.0)) @ multi).astype(np.float32).tocsr()
        return content, soft

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            "categories": np.asarray(self.categories_, dtype=str),
            "numeric": np.asarray(self.numeric_, dtype=str),
            "num_mean": np.asarray(self.num_mean_, dtype=np.float64),
            "num_std": np.asarray(self.num_std_, dtype=np.float64),
        }
        extra: dict[str, Any] = {"text": self.text_name_, "text_dim": self.text_dim_}
        if self.text_name_ == "tfidf":
            enc_arrays, enc_extra = self._encoder.get_state()
            arrays.update({f"tfidf.{k}": v for k, v in enc_arrays.items()})
            extra["tfidf"] = enc_extra
        return arrays, extra

    @classmethod
    def from_state(
        cls, arrays: dict[str, np.ndarray], extra: dict[str, Any], params: dict[str, Any]
    ) -> ContentFeaturizer:
        self = cls(params["text_encoder"], params["max_categories"])
        self.categories_ = [str(c) for c in arrays["categories"]]
        self.numeric_ = [str(c) for c in arrays["numeric"]]
        self.num_mean_, self.num_std_ = arrays["num_mean"], arrays["num_std"]
        self.text_name_, self.text_dim_, self._encoder = extra["text"], extra["text_dim"], None
        if self.text_name_ == "tfidf":
            enc_arrays = {k[6:]: v for k, v in arrays.items() if k.startswith("tfidf.")}
            self._encoder = TfidfItemEncoder.from_state(enc_arrays, extra["tfidf"])
        return self

    def ensure_encoder(self) -> None:
        """Load the sentence encoder of a restored featurizer when new items need it."""
        if self.text_name_ == "minilm" and self._encoder is None:
            self._encoder = _text_encoder("minilm")[1]

    def rows_for(
        self, ids: np.ndarray, items: pd.DataFrame | None
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        """Content ``(n, F)`` and category targets ``(n, C)`` of the items ``ids`` from
        their catalogue rows in ``items`` (zero rows for ids without one)."""
        rows, found = catalogue_rows(items, ids)
        F_ = self.n_features
        content = np.zeros((len(ids), F_), dtype=np.float32)
        soft = sp.csr_matrix((len(ids), len(self.categories_)), dtype=np.float32)
        if found.any() and (F_ or self.categories_):
            self.ensure_encoder()
            c, s = self.transform(rows)
            content[found] = c
            idx = np.flatnonzero(found)
            place = sp.csr_matrix(
                (np.ones(len(idx), np.float32), (idx, np.arange(len(idx)))),
                shape=(len(ids), len(idx)),
            )
            soft = (place @ s).astype(np.float32).tocsr()
        return content, soft

    def prepare(self, items: pd.DataFrame) -> None:
        """Encode the items' text with the pretrained encoder into its cache, changing
        nothing else (see ``SequentialRecommender.prepare_items``)."""
        if self.text_name_ == "minilm" and len(items):
            self.ensure_encoder()
            if getattr(self._encoder, "use_cache", False):
                self._encoder.transform(items)


def _categories(value: Any) -> list[str]:
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        value = [value]
    out = []
    for c in value:
        if isinstance(c, str) and c.strip():
            out.append(c.strip())
    return out


def catalogue_rows(items: pd.DataFrame | None, ids: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The catalogue rows of ``ids`` (first occurrence) and which ids have one."""
    if items is None or len(items) == 0:
        return pd.DataFrame(columns=["item_id", "title", "categories", "attributes"]), np.zeros(
            len(ids), dtype=bool
        )
    cat = items.drop_duplicates("item_id", keep="first")
    index = pd.Index(cat["item_id"].astype(str).to_numpy(dtype=object))
    pos = index.get_indexer(pd.Index(np.asarray(ids, dtype=object)))
    found = pos >= 0
    rows = cat.iloc[pos[found]].reset_index(drop=True)
    return rows, found


def set_csr_rows(C: sp.csr_matrix, rows: np.ndarray, new: sp.csr_matrix | None) -> sp.csr_matrix:
    """``C`` with its ``rows`` replaced by the rows of ``new`` (``(len(rows), C.shape[1])``;
    ``None``: empty rows)."""
    coo = C.tocoo()
    keep = ~np.isin(coo.row, rows)
    r, c, d = [coo.row[keep]], [coo.col[keep]], [coo.data[keep]]
    if new is not None:
        n = new.tocoo()
        r.append(np.asarray(rows)[n.row])
        c.append(n.col)
        d.append(n.data.astype(C.dtype))
    return sp.csr_matrix(
        (np.concatenate(d), (np.concatenate(r), np.concatenate(c))), shape=C.shape, dtype=C.dtype
    )
