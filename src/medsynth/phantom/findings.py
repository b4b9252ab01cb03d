"""Findings as HU edits inside anatomical masks of the source CT, each returning its ground-truth 3D mask.

Every function edits `hu` in place and returns a Finding whose `mask` holds the voxels it changed (plus, for
cardiomegaly, the whole enlarged heart). Geometry follows the upright PA radiograph the cohort is rendered as:
fluid is dependent (basal, higher laterally and posteriorly: the meniscus), free air is apical and lateral.
Axes are LAS (ct.py): axis 0 -> patient's left, axis 1 -> anterior, axis 2 -> head.

Known simplifications: emphysema lowers parenchymal HU and adds bullae but does not flatten the diaphragms
(no hyperinflation); a pneumothorax also compresses the lung it leaves behind (outside its mask, inside the same
hemithorax), and its mask keeps only the rim a frontal film sees en face.

Conspicuity at demo resolution (issue 18): the demo renders at 256 px and preprocesses to 128 px (~2.7 mm per
pixel), so the smallest findings were sized to be visible there, for both the generators' and the judge's cohort
(same code): nodules are at least 18 mm (small 18-24, medium 24-30 mm; a 10 mm nodule was ~4 px and invisible),
a small effusion is at least 32 mm high (was 20), a small pneumothorax retracts the lung by at least 13 % (was 8),
and consolidation is at least 30 mm in radius (patchy; was 20) and denser (now -30..40 HU; was -100..40). These are
the phantom's "visible" findings; atelectasis and emphysema stay subtle.

Radiologically distinct findings (issue 18, second pass): the judge told nodules from consolidation poorly (held-out
AUC 0.74 and 0.86) because both were dense, sharp, lobulated blobs of overlapping size, and a pneumothorax applied
after them compacted a consolidation into something mass-like. Now:
- a nodule is round and compact (irregularity 0.05; a mass 0.1), sharp-margined and uniformly solid (60-100 HU,
  a little denser than soft tissue for conspicuity at 128 px), 22-34 mm (a mass 34-42 mm, no longer up to 55),
  two to four (multiple nodules: more lesion per positive film for a judge that learns from a few hundred; a
  mass stays single), centred in the visible lung field (_lung_field: PA
  columns through at least half the lung's thickest column and clear of the heart -- not behind the heart, the
  mediastinum or the diaphragm domes, where a frontal film hides it);
- a consolidation is ill-defined: its opacity fades into aerated lung over ~10 mm (_soft_ball), is confluent
  and mostly airless (a smooth ~10 mm random field modulates how much air each part has lost, blend weight
  clip(0.95 + 0.2 n, 0.6, 1), -30..40 HU), keeps air bronchograms and is larger (radius 30-40 mm patchy 20 %,
  40-55 mm segmental 45 %, the whole lobe 35 %); its ground-truth mask is where the blend weight is >= 0.5;
- fluid and free air are applied first (APPLY_ORDER) and the parenchymal findings edit only still-aerated lung
  (AERATED), so a pneumothorax no longer squeezes a consolidation into a mass and nothing is written into fluid.
Measured on the then demo judge (judge_fast, 1000 patients, 128 px, held-out AUC): consolidation 0.86 ->
0.90-0.93; nodule 0.74 -> 0.78 (one or two nodules) -> 0.83 (one to three) -> 0.90 (two to four) -> 0.93 (the
judge trained 24 epochs instead of 16, config classifier.epochs). A nodule is plainly visible (it changes its
pixels by 40-100 of 255 grey levels), yet the judge_fast CNN learns it poorly from ~200 positives:
trained without the cohort's normal patients it scores single nodules at AUC ~0.6-0.67 -- much of its nodule
score is "this film is abnormal", which the judge cohort's normal share makes predictive.
Are the judge's misses unlabelled-invisible findings? No (issue 18, third pass, 242 held-out films): undoing each
nodule/consolidation (its voxels filled from the surrounding lung) and re-presenting the noiseless film, every
labelled one changes its film by >= 0.08 of full scale over >= 140 mm^2 at a contrast-to-quantum-noise >= 2 per
pixel, nodules inside a consolidation included (90th-percentile contrast 0.138 vs 0.130 outside). The misses are
confusions: the narrow judge's highest-scoring lesion negatives are consolidations. A wider judge on 2000 patients
(classifier arch judge_wide) mostly fixes that. Fourth pass: the consolidations it still missed were patchy ones
in the upper lobes (2700-5800 mm^2 of film, plainly visible), scored as nodules. Consolidation was then mostly a
faint (-60..30 HU, ground glass down to 40 % filled), round 30-40 mm patch; it is now mostly segmental or lobar and
airless. Held-out AUC Lung Lesion / Consolidation (judge cohort, 489 films, training seeds 0 / 1): judge_wide on
2000 patients 0.968 / 0.949 and 0.964 / 0.940 before (the earlier machine), 0.953 / 0.972 and 0.954 / 0.968 after (an
AVX2 machine); judge_fast on 1000 patients 0.934 / 0.942 and 0.913 / 0.958 after.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ct import Anatomy

# Bit per finding in the lesion masks (3D NIfTI and 2D PNG): a voxel may belong to several findings.
FINDING_BITS = {"effusion": 0, "cardiomegaly": 1, "nodule": 2, "consolidation": 3, "atelectasis": 4,
                "pneumothorax": 5, "emphysema": 6}
# Order in which edits are applied. Fluid and free air first (a pneumothorax compresses the lung it leaves: applied
# after a nodule or consolidation it would squeeze them into other shapes and densities -- a compacted consolidation
# looks like a mass); the parenchymal findings then edit only lung that is still aerated (AERATED), so they never
# write into fluid or the pneumothorax rim; the enlarged heart, last, displaces whatever was there.
APPLY_ORDER = ["emphysema", "effusion", "pneumothorax", "nodule", "consolidation", "atelectasis", "cardiomegaly"]
AERATED = (-980.0, -300.0)  # HU of lung a parenchymal finding may edit: not free air/bullae, not fluid or tissue


def _aerated(hu: np.ndarray) -> np.ndarray:
    return (hu > AERATED[0]) & (hu < AERATED[1])


@dataclass
class Finding:
    name: str
    severity: str
    side: str                 # 'left' | 'right' | 'bilateral' | '' (central: heart)
    location: str             # radiology wording of where, e.g. 'right upper lobe'
    mask: np.ndarray = field(repr=False)
    not_lung: np.ndarray | None = field(default=None, repr=False)  # voxels no longer aerated lung (segmentation)
    size_mm: float = 0.0


def _grids(shape):
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return x, y, z


def _extent(mask: np.ndarray, axis: int) -> tuple[int, int]:
    other = tuple(a for a in range(3) if a != axis)
    idx = np.nonzero(mask.any(axis=other))[0]
    return int(idx[0]), int(idx[-1])


def _lateral_fraction(mask: np.ndarray, side: str, x) -> np.ndarray:
    """0 at the lung's medial edge, 1 at its lateral edge (right lung lateral = low x index)."""
    x0, x1 = _extent(mask, 0)
    frac = (x - x0) / max(1, x1 - x0)
    return np.clip(frac if side == "left" else 1 - frac, 0, 1)


