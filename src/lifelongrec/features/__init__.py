"""Features: the dynamic id vocabulary (admission, expiry, row reuse); content encoders
(TF-IDF over titles and categories; a pretrained sentence encoder over title, categories
and description)."""

from lifelongrec.features._content import CATEGORY_PREFIX, ItemEncoder, TfidfItemEncoder
from lifelongrec.features._text import SentenceItemEncoder, TextCacheWarning
from lifelongrec.features._vocab import Expired, IdVocabulary, VocabularyUpdate

__all__ = [
    "CATEGORY_PREFIX",
    "Expired",
    "IdVocabulary",
    "ItemEncoder",
    "SentenceItemEncoder",
    "TextCacheWarning",
    "TfidfItemEncoder",
    "VocabularyUpdate",
]
