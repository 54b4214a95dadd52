"""Content-based recommender: items are TF-IDF vectors of their title and categories.

A user's profile is the (optionally recency-weighted) mean of the vectors of the items
they interacted with; an item's score is the cosine between profile and item vector.
Because items are described by content, an item gets its vector the moment it is known,
before anyone has interacted with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from lifelongrec._errors import DataError
from lifelongrec._params import Number
from lifelongrec.data._schema import Dataset
from lifelongrec.features._content import TfidfItemEncoder
from lifelongrec.models._base import Recommender, clear_rows, grow_csr, insert_cells
from lifelongrec.models._history import HistoryBatch

__all__ = ["ContentRecommender"]

_NO_CONTENT_HINT = (
    "items with a title or categories (the content model needs them); otherwise choose "
    "a model that learns from interactions only (e.g. 'ease', 'itemknn', 'als')"
)


class ContentRecommender(Recommender):
    """Cosine between a user's content profile and each item's TF-IDF vector.

    Item vectors come from :class:`~lifelongrec.features.TfidfItemEncoder` fitted on the
    whole catalogue ``data.items`` (title words plus ``"cat:<name>"`` category tokens).
    The profile of a user is the mean of the vectors of the items in their history
    (``user_items_``), each weighted by ``0.5 ** (age / half_life)`` when ``half_life``
    is set (``age``: the user's latest timestamp minus the item's latest timestamp for
    that user). Users whose items have no content, and users never seen, get the
    popularity fallback.

    Only items that appear in the events are recommended (the vocabulary of the base
    contract), but the vectors of *every* catalogue item are kept, so an item that first
    appears in events passed to :meth:`partial_fit` is scored by content at once; so is a
    new item described in the ``items`` of the data given to ``partial_fit``. The first
    description of an item id wins; refit to change an item's content.

    A profile is computed at scoring time from the user's current history, so an event
    given to :meth:`observe` changes the user's next recommendation at once (a new item
    takes its vector from the ``items`` given with it, or from a catalogue seen before).
    :meth:`forget_users` empties the users' histories and recency times: nothing else is
    per user.

    Parameters
    ----------
    max_features, min_df, ngram_range, category_weight
        Passed to :class:`~lifelongrec.features.TfidfItemEncoder`.
    half_life
        ``None`` for a plain mean; otherwise a positive number in timestamp units
        (seconds for epoch data) after which an interaction counts half.

    Attributes
    ----------
    encoder_ : TfidfItemEncoder
        The fitted encoder.
    item_vectors_ : csr_matrix of shape (n_items, d), float32
        L2-normalised content vectors in the order of ``item_ids_`` (zero rows for items
        without content).
    n_items_without_content_ : int
        Items in the events that have no catalogue entry or nothing to encode.
    n_catalogue_items_ : int
        Distinct items described by the catalogue(s), with or without events.
    n_duplicate_catalogue_rows_ : int
        Catalogue rows ignored because their item id was described before.

    Raises
    ------
    DataError
        From ``fit``, when the dataset has no catalogue, no catalogue item has a title or
        a category, or no item of the events is described by the catalogue.
    """

    name = "content"
    # The encoder's settings as the encoder declares them, then the profile's.
    _constraints = {
        **TfidfItemEncoder.constraints(),
        "half_life": Number(0, low_open=True, none=True),
    }

    def __init__(
        self,
        max_features: int | None = 20000,
        min_df: int | float = 1,
        ngram_range: tuple[int, int] = (1, 1),
        category_weight: float = 1.0,
        half_life: float | None = None,
    ) -> None:
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_range = ngram_range
        self.category_weight = category_weight
        self.half_life = half_life

    def _make_encoder(self) -> TfidfItemEncoder:
        nr = self.ngram_range
        return TfidfItemEncoder(
            max_features=self.max_features,
            min_df=self.min_df,
            ngram_range=tuple(nr) if isinstance(nr, list) else nr,
            category_weight=self.category_weight,
        )

    def _check_params(self) -> None:
        self._make_encoder()._check_params()  # the encoder's own cross-setting rules

    # --------------------------------------------------------------- catalogue
    @staticmethod
    def _unique_catalogue(items: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        ids = items["item_id"].astype(str)
        keep = ~ids.duplicated(keep="first").to_numpy()
        return items.loc[keep], int((~keep).sum())

    def _add_catalogue(self, items: pd.DataFrame | None) -> None:
        """Encode catalogue items not known yet and append them to ``catalog_vectors_``."""
        if items is None or len(items) == 0:
            return
        items, n_dup = self._unique_catalogue(items)
        ids = items["item_id"].astype(str).to_numpy(dtype=object)
        new = np.fromiter((i not in self._catalog_index for i in ids), bool, len(ids))
        self.n_duplicate_catalogue_rows_ += n_dup
        if not new.any():
            return
        V = self.encoder_.transform(items.loc[new])
        start = len(self.catalog_ids_)
        self.catalog_ids_ = np.concatenate([self.catalog_ids_, ids[new]])
        self.catalog_vectors_ = sp.vstack([self.catalog_vectors_, V], format="csr")
        for j, i in enumerate(ids[new]):
            self._catalog_index[i] = start + j

    def _sync_item_vectors(self) -> None:
        """``item_vectors_`` in the order of ``item_ids_`` from the catalogue vectors."""
        n_cat = len(self.catalog_ids_)
        rows = np.fromiter(
            (self._catalog_index.get(i, n_cat) for i in self.item_ids_),
            np.int64,
            len(self.item_ids_),
        )
        zero = sp.csr_matrix((1, self.catalog_vectors_.shape[1]), dtype=np.float32)
        V = sp.vstack([self.catalog_vectors_, zero], format="csr")[rows]
        self.item_vectors_ = V.tocsr().astype(np.float32)
        self.n_items_without_content_ = int((self.item_vectors_.getnnz(axis=1) == 0).sum())

    # ---------------------------------------------------------------- recency
    def _last_seen(self, events: pd.DataFrame) -> sp.csr_matrix:
        """Latest ``timestamp - origin + 1`` (always >= 1) of each user/item pair."""
        df = pd.DataFrame(
            {
                "r": events["user_id"].astype(str).map(self._user_index).to_numpy(np.int64),
                "c": events["item_id"].astype(str).map(self._item_index).to_numpy(np.int64),
                "t": events["timestamp"].to_numpy(np.int64),
            }
        )
        g = df.groupby(["r", "c"], sort=False)["t"].max()
        t = g.to_numpy(np.float64) - self.time_origin_ + 1.0
        return sp.csr_matrix(
            (t, (g.index.get_level_values(0), g.index.get_level_values(1))),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )

    # ---------------------------------------------------------------- learning
    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        where = data.name or None
        if data.items is None:
            raise DataError(
                "the dataset has no item catalogue, and the content model needs item "
                "titles or categories",
                path=where,
                expected=_NO_CONTENT_HINT,
            )
        items, n_dup = self._unique_catalogue(data.items)
        self.encoder_ = self._make_encoder()
        try:
            catalog = self.encoder_.fit_transform(items)
        except DataError as exc:
            raise DataError(
                f"the item catalogue has no content to learn from ({exc.problem})",
                path=where,
                column="title/categories",
                value=exc.value,
                expected=_NO_CONTENT_HINT,
            ) from exc
        self.catalog_ids_ = items["item_id"].astype(str).to_numpy(dtype=object)
        self.catalog_vectors_ = catalog
        self._catalog_index = {i: j for j, i in enumerate(self.catalog_ids_)}
        self.n_duplicate_catalogue_rows_ = n_dup
        self._sync_item_vectors()
        if self.n_items_without_content_ == len(self.item_ids_):
            raise DataError(
                "no item in the events has a title or categories in the catalogue "
                "(do the item ids of events and catalogue match?)",
                path=where,
                column="item_id",
                value=f"{len(self.item_ids_)} event items, {len(self.catalog_ids_)} catalogue items",
                expected=_NO_CONTENT_HINT,
            )
        if self.half_life is not None:
            self.time_origin_ = float(data.events["timestamp"].min()) if len(data.events) else 0.0
            self.last_seen_ = self._last_seen(data.events)

    def _add_items(self, data: Dataset, n_items_before: int, refreshed: np.ndarray) -> None:
        items = data.items
        ids = items["item_id"].astype(str).to_numpy(dtype=object)
        old = np.fromiter((i in self._catalog_index for i in ids), bool, len(ids))
        if old.any():  # catalogue items (with or without events) whose content changed
            rows = np.fromiter((self._catalog_index[i] for i in ids[old]), np.int64, int(old.sum()))
            C = self.catalog_vectors_.tolil()
            C[rows] = sp.csr_matrix(self.encoder_.transform(items.loc[old]), dtype=np.float32)
            self.catalog_vectors_ = C.tocsr()
        super()._add_items(data, n_items_before, refreshed)

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        self._add_catalogue(data.items)
        self._sync_item_vectors()
        if self.half_life is not None and len(data.events):
            t_min = float(data.events["timestamp"].min())
            T = self.last_seen_.tocsr(copy=True)
            T.resize((len(self.user_ids_), len(self.item_ids_)))
            if t_min < self.time_origin_:  # keep every stored value >= 1
                T.data += self.time_origin_ - t_min
                self.time_origin_ = t_min
            self.last_seen_ = T.maximum(self._last_seen(data.events)).tocsr()

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: pd.DataFrame | None,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        n_cat = len(self.catalog_ids_)
        self._add_catalogue(items)
        n_users, n_items = len(self.user_ids_), len(self.item_ids_)
        described = self.catalog_ids_[n_cat:]  # ids first described just now
        old = np.fromiter(
            (self._item_index.get(i, n_items) < n_items_before for i in described),
            bool,
            len(described),
        )
        if old.any():  # an item known without content got it: as partial_fit, rebuild
            self._sync_item_vectors()
        elif n_items > n_items_before:  # new items: their rows, from the catalogue
            pos = np.fromiter(
                (self._catalog_index.get(i, -1) for i in self.item_ids_[n_items_before:]),
                np.int64,
                n_items - n_items_before,
            )
            has = (pos >= 0).astype(np.float32)  # no catalogue entry: a zero row
            V = sp.diags(has) @ self.catalog_vectors_[np.maximum(pos, 0)]
            V = sp.csr_matrix(V, dtype=np.float32)
            V.eliminate_zeros()
            self.item_vectors_ = sp.vstack([self.item_vectors_, V], format="csr")
            self.n_items_without_content_ += int((V.getnnz(axis=1) == 0).sum())
        if self.half_life is not None:
            ts = events["timestamp"].astype(np.float64)
            T = grow_csr(self.last_seen_.tocsr(), (n_users, n_items))
            t_min = float(ts.min())
            if t_min < self.time_origin_:  # keep every stored value >= 1
                T = T.copy()
                T.data += self.time_origin_ - t_min
                self.time_origin_ = t_min
            self.last_seen_ = insert_cells(T, rows, columns, ts - self.time_origin_ + 1.0)

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        if self.half_life is not None:
            self.last_seen_ = clear_rows(self.last_seen_.tocsr(), rows)

    @property
    def n_catalogue_items_(self) -> int:
        return len(self.catalog_ids_)

    # ----------------------------------------------------------------- scoring
    def _weights(self, rows: np.ndarray) -> sp.csr_matrix:
        """Row-per-user weights over items: the history, recency-weighted if asked."""
        if self.half_life is None:
            return self.user_items_[rows]
        return self._recency(self.last_seen_[rows])

    def _recency(self, T: sp.csr_matrix) -> sp.csr_matrix:
        """``0.5 ** ((t_max - t) / half_life)`` for the latest times ``T`` of a user's
        items (a row per user; ``t_max``: the row's latest)."""
        T = T.tocsr()
        W = T.copy()
        counts = np.diff(T.indptr)
        has = counts > 0
        if has.any():
            latest = np.zeros(T.shape[0])
            latest[has] = np.maximum.reduceat(T.data, T.indptr[:-1][has])
            row = np.repeat(np.arange(T.shape[0]), counts)
            W.data = np.exp2(-(latest[row] - T.data) / float(self.half_life))
        return W

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self._profile_scores(self._weights(rows))

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # The profile of the given history (recency from its own timestamps).
        if self.half_life is None:
            return self._profile_scores(hist.matrix())
        return self._profile_scores(self._recency(hist.last_seen()))

    def _profile_scores(self, weights: sp.csr_matrix) -> np.ndarray:
        """Cosine of each row's content profile (``weights @ item_vectors_``) with every item."""
        V = self.item_vectors_
        P = normalize(weights @ V, norm="l2", axis=1)
        S = np.asarray((P @ V.T).todense(), dtype=np.float32)
        no_profile = P.getnnz(axis=1) == 0
        if no_profile.any():
            S[no_profile] = self._cold_scores()
        return S

    def _item_vectors(self) -> sp.csr_matrix:
        return self.item_vectors_

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        V = self.item_vectors_  # rows are unit or zero: the product is the cosine
        return np.asarray((V[rows] @ V.T).todense(), dtype=np.float32)

    # -------------------------------------------------------------- save/load
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        enc_arrays, enc_extra = self.encoder_.get_state()
        arrays: dict[str, Any] = {f"encoder.{k}": v for k, v in enc_arrays.items()}
        arrays["catalog_ids"] = np.asarray(self.catalog_ids_, dtype=str)
        arrays["catalog_vectors"] = self.catalog_vectors_
        extra: dict[str, Any] = {
            "encoder": enc_extra,
            "n_duplicate_catalogue_rows": self.n_duplicate_catalogue_rows_,
        }
        if self.half_life is not None:
            arrays["last_seen"] = self.last_seen_
            extra["time_origin"] = self.time_origin_
        return arrays, extra

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        enc_arrays = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("encoder.")}
        self.encoder_ = TfidfItemEncoder.from_state(enc_arrays, extra["encoder"])
        self.catalog_ids_ = np.asarray(arrays["catalog_ids"]).astype(str).astype(object)
        self.catalog_vectors_ = arrays["catalog_vectors"].astype(np.float32)
        self._catalog_index = {i: j for j, i in enumerate(self.catalog_ids_)}
        self.n_duplicate_catalogue_rows_ = int(extra["n_duplicate_catalogue_rows"])
        self._sync_item_vectors()
        if self.half_life is not None:
            self.last_seen_ = arrays["last_seen"]
            self.time_origin_ = float(extra["time_origin"])
