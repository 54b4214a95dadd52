"""Events as the model reads them: per-event arrays on the model's rows.

Item rows inside event sequences are shifted by one (``0`` is padding, ``r + 1`` is item
row ``r``); :data:`OOV_ROW` stands for an event whose item has no row of its own.
Event-type inputs are ``0`` padding, ``1`` an unknown type, ``c + 2`` class ``c``.
"""

from __future__ import annotations

__all__ = ["OOV_ROW", "TYPE_PAD", "TYPE_UNKNOWN"]

#: Table row, inside event sequences, of an event whose item has no row of its own (not
#: admitted yet, or expired since): it reads the item tower's learned ``oov`` vector.
OOV_ROW = -1
#: Event-type input ids: 0 padding, 1 an unknown type; class ``c`` is ``c + 2``.
TYPE_PAD, TYPE_UNKNOWN = 0, 1
