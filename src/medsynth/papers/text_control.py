"""Text control of a finding: does prompting a finding change the image where that finding lives?

Design (what the choksi2025 effusion figure measures):
- Prompts come in three arms of K reports each, written in the cohort's own report language by the phantom's
  report writer (`finding_prompt_arms`): K normal reports, the same K reports with the finding written in and
  nothing else changed (`add_effusion`), and the same K reports reworded at the same places without a finding
  (`reword_normal`, the null arm). Every prompt is sampled with the same seeds.
- One prompt pair is not a measurement: on a small cohort each report acts as a key to a remembered patient, so
  changing only the *wording* of a normal report already changes the whole image. Averaging over K wordings and
  S seeds, and comparing with the null arm (normal vs the same report reworded), separates the finding from that.
- Where the finding lives: the cohort's own lesion masks, the finding's bit only (the phantom's lesion PNG is a
  bitfield of all findings), on patients with the finding on the prompted side. Radiological convention: the
  patient's right is on the image's left. The control region is its mirror image (same anatomy level, other side).
- Statistic: per sample (prompt pair k, seed s) the signed difference finding - normal, mean over the region minus
  mean over the control region (8-bit levels); averaged over seeds per prompt, then mean and standard error over
  the K prompts (the prompt, not the sample, is the unit: seeds of one wording are not independent). The cohort
  reference is the same contrast between the real mean images of patients with and without the finding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import MedsynthError

MASK_COLUMN = "mask"


# ------------------------------------------------------------------ prompts

def add_effusion(report: str, severity: str = "large", side: str = "right", wording_seed: int = 0) -> str:
    """A normal phantom report ("FINDINGS: ... IMPRESSION: ...") with an effusion written in, as the phantom's report
    writer would: its sentence first, the effusion negation narrowed to pneumothorax, 'The lungs are clear' (no
    longer true) narrowed to 'No focal consolidation.', and the impression replaced. Everything else is kept word
    for word, so the pair differs only by the finding."""
    from ..phantom.findings import Finding
    from ..phantom.reporting import _NEGATIVES, _describe

    if " IMPRESSION: " not in report or not report.startswith("FINDINGS: "):
        raise MedsynthError("add_effusion needs a 'FINDINGS: ... IMPRESSION: ...' report")
    text = report[len("FINDINGS: "):report.index(" IMPRESSION: ")]
    negation = [n for n in _NEGATIVES["effusion+pneumothorax"] if n in text]
    if len(negation) != 1:
        raise MedsynthError("add_effusion needs a normal report with its effusion/pneumothorax negation")
    text = text.replace(negation[0], "There is no pneumothorax." if negation[0].startswith("There is")
                        else "No pneumothorax.")
    text = text.replace("The lungs are clear without focal consolidation.", "No focal consolidation.")
    location = "costophrenic" if severity == "small" else "basal"
    body, impression = _describe(Finding("effusion", severity, side, location, None),
                                 np.random.default_rng([wording_seed, 1]))
    return f"FINDINGS: {body} {text} IMPRESSION: {impression}"


def reword_normal(report: str) -> str:
    """The matched null edit: a normal phantom report with the same places `add_effusion` touches (the opening heart
    sentence, the effusion/pneumothorax negation, the impression) reworded to another of the report writer's normal
    variants. Same size of text change, no finding."""
    from ..phantom.reporting import _NEGATIVES, _NORMAL_IMPRESSION

    if " IMPRESSION: " not in report or not report.startswith("FINDINGS: "):
        raise MedsynthError("reword_normal needs a 'FINDINGS: ... IMPRESSION: ...' report")
    text, impression = report[len("FINDINGS: "):].split(" IMPRESSION: ", 1)

    def swap(s: str, options: list[str]) -> str:
        present = [o for o in options if o in s]
        if len(present) != 1:
            raise MedsynthError(f"reword_normal: expected one of {options} in the report")
        return s.replace(present[0], options[(options.index(present[0]) + 1) % len(options)])

    text = swap(swap(text, _NEGATIVES["cardiomegaly"]), _NEGATIVES["effusion+pneumothorax"])
    return f"FINDINGS: {text} IMPRESSION: {swap(impression, _NORMAL_IMPRESSION)}"


def finding_prompt_arms(n: int, severity: str = "large", side: str = "right",
                        seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """(normal, finding, null): n prompts each, "FINDINGS: ... IMPRESSION: ..." in the phantom cohort's report
    language (its report writer, wording seeds seed, seed+1, ...). finding[k] is normal[k] with an effusion written
    in (`add_effusion`); null[k] is normal[k] reworded at the same places without a finding (`reword_normal`).
    All 3n prompts are distinct."""
    from ..phantom.reporting import write_report

    if n < 1:
        raise MedsynthError("finding_prompt_arms needs at least one prompt per arm")
    normal, finding, null, w = [], [], [], seed
    while len(normal) < n:
        if w - seed > 100 * n + 100:
            raise MedsynthError(f"the report writer gives fewer than {n} distinct wordings per arm")
        text, impression = write_report([], np.random.default_rng(w))
        report = f"FINDINGS: {text} IMPRESSION: {impression}"
        edited, reworded = add_effusion(report, severity, side, w), reword_normal(report)
        if len({report, edited, reworded} | set(normal) | set(finding) | set(null)) == 3 * (len(normal) + 1):
            normal.append(report)
            finding.append(edited)
            null.append(reworded)
        w += 1
    return normal, finding, null


def split_arms(prompts: Sequence[str], phrase: str) -> tuple[list[str], list[str], list[str]]:
    """Prompts in config order -> (normal, finding, null). A prompt is in the finding arm when it contains `phrase`
    (case-insensitive); the others are normal, the first half paired with the finding arm in order, the second
    half the null arm."""
    prompts = list(dict.fromkeys(prompts))
    finding = [p for p in prompts if phrase.lower() in p.lower()]
    others = [p for p in prompts if phrase.lower() not in p.lower()]
    if not finding or len(others) != 2 * len(finding):
        raise MedsynthError(f"a text-control prompt set needs K prompts with '{phrase}' and 2K without (normal, "
                            f"null); got {len(finding)} with and {len(others)} without")
    return others[:len(finding)], finding, others[len(finding):]


# ------------------------------------------------------------------ where the finding lives

def _resized_mask(path: Path, bit: int, size: int) -> np.ndarray:
    bits = np.asarray(Image.open(path))
    m = (bits.astype(np.int64) & (1 << bit)) > 0
    return np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 0


def _side_rows(df, finding: str, side: str, severities, with_bilateral: bool):
    sides = [side, "bilateral"] if with_bilateral else [side]
    rows = df[df[f"{finding}_side"].astype(str).isin(sides)]
    if severities:
        rows = rows[rows[f"{finding}_severity"].astype(str).isin(list(severities))]
    return rows


def finding_region(df, results: str | Path, size: int, finding: str = "effusion", side: str = "right",
                   severities: Sequence[str] = ("moderate", "large"), threshold: float = 0.5):
    """(region, control, n_masks): pixels where >= threshold x the peak fraction of the cohort's masks of that
    finding (its own bit) lie, on patients with it on `side` (bilateral ones count with that side's half only:
    patient's right = image left); control = the region mirrored left-right, pixels in both dropped from both.
    (None, None, 0) when no such patient has a mask."""
    from ..phantom.findings import FINDING_BITS

    if side not in ("right", "left"):
        raise MedsynthError(f"finding_region needs side 'right' or 'left', got {side!r}")
    if MASK_COLUMN not in df or f"{finding}_side" not in df:
        return None, None, 0
    rows = _side_rows(df, finding, side, severities, with_bilateral=True)
    rows = rows[rows[MASK_COLUMN].fillna("").astype(str) != ""]
    if rows.empty:
        return None, None, 0
    masks = []
    for path, s in zip(rows[MASK_COLUMN], rows[f"{finding}_side"].astype(str)):
        m = _resized_mask(Path(results) / path, FINDING_BITS[finding], size)
        if s == "bilateral":  # keep the prompted side's half (radiological convention)
            if side == "right":
                m[:, size // 2:] = False
            else:
                m[:, :size // 2] = False
        masks.append(m)
    freq = np.mean(masks, axis=0)
    if freq.max() == 0:
        return None, None, 0
    region = freq >= threshold * freq.max()
    control = region[:, ::-1].copy()
    both = region & control
    region, control = region & ~both, control & ~both
    if not region.any():
        return None, None, 0
    return region, control, len(masks)


# ------------------------------------------------------------------ measurements

def region_contrast(reference: np.ndarray, other: np.ndarray, region: np.ndarray, control: np.ndarray) -> dict:
    """Paired 8-bit samples (K prompts, S seeds, H, W) (or (N, H, W): one seed each): per sample d = other -
    reference, its mean over the region minus its mean over the control region. The prompt is the unit of
    replication (a report's wording moves the whole image, so seeds of one prompt are not independent): contrast =
    mean of the K per-prompt means, contrast_se = their SD / sqrt(K)."""
    if reference.shape != other.shape or reference.ndim not in (3, 4):
        raise MedsynthError(f"region_contrast needs two (K, S, H, W) or (N, H, W) stacks of one shape, got "
                            f"{reference.shape} and {other.shape}")
    if not region.any() or not control.any():
        raise MedsynthError("the region or its control is empty")
    d = other.astype(np.float64) - reference.astype(np.float64)
    if d.ndim == 3:
        d = d[:, None]
    per = d[..., region].mean(-1) - d[..., control].mean(-1)    # (K, S)
    by_prompt = per.mean(1)
    k = len(by_prompt)
    sd = float(by_prompt.std(ddof=1)) if k > 1 else None
    return {"region_mean_diff": float(d[..., region].mean()), "control_mean_diff": float(d[..., control].mean()),
            "contrast": float(by_prompt.mean()), "contrast_sd_prompts": sd,
            "contrast_se": float(sd / np.sqrt(k)) if k > 1 else None,
            "contrast_sd_samples": float(per.std(ddof=1)) if per.size > 1 else None,
            "mean_abs_diff": float(np.abs(d).mean()), "n_prompts": k, "n_samples": int(per.size),
            "per_prompt": [float(v) for v in by_prompt]}


def seed_spread(images: np.ndarray, region: np.ndarray | None = None) -> dict:
    """(K prompts, S seeds, H, W): per-pixel SD across seeds of one prompt, averaged over prompts and pixels (and
    over the region): how much the image changes with the seed alone, the scale to read a text effect against."""
    if images.ndim != 4 or images.shape[1] < 2:
        raise MedsynthError("seed_spread needs (prompts, seeds >= 2, H, W)")
    sd = images.astype(np.float64).std(axis=1, ddof=1).mean(axis=0)
    out = {"whole_image": float(sd.mean())}
    if region is not None and region.any():
        out["region"] = float(sd[region].mean())
    return out


def cohort_reference(df, results: str | Path, size: int, region: np.ndarray, control: np.ndarray,
                     finding: str = "effusion", side: str = "right",
                     severities: Sequence[str] = ("moderate", "large"), image_column: str = "image") -> dict | None:
    """The same contrast in the real cohort: mean image of patients with the finding on `side` only (given
    severities) minus the mean image of patients without any finding ('no_finding'), resized like the samples;
    with the per-pixel SD across those normal patients. None when the cohort has no such patients."""
    rows = _side_rows(df, finding, side, severities, with_bilateral=False)
    normal = df[df["finding_list"].astype(str) == "no_finding"] if "finding_list" in df else df.iloc[:0]
    if rows.empty or normal.empty:
        return None

    def stack(paths):
        return np.stack([np.asarray(Image.open(Path(results) / p).convert("L").resize((size, size), Image.BICUBIC),
                                    dtype=np.float64) for p in paths])

    normals = stack(normal[image_column])
    diff = stack(rows[image_column]).mean(0) - normals.mean(0)
    sd = normals.std(0, ddof=1) if len(normals) > 1 else None
    return {"region_mean_diff": float(diff[region].mean()), "control_mean_diff": float(diff[control].mean()),
            "contrast": float(diff[region].mean() - diff[control].mean()), "n_finding": int(len(rows)),
            "n_normal": int(len(normals)),
            # how much real normal patients differ from each other: the scale seed_spread of samples compares to
            "between_patient_sd": None if sd is None else {"whole_image": float(sd.mean()),
                                                          "region": float(sd[region].mean())},
            "diff_map": diff}


def verdict(effect: dict, null: dict, z: float = 2.0, sign: int = 1) -> dict:
    """Localised when the finding's region-vs-control contrast has the expected sign (+1: the finding brightens
    its region, like fluid; -1: darkens it, like air) beyond z standard errors, and exceeds the null arm's contrast
    (normal vs other normal wording) in that direction by z standard errors.

    The arms are paired by construction (finding_prompt_arms: report k normal, with the finding written in, and
    reworded at the same places, all with the same seeds), and a report's wording moves the region by itself, in
    both arms alike. So the comparison with the null arm is paired by report: the SE of the per-report differences
    (effect_k - null_k). Treating the arms as independent (kept as z_vs_null_unpaired) counts that shared
    per-report movement twice as noise. Unpaired only when the arms are not the same reports."""
    se_e, se_n = effect.get("contrast_se"), null.get("contrast_se")
    if not se_e or not se_n:
        return {"localised": None, "z_vs_zero": None, "z_vs_null": None,
                "reason": "too few samples for a standard error"}
    if sign not in (1, -1):
        raise MedsynthError(f"verdict: sign must be +1 or -1, got {sign!r}")
    z0 = sign * effect["contrast"] / se_e
    zn_unpaired = sign * (effect["contrast"] - null["contrast"]) / float(np.hypot(se_e, se_n))
    pe, pn = effect.get("per_prompt") or [], null.get("per_prompt") or []
    d = np.asarray(pe, dtype=np.float64) - np.asarray(pn, dtype=np.float64) if len(pe) == len(pn) >= 2 else None
    se_d = float(d.std(ddof=1) / np.sqrt(len(d))) if d is not None else 0.0
    if d is not None and se_d > 0:
        zn, test = sign * float(d.mean()) / se_d, f"paired by report (n={len(d)}): mean and SE of effect_k - null_k"
    else:
        zn, test = zn_unpaired, "unpaired: (effect - null) / sqrt(SE_effect^2 + SE_null^2)"
    return {"localised": bool(z0 > z and zn > z), "z_vs_zero": float(z0), "z_vs_null": float(zn),
            "z_vs_null_test": test, "z_vs_null_unpaired": float(zn_unpaired), "z_threshold": z}
