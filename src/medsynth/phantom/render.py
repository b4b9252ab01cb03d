"""Radiographs by Beer-Lambert line integrals of linear attenuation through the (edited) CT.

mu = mu_water * (1 + HU/1000) for HU <= 0 (air ~ 0); above 0 the HU slope is scaled by `bone_gain` because at
diagnostic radiograph energies (~60 keV) calcium attenuates relatively more than at CT's 120 kVp (photoelectric
effect) - without it ribs are too faint. Parallel projection (sum along the AP or left-right axis), then the
detector: quantum noise on the transmitted fluence, a little scatter, log transform, and the usual
presentation processing (unsharp-mask dynamic range compression, window, 12-bit).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MU_WATER = 0.02  # 1/mm at ~60 keV


@dataclass
class Acquisition:
    """Per-patient acquisition and anatomy variation (all drawn from the patient's rng)."""

    scale: float = 1.0          # patient size: magnifies the body and lengthens every ray
    rotation_deg: float = 0.0   # in-plane rotation on the detector
    shift_mm: tuple = (0.0, 0.0)
    mu_water: float = MU_WATER  # beam quality
    photons: float = 4e4        # fluence per pixel: sets quantum noise
    scatter: float = 0.03       # scatter-to-primary ratio (uniform)
    bone_gain: float = 1.8
    gamma: float = 1.4          # presentation tone curve (vendor/site processing differs)
    fov_mm: float = 345.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Acquisition":
        return cls(scale=float(rng.uniform(0.9, 1.08)), rotation_deg=float(rng.uniform(-4, 4)),
                   shift_mm=(float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6))),
                   mu_water=float(rng.uniform(0.019, 0.021)), photons=float(rng.uniform(2e4, 8e4)),
                   scatter=float(rng.uniform(0.02, 0.05)), bone_gain=float(rng.uniform(1.6, 2.0)),
                   gamma=float(rng.uniform(1.2, 1.65)))


def attenuation(hu: np.ndarray, mu_water: float, bone_gain: float) -> np.ndarray:
    # mu_water * (1 + hu * slope / 1000) clipped at 0, evaluated in place in float32 (one volume-sized buffer
    # instead of five: this is most of a radiograph's render time; same operations, same bits).
    mu = np.where(hu > 0, np.float32(bone_gain), np.float32(1.0))
    np.multiply(hu, mu, out=mu, dtype=np.float32)
    np.divide(mu, np.float32(1000.0), out=mu)
    np.add(np.float32(1), mu, out=mu)
    np.multiply(np.float32(mu_water), mu, out=mu)
    return np.maximum(mu, np.float32(0), out=mu)


def _detector_affine(src_spacing: tuple[float, float], center_mm: tuple[float, float], size: int,
                     acq: Acquisition) -> np.ndarray:
    """2x3 map from output pixel (col, row) to source (i along the patient's left/posterior, j along z).

    Output rows run head -> feet, columns run towards the patient's left (PA display: the patient's right on
    the viewer's left)."""
    a = acq.fov_mm / size
    th = np.deg2rad(acq.rotation_deg)
    rot = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    # detector mm (u right, v up) from pixel: u = a*(c + .5 - size/2), v = -a*(r + .5 - size/2)
    pix = np.array([[a, 0.0], [0.0, -a]])
    pix_b = np.array([a * (0.5 - size / 2), -a * (0.5 - size / 2)])
    lin = rot @ pix / acq.scale
    off = rot @ pix_b / acq.scale + np.array(center_mm) + np.array(acq.shift_mm)
    to_idx = np.diag([1 / src_spacing[0], 1 / src_spacing[1]])
    return np.hstack([to_idx @ lin, (to_idx @ off)[:, None]]).astype(np.float64)


def project(hu: np.ndarray, spacing, axis: int, acq: Acquisition) -> np.ndarray:
    """Line integral of mu along `axis` (1: PA, 0: lateral), in patient-size units; shape (other axis, z)."""
    mu = attenuation(hu, acq.mu_water, acq.bone_gain)
    return mu.sum(axis=axis) * float(spacing[axis]) * acq.scale


