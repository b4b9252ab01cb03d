"""Attribute-toggle scoring (xing2024 Figure 4): crops are picked by their ground-truth region, read as a bitmask."""
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medsynth import attribute_toggle as at


def _crop_row(tmp_path, name, lesion, crop_xyz=(0, 0, 0)):
    nib.save(nib.Nifti1Image(lesion.astype(np.uint8), np.eye(4)), tmp_path / f"{name}.nii.gz")
    lung = np.zeros((4, 8, 8, 4), dtype=np.uint8)
    lung[1, :4] = 1     # right lung: x < 4
    lung[2, 4:] = 1     # left lung
    np.savez(tmp_path / f"{name}_mask.npz", mask=lung)
    return {"source_id": name, "lesion_source": str(tmp_path / f"{name}.nii.gz"), "mask": f"{name}_mask.npz",
            **{f"crop_{a}": c for a, c in zip("xyz", crop_xyz)}}


def test_region_crops_reads_the_emphysema_bit_inside_the_lungs(tmp_path):
    none = np.zeros((8, 8, 4))
    nodule_only = none.copy()
    nodule_only[2, 2, 1] = 1 << 2                               # a nodule bit: not emphysema
    emph = none.copy()
    emph[:2, :, :] = (1 << at.EMPHYSEMA_BIT) | (1 << 2)          # emphysema AND nodule on the same voxels
    rows = pd.DataFrame([_crop_row(tmp_path, "a", none), _crop_row(tmp_path, "b", nodule_only),
                         _crop_row(tmp_path, "c", emph), {"source_id": "real", "lesion_source": None, "mask": "x"}])
    picked, regions, lungs, scanned = at.region_crops(rows, tmp_path, (1, 1, 1), (8, 8, 4))
    assert picked["source_id"].tolist() == ["c"] and scanned == 4
    assert regions[0].sum() == 2 * 8 * 4 and lungs[0].sum() == 8 * 8 * 4
    share, volume = at.region_score(np.where(regions[0], 3.0, 1.0), regions[0], lungs[0])
    assert volume == pytest.approx(0.25) and share == pytest.approx(3 * 64 / (3 * 64 + 192))


def test_region_crops_stops_at_the_limit(tmp_path):
    emph = np.full((8, 8, 4), 1 << at.EMPHYSEMA_BIT)
    rows = pd.DataFrame([_crop_row(tmp_path, n, emph) for n in "abc"])
    picked, regions, _, scanned = at.region_crops(rows, tmp_path, (1, 1, 1), (8, 8, 4), limit=2)
    assert picked["source_id"].tolist() == ["a", "b"] and len(regions) == 2 and scanned == 2
