"""lifelongrec.serving (see ../shared/DESIGN.md)."""
