"""Hybrid recommender: a weighted blend of other recommenders' normalised scores.

Each component is a model from :data:`lifelongrec.models.MODELS`, fitted on the same
data. For every user row, each component's scores are normalised (so a cosine in [0, 1]
and an EASE score in the hundreds can be added), then blended with the weights::

    score(u, i) = sum_c w_c * norm(S_c[u])[i] / sum_c w_c
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import Constraint, OneOf, is_number
from lifelongrec.data._schema import Dataset
from lifelongrec.models._base import Recommender
from lifelongrec.models._capabilities import OnlineBuffering
from lifelongrec.models._catalog import MODELS
from lifelongrec.models._history import HistoryBatch

__all__ = ["Hybrid", "NORMALIZATIONS", "normalize_rows"]

#: Accepted values of ``Hybrid(normalize=...)``.
NORMALIZATIONS = ("minmax", "zscore", "rank", "none")
_NORMALIZE = OneOf(*NORMALIZATIONS)


def normalize_rows(
    S: np.ndarray, how: str = "minmax", ignore: np.ndarray | None = None
) -> np.ndarray:
    """Normalise each row of ``S`` (``(B, n)``) so rows of different models can be added.

    * ``"minmax"``: ``(s - min) / (max - min)``; a constant row becomes 0;
    * ``"zscore"``: ``(s - mean) / std``; a constant row becomes 0;
    * ``"rank"``: ``(rank - 1) / (n - 1)`` with average ranks for ties, in [0, 1];
    * ``"none"``: unchanged.

    Statistics (min, max, mean, std; the ranking for ``"rank"``) are taken over the finite
    entries not flagged in ``ignore`` (``(B, n)`` bool, e.g. items the user has seen),
    falling back to all finite entries of a row when that leaves none; ignored entries
    get the same affine map (``"rank"``: ranked among the others, as if inserted). A
    non-finite entry (e.g. an item a component does not know) gets the lowest value of
    its normalised row. Returns a new float64 array.
    """
    S = np.asarray(S, dtype=np.float64)
    finite = np.isfinite(S)
    ref = finite if ignore is None else finite & ~ignore
    empty = ~ref.any(axis=1)
    if empty.any():
        ref = ref.copy()
        ref[empty] = finite[empty]
    has = ref.any(axis=1)
    if how == "none":
        out = S.copy()
    elif how in ("minmax", "zscore"):
        R = np.where(ref, S, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows handled below
            if how == "minmax":
                lo = np.nanmin(R, axis=1)
                scale = np.nanmax(R, axis=1) - lo
            else:
                lo = np.nanmean(R, axis=1)
                scale = np.nanstd(R, axis=1)
        ok = has & (scale > 0)
        lo = np.where(ok, lo, 0.0)
        scale = np.where(ok, scale, 1.0)
        out = np.where(ok[:, None], (S - lo[:, None]) / scale[:, None], 0.0)
    elif how == "rank":
        out = np.zeros_like(S)
        for j in range(len(S)):
            r = ref[j]
            n = int(r.sum())
            if n < 2:
                continue
            ranks = rankdata(S[j, r], method="average")
            out[j, r] = (ranks - 1.0) / (n - 1.0)
            rest = finite[j] & ~r
            if rest.any():  # place ignored items among the reference ones
                base = np.sort(S[j, r])
                pos = np.searchsorted(base, S[j, rest], side="left")
                out[j, rest] = pos / (n - 1.0)
    else:
        raise ParameterError("normalize", how, _NORMALIZE.expected)
    bad = ~finite
    if bad.any():
        low = np.where(finite, out, np.inf).min(axis=1)
        low = np.where(np.isfinite(low), low, 0.0)
        out = np.where(bad, low[:, None], out)
    return out


class _ModelNames(Constraint):
    """A non-empty list or tuple of names from :data:`MODELS` other than ``"hybrid"``
    (read when checked: models registered later count)."""

    expected = "a non-empty list or tuple of model names"

    def check(self, name: str, value: Any) -> None:
        if (
            isinstance(value, (str, bytes))
            or not isinstance(value, (list, tuple))
            or len(value) == 0
            or not all(isinstance(c, str) for c in value)
        ):
            raise ParameterError(name, value, self.expected)
        for c in value:
            if c == Hybrid.name:
                raise ParameterError(
                    name, value, "model names other than 'hybrid' (no nested hybrids)"
                )
            if c not in MODELS:
                raise ParameterError(
                    name, value, f"names from {sorted(set(MODELS) - {Hybrid.name})}"
                )

    def accepts(self, value: Any) -> bool:
        try:
            self.check("components", value)
        except ParameterError:
            return False
        return True


class _Weights(Constraint):
    """A list or tuple of finite numbers >= 0 with a sum > 0 (one per component: a rule
    of :meth:`Hybrid._check_params`)."""

    expected = "a list or tuple of numbers, one per component"

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ParameterError(name, value, self.expected)
        if not all(is_number(x) and x >= 0 for x in value):
            raise ParameterError(name, value, "finite numbers >= 0")
        if not sum(value) > 0:
            raise ParameterError(name, value, "numbers >= 0 with a sum > 0")

    def accepts(self, value: Any) -> bool:
        try:
            self.check("weights", value)
        except ParameterError:
            return False
        return True


class Hybrid(Recommender):
    """Weighted blend of the per-user normalised scores of several recommenders.

    Parameters
    ----------
    components
        Short names from :data:`lifelongrec.models.MODELS` (a list or tuple; not
        ``"hybrid"``). The same name may appear twice (e.g. with other parameters).
    weights
        One non-negative weight per component, summing to more than 0. A component with
        weight 0 is fitted but not scored.
    normalize
        How each component's scores are made comparable before blending, per user row:
        ``"minmax"`` (default), ``"zscore"``, ``"rank"`` or ``"none"`` (see
        :func:`normalize_rows`). The statistics of a known user's row leave out the items
        that user has seen, so the scale is set by the items ``recommend`` can return.
    component_params
        Hyperparameters of the components: ``None``; a dict ``{name: {param: value}}``
        (applied to every component of that name); or a list/tuple of dicts (or
        ``None``), one per component.

    Attributes
    ----------
    components_ : list of Recommender
        The fitted components, in the order of ``components``.

    Notes
    -----
    Components fitted on the same data share the item order; if one does not (a future
    model with its own vocabulary), its columns are matched by item id and items it
    does not know get its lowest normalised score. ``similar_items`` blends the
    components' similarity scores in the same way (the item itself left out of the
    statistics). Unknown users get the blend of the components' cold-start scores.

    :meth:`observe` and :meth:`forget_users` pass the events (users) on to every
    component, which updates (erases) its own state as that model does; a component
    that keeps observed events as training material (``sequential``) drops it, since
    the hybrid observes for state only and learns through ``partial_fit``.
    """

    name = "hybrid"
    _constraints = {
        "components": _ModelNames(),
        "weights": _Weights(),
        "normalize": _NORMALIZE,
    }

    def __init__(
        self,
        components: Sequence[str] = ("ease", "content"),
        weights: Sequence[float] = (0.7, 0.3),
        normalize: str = "minmax",
        component_params: Mapping[str, Mapping[str, Any]] | Sequence[Any] | None = None,
    ) -> None:
        self.components = components
        self.weights = weights
        self.normalize = normalize
        self.component_params = component_params

    # ----------------------------------------------------------------- params
    def _check_params(self) -> None:
        """The rules that tie ``weights`` and ``component_params`` to ``components``
        (each setting on its own is declared in ``_constraints``)."""
        comps, w = self.components, self.weights
        if len(w) != len(comps):
            raise ParameterError(
                "weights", w, f"a list or tuple of {len(comps)} numbers, one per component"
            )
        params = self._params_per_component()
        for i, (c, p) in enumerate(zip(comps, params, strict=True)):
            cls = MODELS[c]
            known = cls.param_names()
            unknown = sorted(set(p) - set(known))
            if unknown:
                raise ParameterError(
                    f"component_params[{c!r}]",
                    dict(p),
                    f"hyperparameters of {cls.__name__} ({', '.join(known) or 'none'})",
                )
            try:
                cls(**p).check_params()
            except ParameterError as exc:
                raise ParameterError(
                    f"component_params[{c!r}][{exc.name!r}] (component {i})",
                    exc.value,
                    exc.expected,
                ) from exc

    def _params_per_component(self) -> list[dict[str, Any]]:
        comps = list(self.components)
        cp = self.component_params
        expected = (
            "None, a dict {component name: {hyperparameter: value}}, or a list of "
            f"{len(comps)} dicts (or None), one per component"
        )
        if cp is None:
            return [{} for _ in comps]
        if isinstance(cp, Mapping):
            extra = [k for k in cp if k not in comps]
            if extra or not all(v is None or isinstance(v, Mapping) for v in cp.values()):
                raise ParameterError("component_params", cp, expected)
            return [dict(cp.get(c) or {}) for c in comps]
        if isinstance(cp, (list, tuple)) and len(cp) == len(comps):
            if all(v is None or isinstance(v, Mapping) for v in cp):
                return [dict(v or {}) for v in cp]
        raise ParameterError("component_params", cp, expected)

    # --------------------------------------------------------------- learning
    def _component_error(self, i: int, exc: DataError, action: str) -> DataError:
        """``exc`` again, with the component named and the way out."""
        who = f"hybrid component {i} ({self.components[i]!r}) could not {action}"
        hint = (
            "or choose components that suit this data, e.g. components=('ease', 'itemknn') "
            "when items have no content"
        )
        return DataError(
            f"{who}: {exc.problem}",
            path=exc.path,
            line=exc.line,
            column=exc.column,
            value=exc.value,
            expected=f"{exc.expected}; {hint}" if exc.expected else hint,
        )

    def _note(self, i: int, exc: Exception, action: str) -> None:
        exc.add_note(f"raised by hybrid component {i} ({self.components[i]!r}) during {action}")

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        fitted = []
        for i, (c, p) in enumerate(zip(self.components, self._params_per_component(), strict=True)):
            model = MODELS[c](**p)
            try:
                model.fit(data)
            except DataError as exc:
                raise self._component_error(i, exc, "fit") from exc
            except Exception as exc:
                self._note(i, exc, "fit")
                raise
            fitted.append(model)
        self.components_ = fitted
        self._sync_columns()

    def prepare_items(self, items: pd.DataFrame | Dataset) -> None:
        """Each component's :meth:`~Recommender.prepare_items`."""
        super().prepare_items(items)
        for model in self.components_:
            model.prepare_items(items)

    def _add_items(self, data: Dataset, n_items_before: int, refreshed: np.ndarray) -> None:
        for i, model in enumerate(self.components_):
            try:
                model.add_items(data.items)
            except DataError as exc:
                raise self._component_error(i, exc, "add the catalogue items") from exc
        self._sync_columns()

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        for i, model in enumerate(self.components_):
            try:
                model.partial_fit(data)
            except DataError as exc:
                raise self._component_error(i, exc, "learn the new events") from exc
            except Exception as exc:
                self._note(i, exc, "partial_fit")
                raise
        self._sync_columns()

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: Any,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        for i, model in enumerate(self.components_):
            try:
                model.observe(events, items)
            except DataError as exc:
                raise self._component_error(i, exc, "observe the new events") from exc
            if isinstance(model, OnlineBuffering) and model.n_online_pending:
                model.online_step(0)  # state only: no training material
        if len(self.item_ids_) > n_items_before:
            self._sync_columns()

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        for model in self.components_:
            model.forget_users(ids)

    def _sync_columns(self) -> None:
        """For each component: ``None`` if it shares our item order, else our item -> its column."""
        cols: list[np.ndarray | None] = []
        for model in self.components_:
            if len(model.item_ids_) == len(self.item_ids_) and np.array_equal(
                model.item_ids_, self.item_ids_
            ):
                cols.append(None)
            else:
                index = model._item_index
                cols.append(
                    np.fromiter(
                        (index.get(t, -1) for t in self.item_ids_), np.int64, len(self.item_ids_)
                    )
                )
        self._columns = cols

    # ---------------------------------------------------------------- scoring
    def _aligned(self, c: int, S: np.ndarray) -> np.ndarray:
        """Component ``c``'s columns in our item order (``-inf`` where it has none)."""
        cols = self._columns[c]
        if cols is None:
            return S
        out = np.full((S.shape[0], len(cols)), -np.inf, dtype=np.float32)
        ok = cols >= 0
        out[:, ok] = S[:, cols[ok]]
        return out

    def _blend(
        self, parts: list[tuple[float, np.ndarray]], ignore: np.ndarray | None
    ) -> np.ndarray:
        total = float(sum(w for w, _ in parts))
        out = None
        for w, S in parts:
            N = normalize_rows(S, self.normalize, ignore) * (w / total)
            out = N if out is None else out + N
        return out.astype(np.float32)

    def _active(self) -> list[int]:
        return [i for i, w in enumerate(self.weights) if w > 0]

    def _blend_components(self, score: Any, seen: np.ndarray) -> np.ndarray:
        """Blend of ``score(component)`` over the weighted components."""
        parts = [
            (float(self.weights[c]), self._aligned(c, score(self.components_[c])))
            for c in self._active()
        ]
        return self._blend(parts, seen)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        users = list(self.user_ids_[rows])
        seen = self.user_items_[rows].toarray() > 0
        return self._blend_components(lambda m: m.score_items(users), seen)

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # Each component scores the same queries from the same events.
        users = list(hist.users)
        return self._blend_components(
            lambda m: m.score_histories(users, hist.history, hist.before),
            hist.matrix().toarray() > 0,
        )

    def _cold_scores(self) -> np.ndarray:
        parts = [
            (float(self.weights[c]), self._aligned(c, self.components_[c]._cold_scores()[None, :]))
            for c in self._active()
        ]
        return self._blend(parts, None)[0]

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        self_mask = np.zeros((len(rows), len(self.item_ids_)), dtype=bool)
        self_mask[np.arange(len(rows)), rows] = True
        parts = []
        ids = self.item_ids_[rows]
        for c in self._active():
            model = self.components_[c]
            crow = np.fromiter((model._item_index.get(t, -1) for t in ids), np.int64, len(ids))
            S = np.full((len(rows), len(model.item_ids_)), -np.inf, dtype=np.float32)
            ok = crow >= 0
            if ok.any():
                S[ok] = model._similar_scores(crow[ok])
            parts.append((float(self.weights[c]), self._aligned(c, S)))
        return self._blend(parts, self_mask)

    # -------------------------------------------------------------- save/load
    def _child_dir(self, path: Path, i: int) -> Path:
        return Path(path) / f"component-{i}-{self.components[i]}"

    def _save_children(self, path: Path) -> None:
        for i, model in enumerate(self.components_):
            model.save(self._child_dir(path, i))

    def _load_children(self, path: Path) -> None:
        self.components_ = [
            Recommender.load(self._child_dir(path, i)) for i in range(len(self.components))
        ]

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self._sync_columns()
