"""lifelongrec.training (see ../shared/DESIGN.md)."""
