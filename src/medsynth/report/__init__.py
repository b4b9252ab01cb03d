"""Reports: each paper's tables in the paper's layout, measured beside published, with provenance per cell."""
