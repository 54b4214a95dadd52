"""Content encoders: an items frame in, one vector per item out.

Every encoder follows the same small contract so models can swap them (a pretrained
sentence encoder will join TF-IDF later):

* ``__init__`` stores hyperparameters only;
* ``fit(items)`` learns from an items frame (:data:`~lifelongrec.data.ITEM_COLUMNS`);
* ``transform(items)`` encodes any items frame with what was learned, so an item added
  after ``fit`` gets a vector at once; ``fit_transform`` does both;
* ``get_state()`` / ``from_state(arrays, extra)`` hand the learned state over as numpy
  arrays plus JSON-able values (no pickle), in the ``(arrays, extra)`` shape that
  :meth:`lifelongrec.models.Recommender._state` uses.

Rows of the output are L2-normalised; an item with nothing to encode is a zero row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from lifelongrec._errors import DataError, NotFittedError
from lifelongrec._params import Integer, Number, Params, Satisfies, is_int, is_number

__all__ = ["ItemEncoder", "TfidfItemEncoder", "CATEGORY_PREFIX"]

#: Prefix that turns a category name into one whole token ("cat:sci-fi").
CATEGORY_PREFIX = "cat:"


class ItemEncoder(Params):
    """Base of content encoders: ``fit`` / ``transform`` on an items frame; settings,
    ``repr`` and their checks come from :class:`~lifelongrec._params.Params`."""

    #: Short name stored with the state.
    name: str = "base"

    def fit(self, items: pd.DataFrame) -> ItemEncoder:
        raise NotImplementedError

    def transform(self, items: pd.DataFrame) -> sp.csr_matrix | np.ndarray:
        raise NotImplementedError

    def fit_transform(self, items: pd.DataFrame) -> sp.csr_matrix | np.ndarray:
        """``fit(items)`` then ``transform(items)``."""
        return self.fit(items).transform(items)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> ItemEncoder:
        raise NotImplementedError


def _identity(tokens: list[str]) -> list[str]:
    """Analyzer for pre-tokenised documents (module level: no lambdas in estimators)."""
    return tokens


def _check_items(items: Any) -> pd.DataFrame:
    if not isinstance(items, pd.DataFrame):
        raise DataError(
            "cannot encode this object as an items frame",
            value=type(items).__name__,
            expected="a pandas DataFrame with columns item_id, title, categories, attributes",
        )
    missing = [c for c in ("title", "categories") if c not in items.columns]
    if missing:
        raise DataError(
            "items frame lacks columns the content encoder reads",
            value=missing,
            expected="columns 'title' (str or None) and 'categories' (list of str)",
        )
    return items


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def _category_tokens(value: Any) -> list[str]:
    """``["Sci-Fi", "Comedy"]`` -> ``["cat:sci-fi", "cat:comedy"]`` (each once, in order)."""
    if _is_missing(value):
        return []
    if isinstance(value, str):  # one category given as a bare string
        value = [value]
    seen: dict[str, None] = {}
    for cat in value:
        if _is_missing(cat):
            continue
        name = str(cat).strip().lower()
        if name:
            seen.setdefault(CATEGORY_PREFIX + name, None)
    return list(seen)


def _is_min_df(value: Any) -> bool:
    """An integer >= 1 (a count of items) or a float in (0, 1] (a share of them)."""
    if is_int(value):
        return value >= 1
    return is_number(value) and 0.0 < value <= 1.0


def _is_ngram_range(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(is_int(n) for n in value)
        and 1 <= value[0] <= value[1]
    )


class TfidfItemEncoder(ItemEncoder):
    """TF-IDF over item titles plus category names as whole tokens.

    The text of an item is its title, cut into lower-case word n-grams exactly as
    scikit-learn's ``TfidfVectorizer`` does (``token_pattern=r"(?u)\\b\\w\\w+\\b"``), plus
    one token ``"cat:<name>"`` per distinct category (lower-cased), so a category never
    mixes with title words ("Comedy" the genre is not "comedy" in a title). IDF is the
    smoothed one of scikit-learn (``ln((1 + n) / (1 + df)) + 1``) learned on the items
    given to :meth:`fit`; category columns are then multiplied by ``category_weight`` and
    every row is L2-normalised. With ``category_weight=1`` the output equals
    ``TfidfVectorizer`` on the same tokens.

    Parameters
    ----------
    max_features
        Keep only this many tokens (the most frequent over the fitted items); ``None``
        keeps all.
    min_df
        Ignore tokens in fewer items than this (int >= 1) or than this fraction of the
        items (float in (0, 1]).
    ngram_range
        ``(min_n, max_n)`` word n-grams of titles (categories are always single tokens).
    category_weight
        Multiplier of the category columns relative to title words (>= 0; 0 ignores
        categories).

    Attributes
    ----------
    vocabulary_ : dict[str, int]
        Token -> column.
    idf_ : ndarray of shape (d,), float64
        Inverse document frequency of each column.
    n_features_ : int
        ``d``, the width of the vectors.
    n_empty_ : int
        Items given to ``fit`` that had no title and no category (their rows are zero).

    Examples
    --------
    >>> from lifelongrec.data import make_items
    >>> items = make_items(["a", "b"], ["Blue Train", "Kind of Blue"], [["Jazz"], ["Jazz"]])
    >>> enc = TfidfItemEncoder().fit(items)
    >>> sorted(enc.vocabulary_)
    ['blue', 'cat:jazz', 'kind', 'of', 'train']
    >>> enc.transform(make_items(["c"], ["Blue Note"], [["Jazz"]])).shape
    (1, 5)
    """

    name = "tfidf"
    _constraints = {
        "max_features": Integer(1, none=True),
        "min_df": Satisfies(_is_min_df, "an integer >= 1 or a float in (0, 1]"),
        "ngram_range": Satisfies(
            _is_ngram_range, "a pair (min_n, max_n) of integers, 1 <= min_n <= max_n"
        ),
        "category_weight": Number(0),
    }

    def __init__(
        self,
        max_features: int | None = 20000,
        min_df: int | float = 1,
        ngram_range: tuple[int, int] = (1, 1),
        category_weight: float = 1.0,
    ) -> None:
        self.max_features = max_features
        self.min_df = min_df
        self.ngram_range = ngram_range
        self.category_weight = category_weight

    # ------------------------------------------------------------- tokenising
    def _title_analyzer(self) -> Any:
        return CountVectorizer(ngram_range=tuple(int(n) for n in self.ngram_range)).build_analyzer()

    def tokens(self, items: pd.DataFrame) -> list[list[str]]:
        """The tokens of each item: title n-grams, then ``"cat:<name>"`` tokens."""
        items = _check_items(items)
        title_tokens = self._title_analyzer()
        out = []
        for title, cats in zip(items["title"].tolist(), items["categories"].tolist(), strict=True):
            toks = [] if _is_missing(title) else list(title_tokens(str(title)))
            toks.extend(_category_tokens(cats))
            out.append(toks)
        return out

    # --------------------------------------------------------------- learning
    def fit(self, items: pd.DataFrame) -> TfidfItemEncoder:
        """Learn the vocabulary and IDF from ``items``. Returns ``self``.

        Raises :class:`DataError` when no item has a title word or a category.
        """
        self.check_params()
        docs = self.tokens(items)
        n_empty = sum(1 for d in docs if not d)
        if n_empty == len(docs):
            raise DataError(
                "no item has a title word or a category to encode",
                column="title/categories",
                value=f"{len(docs)} items, all empty",
                expected="at least one item with a title or categories",
            )
        vec = TfidfVectorizer(
            analyzer=_identity,
            lowercase=False,
            min_df=self.min_df,
            max_features=self.max_features,
            norm=None,
        )
        try:
            vec.fit(docs)
        except ValueError as exc:  # e.g. min_df leaves no token
            raise DataError(
                f"no token is left to encode ({exc})",
                column="title/categories",
                value={"min_df": self.min_df, "max_features": self.max_features},
                expected="hyperparameters that keep at least one token",
            ) from None
        vocab = {str(t): int(j) for t, j in vec.vocabulary_.items()}
        self._set_learned(vocab, np.asarray(vec.idf_, dtype=np.float64), n_empty)
        return self

    def _set_learned(self, vocab: dict[str, int], idf: np.ndarray, n_empty: int) -> None:
        self.vocabulary_ = vocab
        self.idf_ = idf
        self.n_features_ = len(idf)
        self.n_empty_ = int(n_empty)
        self._category_cols = np.fromiter(
            (j for t, j in vocab.items() if t.startswith(CATEGORY_PREFIX)), dtype=np.int64
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "vocabulary_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(items) first"
            )

    def transform(self, items: pd.DataFrame) -> sp.csr_matrix:
        """Encode ``items`` with the fitted vocabulary: ``csr_matrix (n, d)`` float32.

        Rows are L2-normalised; an item with no known token (no title, no category, or
        only words the vocabulary does not hold) is a zero row.
        """
        self._check_fitted()
        return self._encode(self.tokens(items))

    def _encode(self, docs: Iterable[list[str]]) -> sp.csr_matrix:
        vocab = self.vocabulary_
        indptr = [0]
        indices: list[int] = []
        for toks in docs:
            indices.extend(j for j in (vocab.get(t) for t in toks) if j is not None)
            indptr.append(len(indices))
        X = sp.csr_matrix(
            (np.ones(len(indices)), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
            shape=(len(indptr) - 1, self.n_features_),
        )
        X.sum_duplicates()
        scale = self.idf_.copy()
        if len(self._category_cols):
            scale[self._category_cols] *= float(self.category_weight)
        X = X @ sp.diags(scale)
        X = normalize(X, norm="l2", axis=1, copy=False).tocsr()
        X.eliminate_zeros()
        return X.astype(np.float32)

    # ------------------------------------------------------------------ state
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, extra)``: the tokens by column and the IDF; params and counts."""
        self._check_fitted()
        terms = [""] * self.n_features_
        for t, j in self.vocabulary_.items():
            terms[j] = t
        arrays = {"terms": np.asarray(terms, dtype=str), "idf": self.idf_}
        extra = {
            "encoder": self.name,
            "params": {**self.get_params(), "ngram_range": list(self.ngram_range)},
            "n_empty": self.n_empty_,
        }
        return arrays, extra

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> TfidfItemEncoder:
        """A fitted encoder from what :meth:`get_state` returned."""
        params = dict(extra["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        enc = cls(**params)
        terms = [str(t) for t in arrays["terms"]]
        enc._set_learned(
            {t: j for j, t in enumerate(terms)},
            np.asarray(arrays["idf"], dtype=np.float64),
            int(extra.get("n_empty", 0)),
        )
        return enc
