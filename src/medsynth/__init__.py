"""medsynth: vision-language conditioned medical image synthesis, reproduced as a Snakemake workflow."""

__version__ = "0.1.0"
