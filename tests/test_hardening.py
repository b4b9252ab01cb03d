"""Real-data hardening (issue 16): bad weights files, bad inputs, pseudonymisation, config errors."""
import pickle

import pandas as pd

import pytest

from medsynth.errors import MedsynthError


@pytest.mark.parametrize("name", ["garbage.pth", "garbage.safetensors"])
def test_garbage_inception_weights_name_the_file_and_never_suggest_unsafe_loading(tmp_path, name):
    from medsynth.metrics import inception as I

    bad = tmp_path / name
    bad.write_bytes(b"\x80\x04not really a checkpoint" * 10)
    with pytest.raises(MedsynthError) as err:
        I.load_backbone("inception-fid", weights=bad, dims=64)
    msg = str(err.value)
    assert str(bad) in msg and "\n" not in msg
    assert "weights_only" not in msg


def test_pickled_code_in_weights_is_refused_not_run(tmp_path):
    from medsynth.safe_load import load_tensor_file

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(MedsynthError, match="evil.pth"):
        load_tensor_file(bad, "Inception")


PP = {"preprocess": {"image_size": 16, "resize": "pad", "interpolation": "area", "bit_depth": 8,
                     "frontal_only": False, "clahe": {"enabled": False}}}


def test_mimic_missing_jpeg_is_a_recorded_reject_and_the_rest_goes_on(tmp_path):
    from fixtures_datasets import make_mimic
    from medsynth.adapters import AdapterContext, build_manifest
    from medsynth.preprocess import process_shard

    root = make_mimic(tmp_path / "mimic")
    (root / "files/p11/p11000123/s50000003/d-0005.jpg").unlink()
    ctx = AdapterContext(name="mimic_cxr", adapter="mimic_cxr", cfg={"root": str(root)}, key=b"k",
                         results=tmp_path / "results")
    raw = build_manifest(ctx)
    done, rejects = process_shard("image", raw, PP, tmp_path / "results/preprocessed/m/shards/00000",
                                  tmp_path / "results")
    assert len(done) == len(raw) - 1
    assert rejects["reason"].tolist() == ["missing file"]


def test_shareable_dataset_outputs_hold_no_original_identifiers(tmp_path):
    """MIMIC's paths name subject (p10000032), study (s50414267) and dicom ids: after the merge, the shareable
    manifest and rejects carry pseudonymous ids only; the private raw manifest keeps the id -> source mapping."""
    from fixtures_datasets import MIMIC_LAYOUT, make_mimic
    from medsynth.adapters import AdapterContext, build_manifest
    from medsynth.preprocess import process_shard
    from medsynth.sharding import merge_shards

    root = make_mimic(tmp_path / "mimic")
    (root / "files/p11/p11000123/s50000003/d-0005.jpg").unlink()
    ctx = AdapterContext(name="mimic_cxr", adapter="mimic_cxr", cfg={"root": str(root)}, key=b"k",
                         results=tmp_path / "results")
    raw = build_manifest(ctx)
    shard = tmp_path / "results/preprocessed/m/shards/00000"
    done, rejects = process_shard("image", raw, PP, shard, tmp_path / "results")
    done.to_parquet(shard / "manifest.parquet")
    rejects.to_csv(shard / "rejects.csv", index=False)
    out, rej, _ = merge_shards(raw, [shard])
    shared = out.astype(str).to_csv() + rej.astype(str).to_csv()
    raw_ids = [s for s in MIMIC_LAYOUT] + [st for studies in MIMIC_LAYOUT.values() for st, _ in studies]
    raw_ids += [d for studies in MIMIC_LAYOUT.values() for _, imgs in studies for d, _ in imgs]
    assert not [r for r in raw_ids if r in shared]
    assert str(root) not in shared and len(rej) == 1 and rej["reason"].tolist() == ["missing file"]
    assert set(raw.set_index("id").loc[rej["id"], "source"].str.contains("d-0005"))  # the private mapping


def test_zero_byte_dicom_is_an_empty_file_reject(tmp_path):
    from medsynth.errors import RejectedInput
    from medsynth.preprocess import process_shard
    from medsynth.preprocess.images import load_image, load_levels

    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    for load in (load_image, load_levels):
        with pytest.raises(RejectedInput) as err:  # the library's reject error, never cv2.error
            load(empty)
        assert err.value.reason == "empty file"
    rows = pd.DataFrame({"id": ["a"], "source": [str(empty)], "view": [""], "split": ["train"]})
    _, rejects = process_shard("image", rows, PP, tmp_path / "out", tmp_path)
    assert rejects["reason"].tolist() == ["empty file"]


def test_undecodable_bytes_are_unreadable_not_a_cv2_error(tmp_path):
    from medsynth.errors import RejectedInput
    from medsynth.preprocess.images import load_image

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff" + b"\x00" * 7)
    with pytest.raises(RejectedInput):
        load_image(junk)


# ---------------------------------------------------------------- pseudonymisation of real data
def _real_config(tmp_path, **pseudonym):
    root = tmp_path / "mimic"
    root.mkdir(exist_ok=True)
    return {"results": str(tmp_path / "results"), "pseudonym": {"key": "medsynth-demo-key", **pseudonym},
            "datasets": {"mimic_cxr": {"adapter": "mimic_cxr", "root": str(root)}}}


def test_real_data_refuses_the_public_demo_key(repo, tmp_path, monkeypatch):
    from medsynth import workflow as wf
    from medsynth.ids import resolve_key

    monkeypatch.delenv("MEDSYNTH_PSEUDONYM_KEY", raising=False)
    with pytest.raises(MedsynthError) as err:
        wf.validate_config(_real_config(tmp_path), repo / "schemas" / "config.schema.yaml")
    msg = str(err.value)
    assert "\n" not in msg and "export MEDSYNTH_PSEUDONYM_KEY" in msg and "pseudonym.key_file" in msg
    # the phantom (no real patients) keeps the demo key; a real dataset gets the secret from env or file
    assert resolve_key({"key": "medsynth-demo-key"}) == b"medsynth-demo-key"
    secret = tmp_path / "key.txt"
    secret.write_text("s3cret\n")
    cfg = _real_config(tmp_path, key_file=str(secret))
    wf.validate_config(cfg, repo / "schemas" / "config.schema.yaml")
    assert resolve_key(cfg["pseudonym"], real_data=True) == b"s3cret"
    monkeypatch.setenv("MEDSYNTH_PSEUDONYM_KEY", "from-env")
    assert resolve_key(cfg["pseudonym"], real_data=True) == b"from-env"
    monkeypatch.delenv("MEDSYNTH_PSEUDONYM_KEY")
    secret.write_text("")
    with pytest.raises(MedsynthError, match="pseudonym.key_file.*empty"):
        resolve_key(cfg["pseudonym"], real_data=True)
