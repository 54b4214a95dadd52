"""lifelongrec.features (see ../shared/DESIGN.md)."""
