"""lifelongrec.registry (see ../shared/DESIGN.md)."""
