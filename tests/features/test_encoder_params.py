"""The encoders' and the id vocabulary's settings through lifelongrec._params."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelongrec import ParameterError
from lifelongrec.features import IdVocabulary, SentenceItemEncoder, TfidfItemEncoder


@pytest.mark.parametrize("cls", [TfidfItemEncoder, SentenceItemEncoder])
def test_encoders_declare_every_setting_and_round_trip(cls):
    assert set(cls.constraints()) == set(cls.param_names())
    enc = cls()
    enc.check_params()
    again = eval(repr(enc), {cls.__name__: cls})  # our own repr
    assert again.get_params() == enc.get_params()
    c = enc.clone()
    assert type(c) is cls and c is not enc and c.get_params() == enc.get_params()


@pytest.mark.parametrize("cls", [TfidfItemEncoder, SentenceItemEncoder])
def test_encoders_refuse_bools_and_non_finite_numbers(cls):
    for name, constraint in cls.constraints().items():
        bad = [object(), math.nan, math.inf]
        if constraint.expected != "True or False":
            bad.append(True)
        for value in bad:
            with pytest.raises(ParameterError) as err:
                cls(**{name: value}).check_params()
            assert err.value.name == name


@pytest.mark.parametrize(
    ("params", "name", "ok"),
    [
        ({"min_df": 1}, "min_df", True),
        ({"min_df": np.int64(3)}, "min_df", True),
        ({"min_df": 1.0}, "min_df", True),  # a share: every item
        ({"min_df": 0.5}, "min_df", True),
        ({"min_df": np.bool_(True)}, "min_df", False),
        ({"min_df": 0.0}, "min_df", False),
        ({"ngram_range": [1, 2]}, "ngram_range", True),
        ({"ngram_range": (1, True)}, "ngram_range", False),
        ({"max_features": None}, "max_features", True),
        ({"category_weight": 0}, "category_weight", True),
    ],
)
def test_tfidf_edges_are_as_before(params, name, ok):
    enc = TfidfItemEncoder(**params)
    if ok:
        enc.check_params()
    else:
        with pytest.raises(ParameterError) as err:
            enc.check_params()
        assert err.value.name == name


def test_sentence_encoder_accepts_numpy_bools_and_paths(tmp_path):
    SentenceItemEncoder(use_cache=np.bool_(False), cache_dir=tmp_path).check_params()


def test_id_vocabulary_settings_repr_and_clone():
    v = IdVocabulary(min_count=np.int64(2))
    assert v.get_params() == {"min_count": 2} and type(v.min_count) is int
    v.observe(["a", "a", "b"], [1, 2, 3])
    assert repr(v) == "IdVocabulary(min_count=2; rows=1, active=1, free=0, pending=1)"
    c = v.clone()
    assert c.get_params() == v.get_params() and c.n_rows == 0  # settings, not state
    for bad in (0, True, 1.0, None):
        with pytest.raises(ParameterError, match="'min_count' must be an integer >= 1"):
            IdVocabulary(bad)
