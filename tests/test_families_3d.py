"""The 3D families (ddpm3d, pix2pix3d) through the registry: build, one train step, save -> load -> same output,
resume equals an uninterrupted run (CPU, tiny volumes)."""
import numpy as np
import pandas as pd
import pytest
import torch

from medsynth.errors import MedsynthError
from medsynth.families import StageJob, family, family_of
from medsynth.families import volume3d as v3

SIZE = (16, 16, 8)


@pytest.fixture
def crops(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        labels = rng.integers(0, 4, SIZE)
        mask = (labels[None] == np.arange(4).reshape(-1, 1, 1, 1)).astype(np.uint8)
        image = (0.2 + 0.5 * (labels > 0) + 0.05 * rng.random(SIZE))[None].astype(np.float16)
        path = tmp_path / "crops" / f"c{i}.npz"
        path.parent.mkdir(exist_ok=True)
        np.savez_compressed(path, image=image, mask=mask)
        rows.append({"id": f"c{i}", "split": "train" if i < 3 else "test", "image": f"crops/c{i}.npz",
                     "mask": f"crops/c{i}.npz",
                     "prompt": f"Lung CT scan : Smoking status: {'smoker' if i % 2 else 'non-smoker'}."})
    return tmp_path, pd.DataFrame(rows)


TEXT = {"name": "embedded:minilm", "random_init": True, "extraction": "mean", "max_length": 16}


def entry(kind, text=True, steps=2, **extra):
    train = {"max_steps": steps, "batch_size": 2, "learning_rate": 1e-3, "checkpoint_every": 1,
             "progress_bar": False, **extra}
    block = {"channels": [4, 8], "num_head_channels": 4, "norm_num_groups": 4, "train": train}
    cfg = {"kind": kind, "dataset": "d"}
    if kind == "ddpm3d":
        cfg["ddpm"] = {**block, "num_train_timesteps": 20, "n_dfblocks": 1}
    else:
        cfg["pix2pix"] = {**block, "discriminator": {"channels": 4, "num_layers": 1}}
    if text:
        cfg["text_encoder"] = dict(TEXT)
    return cfg


def train(cfg, crops, work, out, seed=0):
    results, manifest = crops
    stage = family_of(cfg).stages[0]
    torch.manual_seed(seed)  # the random-init text encoder draws from torch's RNG
    return family_of(cfg).train_stage(stage, StageJob(cfg, manifest, results, work, out, seed))


def sample_table(manifest):
    t = manifest[manifest.split == "test"].assign(seed=3).reset_index(drop=True)
    return t.assign(file=[f"{i:05d}.npz" for i in range(len(t))])


@pytest.mark.parametrize("kind,text", [("ddpm3d", True), ("ddpm3d", False), ("pix2pix3d", True),
                                       ("pix2pix3d", False)])
def test_train_save_load_sample(kind, text, crops, tmp_path):
    cfg = entry(kind, text)
    if kind == "pix2pix3d" and not text:
        cfg["pix2pix"]["adversarial_weight"] = 0.0  # Pure UNet
    out = tmp_path / "out"
    summary = train(cfg, crops, tmp_path / "work", out)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    assert summary["text_dim"] == (384 if text else 0)
    if kind == "pix2pix3d":
        assert summary["adversarial"] == bool(text)
    assert (out / "config.json").is_file() and list(out.glob("*.safetensors"))
    fam = family(kind)
    spec = {"steps": 3, "sampler": "ddim", "batch_size": 2}
    table = sample_table(crops[1])
    a = fam.sample(fam.load(out), table, tmp_path / "s1", spec, crops[0])
    fam.sample(fam.load(out), table, tmp_path / "s2", spec, crops[0])
    with np.load(tmp_path / "s1" / "00000.npz") as x, np.load(tmp_path / "s2" / "00000.npz") as y:
        assert x["image"].shape == (1, *SIZE) and x["mask"].shape == (4, *SIZE)
        assert 0 <= x["image"].min() and x["image"].max() <= 1
        np.testing.assert_array_equal(x["image"], y["image"])  # save -> load -> same output, seeded
    assert a["steps"].iloc[0] == (3 if kind == "ddpm3d" else 1)


def test_text_changes_the_output(crops, tmp_path):
    cfg = entry("pix2pix3d", steps=3)
    train(cfg, crops, tmp_path / "w", tmp_path / "o")
    model = family("pix2pix3d").load(tmp_path / "o")
    masks = v3.table_masks(crops[1].head(1), crops[0])
    a = model.generate(masks, ["Lung CT scan : Smoking status: smoker."])
    b = model.generate(masks, ["Lung CT scan : Gender: Female. Patient age: 80."])
    assert not torch.equal(a, b)


@pytest.mark.parametrize("kind", ["ddpm3d", "pix2pix3d"])
def test_resume_equals_uninterrupted(kind, crops, tmp_path):
    full = train(entry(kind, steps=3), crops, tmp_path / "w1", tmp_path / "o1")
    part = train(entry(kind, steps=3, stop_after=1), crops, tmp_path / "w2", tmp_path / "o2")
    assert part["interrupted"] and not (tmp_path / "o2" / "config.json").exists()
    resumed = train(entry(kind, steps=3), crops, tmp_path / "w2", tmp_path / "o2")
    assert resumed["resumed_from"] == 1
    np.testing.assert_allclose(full["losses"][1:], resumed["losses"], rtol=1e-5)
    from safetensors.torch import load_file
    name = "unet" if kind == "ddpm3d" else "generator"
    wa, wb = load_file(tmp_path / "o1" / f"{name}.safetensors"), load_file(tmp_path / "o2" / f"{name}.safetensors")
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


def test_bad_settings_are_named(crops, tmp_path):
    cfg = entry("ddpm3d")
    cfg["ddpm"]["schedule"] = "quadratic"
    with pytest.raises(MedsynthError, match="ddpm.schedule"):
        train(cfg, crops, tmp_path / "w", tmp_path / "o")
    cfg = entry("ddpm3d")
    cfg["text_encoder"]["extraction"] = "tokens"
    with pytest.raises(MedsynthError, match="pooled"):
        train(cfg, crops, tmp_path / "w", tmp_path / "o")
    with pytest.raises(MedsynthError, match="not a saved"):
        family("ddpm3d").load(tmp_path)