def _extend_top(plane: np.ndarray, step_mm: float, rows: int = 24) -> np.ndarray:
    """Continue the neck above the scanned volume with a smoothed copy of its top row, so a detector field a
    little taller than the CT shows soft tissue rather than streaks of a replicated edge."""
    top = cv2.GaussianBlur(plane[:, -1:].astype(np.float32), (1, 0), sigmaX=0.1, sigmaY=8.0 / step_mm)
    return np.concatenate([plane, np.repeat(top.reshape(-1, 1), rows, axis=1)], axis=1)


def to_detector(plane: np.ndarray, plane_spacing: tuple[float, float], center_mm: tuple[float, float], size: int,
                acq: Acquisition, nearest: bool = False) -> np.ndarray:
    """Resample a (i, z) plane onto the square detector grid (size x size) with the patient's pose."""
    m = _detector_affine(plane_spacing, center_mm, size, acq)
    src = np.ascontiguousarray(plane.T)  # rows = z index, cols = i index -> cv2 (x=i, y=j)
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    border = cv2.BORDER_CONSTANT if nearest else cv2.BORDER_REPLICATE
    return cv2.warpAffine(src, m, (size, size), flags=flags, borderMode=border, borderValue=0)


def expose(line_integral: np.ndarray, acq: Acquisition, rng: np.random.Generator, pixel_mm: float) -> np.ndarray:
    """Detector: noisy transmitted fluence + scatter -> log image -> presentation processing -> 0..1."""
    primary = np.exp(-line_integral)
    counts = acq.photons * (primary + acq.scatter * float(primary.mean()))
    counts = np.maximum(counts + np.sqrt(counts) * rng.standard_normal(counts.shape), 1.0)
    logimg = -np.log(counts / acq.photons)
    # Dynamic range compression as on clinical CXR processing: subtract part of the very smooth component so
    # mediastinum and lungs share the window, boost mid-frequency detail (ribs, vessels).
    sigma = 25.0 / pixel_mm
    smooth = cv2.GaussianBlur(logimg.astype(np.float32), (0, 0), sigma)
    proc = logimg + 0.5 * (logimg - smooth) - 0.15 * smooth
    lo, hi = np.percentile(proc, [0.5, 99.8])
    out = np.clip((proc - lo) / max(hi - lo, 1e-6), 0, 1)
    # Film-like tone curve: darker lungs, mediastinum and bone stay bright.
    return (out ** acq.gamma).astype(np.float32)


@dataclass
class Radiograph:
    image: np.ndarray      # float 0..1, bright = attenuating (MONOCHROME2 sense)
    lesion: np.ndarray     # uint8 bitmask (FINDING_BITS), projected
    pixel_mm: float
    view: str


def render(hu: np.ndarray, lesion3d: np.ndarray, spacing, center_mm: tuple[float, float], size: int,
           acq: Acquisition, rng: np.random.Generator, view: str = "PA") -> Radiograph:
    """PA (sum along anterior axis) or lateral (sum along left axis) radiograph and its projected lesion mask.

    `center_mm` = (i mm, z mm) of the detector centre in the projected plane (same for every patient: the
    patient's own pose comes from `acq`)."""
    axis = 1 if view == "PA" else 0
    other = 0 if axis == 1 else 1
    plane_sp = (float(spacing[other]) * acq.scale, float(spacing[2]) * acq.scale)
    # Pose is applied in the detector mapping, so source mm coordinates must not carry the scale twice.
    acq_geo = Acquisition(**{**acq.__dict__, "scale": 1.0})
    center = (center_mm[0] * acq.scale, center_mm[1] * acq.scale)
    plane = _extend_top(project(hu, spacing, axis, acq), float(spacing[other]))
    line = to_detector(plane, plane_sp, center, size, acq_geo)
    proj_mask = np.bitwise_or.reduce(lesion3d, axis=axis)
    mask = to_detector(proj_mask, plane_sp, center, size, acq_geo, nearest=True)
    if view == "LL":
        # Left lateral: the patient's left side against the detector, anterior to the viewer's left.
        line, mask = line[:, ::-1], mask[:, ::-1]
    image = expose(line, acq, rng, acq.fov_mm / size)
    return Radiograph(image=image, lesion=np.ascontiguousarray(mask), pixel_mm=acq.fov_mm / size, view=view)
