"""Features: content encoders (TF-IDF over titles and categories; more to come)."""

from lifelongrec.features._content import CATEGORY_PREFIX, ItemEncoder, TfidfItemEncoder

__all__ = ["CATEGORY_PREFIX", "ItemEncoder", "TfidfItemEncoder"]
