"""The item tables: everything the model keeps per item row besides the interactions.

An item row has a content vector (the item tower's fixed ``content`` buffer), category
targets (a row of :attr:`ItemTables.categories`, for the category head's loss), an id
embedding, and that embedding's optimiser and EWC rows (the trainer's). When the
lifecycle admits, reuses or frees item rows, or the catalogue changes an item,
:class:`ItemTables` updates all of them together, with content from the
:class:`~lifelongrec.models.sequential._content.ContentFeaturizer`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from lifelongrec.models.sequential._ages import release_seconds
from lifelongrec.models.sequential._content import ContentFeaturizer, set_csr_rows
from lifelongrec.models.sequential._trainer import Trainer

__all__ = ["ItemTables"]


class ItemTables:
    """Content, category targets and id rows of the items (see the module docstring).

    Parameters
    ----------
    featurizer
        Fitted: gives the content and category targets of catalogue rows.
    categories
        ``(N, C)`` CSR category targets of the item rows (rows sum to 1 or are empty).
    trainer
        Holds the item tower (through its module) and its optimiser and EWC rows.
    release
        The catalogue attribute with each item's release (``release_attribute``), or
        ``None``: release times are then not kept.
    """

    def __init__(
        self,
        featurizer: ContentFeaturizer,
        categories: sp.csr_matrix,
        trainer: Trainer,
        release: str | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.categories = categories
        self.trainer = trainer
        self.release = release

    def set_releases(self, rows: np.ndarray, ids: np.ndarray, items: pd.DataFrame | None) -> None:
        """The release times of the items ``ids`` at ``rows`` from their catalogue rows
        (unknown without one); a no-op without ``release``. The estimator has checked
        the catalogue before changing anything (``check_releases``)."""
        if self.release is None or len(rows) == 0:
            return
        seconds = torch.as_tensor(release_seconds(items, ids, self.release))
        self.trainer.module.item_tower.set_release(
            torch.as_tensor(np.asarray(rows, np.int64) + 1), seconds
        )

    def targets(self) -> sp.csr_matrix | None:
        """The category targets of the loss (``None`` with fewer than two categories)."""
        return self.categories if len(self.featurizer.categories_) > 1 else None

    def grow(self, ids: np.ndarray, items: pd.DataFrame | None) -> None:
        """New rows at the end of every table for the items ``ids`` (content from their
        catalogue rows in ``items``; zero id rows and optimiser state)."""
        content, soft = self.featurizer.rows_for(ids, items)
        device = self.trainer.device
        c = torch.as_tensor(content, device=device) if content.shape[1] else None
        n_before = self.trainer.module.item_tower.n_items
        self.trainer.grow_items(c, len(ids))
        self.categories = sp.vstack([self.categories, soft]).tocsr()
        self.set_releases(np.arange(n_before, n_before + len(ids)), ids, items)

    def reuse(self, rows: np.ndarray, ids: np.ndarray, items: pd.DataFrame | None) -> None:
        """Start the freed ``rows`` over for the new items ``ids``: as a grown row."""
        content, soft = self.featurizer.rows_for(ids, items)
        self.trainer.reset_items(rows, content)
        self.categories = set_csr_rows(self.categories, rows, soft)
        self.set_releases(rows, ids, items)

    def reset(self, rows: np.ndarray) -> None:
        """Zero the id rows (embedding, optimiser, EWC anchor) and content of ``rows``."""
        self.trainer.reset_items(rows)

    def free(self, rows: np.ndarray) -> None:
        """Reset ``rows`` and drop their category targets (expired items)."""
        self.categories = set_csr_rows(self.categories, rows, None)
        self.trainer.reset_items(rows)

    def refresh(self, rows: np.ndarray, ids: np.ndarray, items: pd.DataFrame) -> None:
        """New content and category targets of known items (their catalogue changed)."""
        content, soft = self.featurizer.rows_for(ids, items)
        self.set_releases(rows, ids, items)
        tower = self.trainer.module.item_tower
        if tower.content is not None:
            with torch.no_grad():
                at = torch.as_tensor(rows + 1, device=tower.content.device)
                tower.content[at] = torch.as_tensor(content, device=tower.content.device)
        C = self.categories.tolil()
        C[rows] = soft
        self.categories = C.tocsr()