def _height_fraction(mask: np.ndarray, z) -> np.ndarray:
    z0, z1 = _extent(mask, 2)
    return np.clip((z - z0) / max(1, z1 - z0), 0, 1)


def _posterior_fraction(mask: np.ndarray, y) -> np.ndarray:
    y0, y1 = _extent(mask, 1)
    return np.clip((y1 - y) / max(1, y1 - y0), 0, 1)


def _noisy(rng, n, mean, sd):
    return (mean + sd * rng.standard_normal(n)).astype(np.float32)


def _pick_voxel(rng, candidates: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(candidates)
    return np.array(np.unravel_index(idx[rng.integers(len(idx))], candidates.shape))


def _lobulated(shape, spacing, center, radius_mm, rng, irregularity, margin_mm):
    """(box lo, box hi, distance from centre in mm, radius modulation) over the box around a lobulated ball: its
    radius modulated by a few random low-order harmonics of direction."""
    r_box = radius_mm * (1 + irregularity) + margin_mm + spacing.max()
    lo = np.maximum(0, np.floor(center - r_box / spacing)).astype(int)
    hi = np.minimum(shape, np.ceil(center + r_box / spacing) + 1).astype(int)
    x, y, z = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = [(x - center[0]) * spacing[0], (y - center[1]) * spacing[1], (z - center[2]) * spacing[2]]
    dist = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2) + 1e-6
    mod = np.ones_like(dist)
    for _ in range(3):
        k = rng.normal(size=3)
        k /= np.linalg.norm(k)
        cos = (k[0] * d[0] + k[1] * d[1] + k[2] * d[2]) / dist
        mod = mod + irregularity / 1.7 * np.cos(rng.integers(2, 5) * np.arccos(np.clip(cos, -1, 1))
                                                + rng.uniform(0, 6.3))
    return lo, hi, dist, mod


