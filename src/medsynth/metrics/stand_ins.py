"""The labelled stand-in backbones (names and what they are), without torch: the report and its cells mark every
number computed with one, and rendering a page should not pay for importing torch."""
from __future__ import annotations

STAND_INS = {
    "inception-random": "pytorch-fid's InceptionV3 architecture with seeded random weights (the FID weights are "
                        "absent): checks that the pipeline runs; NOT comparable with a published FID/KID/IS",
    "classifier": "the project's own classifier, the judge (on phantom data trained on its own balanced cohort, on "
                  "real data on the run's training split; torchxrayvision weights absent): NOT comparable with a "
                  "published torchxrayvision number",
}


def is_stand_in(backbone: str | None) -> bool:
    """True for a labelled stand-in ("inception-random", "classifier" or "classifier:<arch>", any "*-random")."""
    name = (backbone or "").split(":")[0]
    return name in STAND_INS or name.endswith("-random")
