"""choksi2025 (text -> CXR latent diffusion from scratch): the poster's table cells and the classifier check
of text control.

Model assembly, training, DDIM sampling with classifier-free guidance and the pipeline folder are the engine's
(`training.stages`, `sampling`, `pipeline_io`), used through the generic train/sample rules; FID comes from the
generic `generative_metrics` rule, and the effusion text-control statistic is `papers.text_control`'s. What stays
here is specific to this paper: the quality row (paired SSIM/PSNR and no-reference statistics), the FID cell built
from the generic metric record, and the classifier AUC per prompted finding.

Fixes of the public code's defects (paper spec), now enforced by the engine: images really are in [-1, 1]; the
diffusion stage uses the trained VAE and ITS measured latent scale (never SD's 0.18215); the guided noise estimate
is the one the scheduler steps with.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import MedsynthError

PAPER = "choksi2025"
ROW = "medsynth (measured)"   # our row, appended under the paper's "Published model" row


# ------------------------------------------------------------------ quality row

def quality_values(generated: np.ndarray, real_pairs: np.ndarray) -> dict:
    """Per-image SSIM/PSNR against the real image of the same report, and no-reference statistics of the generated
    images; returns {metric: (mean, std, n)}."""
    from ..metrics.noref import contrast_ratio, entropy, sharpness
    from ..metrics.pairs import psnr, ssim

    if generated.shape != real_pairs.shape:
        raise MedsynthError(f"generated {generated.shape} and real {real_pairs.shape} images must pair up")
    vals = {"SSIM": [ssim(g, r) for g, r in zip(generated, real_pairs)],
            "PSNR (dB)": [psnr(g, r) for g, r in zip(generated, real_pairs)],
            "Contrast ratio": [contrast_ratio(g) for g in generated],
            "Sharpness": [sharpness(g) for g in generated],
            "Entropy": [entropy(g) for g in generated]}
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in vals.items()}


# ------------------------------------------------------------------ cells

QUALITY_COLUMNS = ["SSIM", "PSNR (dB)", "Contrast ratio", "Sharpness", "Entropy"]
QUALITY_METHODS = {
    "SSIM": "SSIM (Wang 2004, Gaussian 11x11) of each generated image vs the real image of the same report, mean",
    "PSNR (dB)": "PSNR (peak 255) of each generated image vs the real image of the same report, mean",
    "Contrast ratio": "(p99 - p1) / (p99 + p1) of 8-bit gray levels, mean over generated images",
    "Sharpness": "variance of the 4-neighbour Laplacian on 0-255, mean over generated images",
    "Entropy": "Shannon entropy (bits) of the 256-bin gray histogram, mean over generated images",
}


def quality_cells(values: dict, prov: dict) -> list[dict]:
    from ..report.cells import make_cell

    cells = []
    for col in QUALITY_COLUMNS:
        mean, std, n = values[col]
        cells.append(make_cell(PAPER, "quality", ROW, col, mean, std=std,
                               provenance={**prov, "n": n, "method": QUALITY_METHODS[col]}))
    return cells


def fid_cell(records: dict, prov: dict, source: str | None = None) -> dict:
    """The FID cell of the quality row from the generic `generative_metrics` rule's output ({metric: record}, see
    metrics.generative.evaluate_generated): value, N, backbone, weights hash, resize mode, seed and the cached
    reference set are the record's; `prov` adds this table's context (dataset, scale, split, model, sampler
    settings). A stand-in backbone is said in the method text, and make_cell marks the cell `stand_in`."""
    from ..metrics.stand_ins import is_stand_in
    from ..report.cells import cell_from_record

    rec = records.get("fid")
    if rec is None:
        raise MedsynthError(f"the generative-metrics record {source or ''} has no 'fid' entry "
                            f"(has: {', '.join(records) or 'nothing'})")
    extra, ref = rec.get("extra") or {}, (rec.get("extra") or {}).get("reference") or {}
    if ref.get("dataset") not in (None, prov["dataset"]):
        raise MedsynthError(f"FID reference statistics are of dataset {ref['dataset']!r}, the table's is "
                            f"{prov['dataset']!r}")
    label = " (STAND-IN backbone: not comparable to the published FID)" if is_stand_in(rec.get("backbone")) else ""
    method = (f"{rec.get('definition') or 'Frechet distance'}: generated images of the {extra.get('split', '?')} "
              f"reports vs the real {ref.get('split', '?')} images (cached reference statistics, "
              f"n={ref.get('n', '?')}){label}")
    context = {k: v for k, v in prov.items() if k not in ("dataset", "scale", "n", "method", "seed")}
    return cell_from_record(PAPER, "quality", ROW, "FID", rec, dataset=prov["dataset"], scale=prov["scale"],
                            **context, method=method, dims=extra.get("dims"), reference_split=ref.get("split"),
                            **({"source": str(source)} if source else {}))


# ------------------------------------------------------------------ text control: classifier scores

def classifier_auc(y_true: np.ndarray, prob: np.ndarray, labels: Sequence[str]) -> dict:
    """{label: {auc, positives, n}}: the project's per-label AUC (metrics.classification), None for one class."""
    from ..metrics.classification import binary_metrics

    out = {}
    for i, name in enumerate(labels):
        m = binary_metrics(y_true[:, i], prob[:, i])
        out[name] = {"auc": m["auc"], "positives": m["positives"], "n": m["n"]}
    return out
