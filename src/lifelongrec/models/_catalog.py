"""The table of models by short name, :data:`lifelongrec.models.MODELS`.

It starts empty here and ``lifelongrec.models`` fills it with every model once they are
all imported; modules that look models up by name (the hybrid's components) import this
dict instead of the package that imports them (no import circle). Adding an entry
(``MODELS["mine"] = MyModel``) makes a model known everywhere, the hybrid included.
"""

from __future__ import annotations

from lifelongrec.models._base import Recommender

__all__ = ["MODELS"]

#: Every model by its short name, in the order tables list them.
MODELS: dict[str, type[Recommender]] = {}
