"""Features: content encoders (TF-IDF over titles and categories; a pretrained sentence
encoder over title, categories and description)."""

from lifelongrec.features._content import CATEGORY_PREFIX, ItemEncoder, TfidfItemEncoder
from lifelongrec.features._text import SentenceItemEncoder, TextCacheWarning

__all__ = [
    "CATEGORY_PREFIX",
    "ItemEncoder",
    "SentenceItemEncoder",
    "TextCacheWarning",
    "TfidfItemEncoder",
]