def _blob(shape, spacing, center, radius_mm, rng, irregularity=0.15) -> np.ndarray:
    """A lobulated ball (`_lobulated`) as a mask."""
    lo, hi, dist, mod = _lobulated(shape, spacing, center, radius_mm, rng, irregularity, 0.0)
    out = np.zeros(shape, dtype=bool)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = dist <= radius_mm * mod
    return out


def _lung_field(anat: Anatomy, side: str, share: float = 0.5) -> np.ndarray:
    """(x, 1, z) columns where a PA film sees this lung: the ray crosses at least `share` of the lung's thickest
    column and no heart. Below the diaphragm domes (the posterior recesses behind the liver and spleen), at the
    mediastinum and behind the heart a lesion is hidden by soft tissue on a frontal radiograph."""
    thick = anat.lung(side).sum(axis=1)
    field = (thick >= share * thick.max()) & ~anat.heart.any(axis=1)
    return field[:, None, :]


def _soft_ball(shape, spacing, center, radius_mm, rng, irregularity, edge_mm):
    """(box slices, weight in 0..1) of an ill-defined opacity: a lobulated ball whose border fades over
    `edge_mm`."""
    lo, hi, dist, mod = _lobulated(shape, spacing, center, radius_mm, rng, irregularity, edge_mm)
    w = np.clip((radius_mm * mod - dist) / edge_mm + 0.5, 0, 1)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return box, w.astype(np.float32)


def _severity(rng, levels=("mild", "moderate", "severe"), p=(0.45, 0.35, 0.2)) -> str:
    return str(rng.choice(levels, p=p))


