"""Per-paper assembly of measured table cells and figures."""
