"""Metrics: Inception FID/KID/IS, paired image metrics, no-reference quality, classifier and retrieval scores,
timing, and the provenance records that every number carries. Submodules import heavy dependencies lazily."""