def effusion(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    side = str(rng.choice(["right", "left", "bilateral"], p=[0.4, 0.3, 0.3]))
    severity = _severity(rng, ("small", "moderate", "large"))
    height = {"small": rng.uniform(32, 45), "moderate": rng.uniform(50, 75), "large": rng.uniform(90, 130)}[severity]
    x, y, z = _grids(hu.shape)
    sz = anat.spacing[2]
    mask = np.zeros(hu.shape, dtype=bool)
    for s in (["right", "left"] if side == "bilateral" else [side]):
        lung = anat.lung(s)
        z0, _ = _extent(lung, 2)
        h = height * (rng.uniform(0.7, 1.0) if side == "bilateral" else 1.0)
        # Meniscus: the fluid line climbs laterally and posteriorly (upright patient).
        level = h * (0.5 + 0.9 * _lateral_fraction(lung, s, x) ** 2 + 0.35 * _posterior_fraction(lung, y))
        mask |= lung & ((z - z0) * sz < level)
    hu[mask] = _noisy(rng, int(mask.sum()), rng.uniform(8, 20), 6)
    return Finding("effusion", severity, side, "costophrenic" if severity == "small" else "basal", mask, mask)


def cardiomegaly(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    severity = _severity(rng)
    r = {"mild": rng.uniform(7, 10), "moderate": rng.uniform(11, 15), "severe": rng.uniform(16, 22)}[severity]
    grow = (anat.heart_distance <= r) & ~anat.heart & ~anat.bone & ~anat.airway & anat.body
    hu[grow] = _noisy(rng, int(grow.sum()), rng.uniform(35, 45), 8)
    return Finding("cardiomegaly", severity, "", "cardiac silhouette", anat.heart | grow, grow)


LOBE_WORDS = {"right_upper": "right upper lobe", "right_middle": "right middle lobe",
              "right_lower": "right lower lobe", "left_upper": "left upper lobe", "left_lower": "left lower lobe"}


def _side_of(lobe: str) -> str:
    return lobe.split("_")[0]


def _choose_lobe(rng, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return str(rng.choice(names, p=p / p.sum()))


def nodule(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    """Two to four round, sharp-margined, compact solid opacities (or one mass, > 34 mm but still round) in the
    visible lung fields: uniform soft-tissue density with a crisp edge, unlike consolidation's fading, patchy border."""
    severity = str(rng.choice(["small", "medium", "mass"], p=[0.4, 0.4, 0.2]))
    count = 1 if severity == "mass" else int(rng.choice([2, 3, 4], p=[0.4, 0.35, 0.25]))
    mask = np.zeros(hu.shape, dtype=bool)
    lobes, sizes = [], []
    for _ in range(count):
        diameter = {"small": rng.uniform(22, 28), "medium": rng.uniform(28, 34), "mass": rng.uniform(34, 42)}[severity]
        # Upper-lobe predilection (smoking-related nodules and cancers).
        lobe = _choose_lobe(rng, {"right_upper": 2, "right_middle": 0.6, "right_lower": 1, "left_upper": 2,
                                  "left_lower": 1})
        side = _side_of(lobe)
        depth = anat.lung_depth[side]
        aerated = anat.lobes[lobe] & _aerated(hu)
        inside = aerated & (depth >= 0.6 * diameter / 2 + 2) & _lung_field(anat, side)
        if not inside.any():
            inside = aerated if aerated.any() else anat.lobes[lobe]
        center = _pick_voxel(rng, inside)
        blob = _blob(hu.shape, anat.spacing, center, diameter / 2, rng,
                     irregularity=0.1 if severity == "mass" else 0.05) & anat.lung(side) & _aerated(hu)
        mask |= blob
        lobes.append(LOBE_WORDS[lobe])
        sizes.append(diameter)
    hu[mask] = _noisy(rng, int(mask.sum()), rng.uniform(60, 100), 5)
    sides = {loc.split()[0] for loc in lobes}
    side = sides.pop() if len(sides) == 1 else "bilateral"
    location = ", ".join(dict.fromkeys(lobes))
    return Finding("nodule", severity, side, location, mask, None, float(max(sizes)))


def consolidation(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    """Airspace filling: ill-defined (the opacity fades into aerated lung over ~10 mm), confluent and mostly
    airless (smooth random texture: a few partly filled parts), larger than a mass, with air bronchograms (the
    larger airways inside stay dark), centred in the visible lung field. Mostly segmental or lobar, bounded by its
    lobe: a small, faint, round patch in an upper lobe is what a nodule looks like on a film, and the judge
    (issue 18) confused the two when a patch was the commonest form."""
    severity = str(rng.choice(["patchy", "segmental", "lobar"], p=[0.2, 0.45, 0.35]))
    lobe = _choose_lobe(rng, {"right_upper": 1, "right_middle": 1, "right_lower": 2, "left_upper": 1,
                              "left_lower": 2})
    side = _side_of(lobe)
    lobe_mask = anat.lobes[lobe]
    depth = anat.lung_depth[side]
    if severity == "lobar":
        box = tuple(slice(lo, hi + 1) for lo, hi in (_extent(lobe_mask, a) for a in range(3)))
        w = np.ones(lobe_mask[box].shape, dtype=np.float32)
    else:
        radius = rng.uniform(30, 40) if severity == "patchy" else rng.uniform(40, 55)
        cand = lobe_mask & (depth > 6) & _lung_field(anat, side) & _aerated(hu)
        center = _pick_voxel(rng, cand if cand.any() else lobe_mask & (depth > 6))
        box, w = _soft_ball(hu.shape, anat.spacing, center, radius, rng, irregularity=0.3, edge_mm=10.0)
    from scipy.ndimage import gaussian_filter

    # Confluent filling: a smooth random field (~10 mm) modulates how much air each part has lost (most of it).
    n = gaussian_filter(rng.standard_normal(w.shape).astype(np.float32), 10.0 / anat.spacing)
    n = (n - n.mean()) / (n.std() + 1e-6)
    w = w * np.clip(0.95 + 0.2 * n, 0.6, 1.0)
    sub = hu[box]
    region = lobe_mask[box] & (sub < AERATED[1])  # not into fluid (air bronchograms and the rim: keep_air below)
    # Air bronchograms: the larger airways stay dark inside the opacity.
    keep_air = region & ((sub < -950) & (depth[box] > 15) | (sub <= AERATED[0]))
    edit = region & ~keep_air & (w > 0.02)
    target = rng.uniform(-30, 40)
    vals = sub[edit]
    sub[edit] = vals + w[edit] * (target + 15 * rng.standard_normal(vals.size).astype(np.float32) - vals)
    full = np.zeros(hu.shape, dtype=bool)
    full[box] = region & (sub > AERATED[0]) & (w >= 0.5)  # ground truth: where the lung has lost most of its air
    return Finding("consolidation", severity, side, LOBE_WORDS[lobe], full, None)


def atelectasis(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    severity = str(rng.choice(["platelike", "segmental", "lobar"], p=[0.5, 0.35, 0.15]))
    lobe = _choose_lobe(rng, {"right_lower": 2, "left_lower": 2, "right_middle": 1})
    lobe_mask = anat.lobes[lobe]
    x, y, z = _grids(hu.shape)
    zf = _height_fraction(lobe_mask, z)
    sz = anat.spacing[2]
    if severity == "platelike":
        # A thin, slightly oblique horizontal band low in the lobe: a linear opacity on the radiograph.
        z0, z1 = _extent(lobe_mask, 2)
        level = z0 + rng.uniform(0.2, 0.5) * (z1 - z0) + rng.uniform(-0.06, 0.06) * (x - x.mean())
        thick = rng.uniform(5, 8) / sz
        region = (lobe_mask & (np.abs(z - level) <= thick / 2)
                  & (_lateral_fraction(lobe_mask, _side_of(lobe), x) > 0.15) & _aerated(hu))
        hu[region] = _noisy(rng, int(region.sum()), rng.uniform(-60, 20), 12)
    else:
        # Collapse of the dependent (posterobasal) part; the rest of the lobe over-expands (compensatory lucency).
        frac = rng.uniform(0.25, 0.4) if severity == "segmental" else rng.uniform(0.6, 0.8)
        score = 0.5 * (1 - zf) + 0.5 * _posterior_fraction(lobe_mask, y)
        score = np.broadcast_to(score, hu.shape)
        cut = np.quantile(score[lobe_mask], 1 - frac)
        region = lobe_mask & (score >= cut) & _aerated(hu)
        hu[region] = _noisy(rng, int(region.sum()), rng.uniform(20, 50), 10)
        rest = lobe_mask & ~region & (hu < -500)
        hu[rest] = hu[rest] + 0.15 * (-950 - hu[rest])
    return Finding("atelectasis", severity, _side_of(lobe), LOBE_WORDS[lobe], region, None)


def pneumothorax(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    """The lung retracts towards its hilum: mostly away from the apex and lateral chest wall (free air rises in
    an upright patient), little from the mediastinum and diaphragm. The collapsed lung keeps its (compressed,
    denser) texture; the space it left is pure air without vessel markings."""
    side = str(rng.choice(["right", "left"], p=[0.55, 0.45]))
    severity = _severity(rng, ("small", "moderate", "large"))
    f = {"small": rng.uniform(1.13, 1.18), "moderate": rng.uniform(1.2, 1.3), "large": rng.uniform(1.4, 1.7)}[severity]
    lung = anat.lung(side)
    (x0, x1), (y0, y1), (z0, z1) = (_extent(lung, a) for a in range(3))
    medial = x1 if side == "right" else x0
    hilum = np.array([medial + (x0 - x1 if side == "right" else x1 - x0) * 0.1, (y0 + y1) / 2, z0 + 0.35 * (z1 - z0)])
    stretch = np.array([f, 1.0, f])  # retraction in the frontal plane: the rim is seen en face on a PA film
    p = np.argwhere(lung)
    rel = (p - hilum) * stretch
    rel[:, 2] = np.where(p[:, 2] > hilum[2], rel[:, 2], p[:, 2] - hilum[2])  # the base stays on the diaphragm
    q = np.rint(hilum + rel).astype(int)
    ok = np.all((q >= 0) & (q < np.array(hu.shape)), axis=1)
    ok[ok] = lung[q[ok, 0], q[ok, 1], q[ok, 2]]
    src = hu.copy()
    keep = p[ok]
    volume = float(stretch[0] * np.sqrt(stretch[2]))  # mean compression: z only above the hilum
    # Compressed lung: the same tissue in a smaller volume (density scales with the volume ratio).
    hu[keep[:, 0], keep[:, 1], keep[:, 2]] = np.minimum((src[q[ok, 0], q[ok, 1], q[ok, 2]] + 1000) * volume - 1000, 80)
    # Visceral pleural line: the lung's original surface, now at the collapsed edge.
    edge = anat.lung_depth[side][q[ok, 0], q[ok, 1], q[ok, 2]] <= 2.0
    e = keep[edge]
    hu[e[:, 0], e[:, 1], e[:, 2]] = np.maximum(hu[e[:, 0], e[:, 1], e[:, 2]], -500) + 200
    air = p[~ok]
    rim = np.zeros(hu.shape, dtype=bool)
    rim[air[:, 0], air[:, 1], air[:, 2]] = True
    hu[rim] = _noisy(rng, int(rim.sum()), -1000, 3)
    # Ground truth = the rim where a frontal film sees it: columns (along AP) that are at least half air of the
    # former lung. Thin air layers over the front and back of the lung are in `not_lung` only.
    en_face = rim.sum(axis=1) >= 0.5 * np.maximum(lung.sum(axis=1), 1)
    return Finding("pneumothorax", severity, side, "apicolateral", rim & en_face[:, None, :], rim)


def emphysema(hu: np.ndarray, anat: Anatomy, rng: np.random.Generator) -> Finding:
    severity = _severity(rng)
    alpha = {"mild": 0.45, "moderate": 0.65, "severe": 0.85}[severity] + rng.uniform(-0.05, 0.05)
    x, y, z = _grids(hu.shape)
    mask = np.zeros(hu.shape, dtype=bool)
    for side in ("right", "left"):
        lung = anat.lung(side)
        # Centrilobular emphysema is upper-lobe predominant.
        w = np.clip((_height_fraction(lung, z) - 0.25) / 0.45, 0, 1)
        region = lung & (w > 0) & (hu < -600)  # parenchyma only: vessels and airway walls keep their density
        a = np.broadcast_to(w, hu.shape)[region] * alpha
        hu[region] = hu[region] + a * (-950 - hu[region])
        mask |= region
    n_bullae = {"mild": rng.integers(0, 2), "moderate": rng.integers(1, 4), "severe": rng.integers(2, 6)}[severity]
    for _ in range(int(n_bullae)):
        lobe = _choose_lobe(rng, {"right_upper": 1, "left_upper": 1})
        side = _side_of(lobe)
        r = rng.uniform(8, 22)
        depth = anat.lung_depth[side]
        center = _pick_voxel(rng, anat.lobes[lobe] & (depth > 0.5 * r) & (depth < 1.2 * r))
        bulla = _blob(hu.shape, anat.spacing, center, r, rng, irregularity=0.08) & anat.lung(side)
        hu[bulla] = _noisy(rng, int(bulla.sum()), -995, 3)
        mask |= bulla
    return Finding("emphysema", severity, "bilateral", "upper lobe predominant", mask, None)


EDITORS = {"effusion": effusion, "cardiomegaly": cardiomegaly, "nodule": nodule, "consolidation": consolidation,
           "atelectasis": atelectasis, "pneumothorax": pneumothorax, "emphysema": emphysema}


def apply_findings(hu: np.ndarray, anat: Anatomy, present: dict[str, bool], rng: np.random.Generator
                   ) -> tuple[list[Finding], np.ndarray, np.ndarray]:
    """Apply the present findings in APPLY_ORDER. Returns (findings, lesion bitmask uint8, lung/airway seg uint8).

    A later edit that overwrites an earlier finding's voxels removes them from the earlier mask, so every mask
    bit marks voxels that really look like that finding."""
    lesion = np.zeros(hu.shape, dtype=np.uint8)
    not_lung = np.zeros(hu.shape, dtype=bool)
    done = []
    for name in APPLY_ORDER:
        if not present.get(name):
            continue
        f = EDITORS[name](hu, anat, rng)
        changed = f.not_lung if name in ("cardiomegaly", "pneumothorax") else f.mask
        lesion[changed] &= np.uint8(0xFF ^ 0x7F)  # clear the 7 finding bits where this edit wrote
        lesion[f.mask] |= np.uint8(1 << FINDING_BITS[name])
        if f.not_lung is not None:
            not_lung |= f.not_lung
        done.append(f)
    seg = np.zeros(hu.shape, dtype=np.uint8)
    seg[anat.lung_right & ~not_lung] = 1
    seg[anat.lung_left & ~not_lung] = 2
    seg[anat.airway] = 3
    for f in done:  # finding masks kept in sync with what was overwritten later
        f.mask = (lesion & (1 << FINDING_BITS[f.name])) > 0
    return done, lesion, seg
