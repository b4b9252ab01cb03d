"""choksi2025: model assembly, DDIM + classifier-free guidance, pipeline round trip, latent scale, prompt sets,
text-control and quality measurements, and the `choksi2025` Snakemake target on the CI config."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medsynth.errors import MedsynthError
from medsynth.papers import choksi2025 as ch

TINY = {"image_size": 16,
        "vae": {"latent_channels": 8, "block_out_channels": [32, 32], "layers_per_block": 1, "norm_num_groups": 32},
        "unet": {"block_out_channels": [32, 32], "attention_resolutions": [8, 4], "layers_per_block": 1,
                 "attention_head_dim": 8, "norm_num_groups": 16},
        "text_encoder": {"name": "embedded:minilm", "extraction": "tokens", "max_length": 16,
                         "projection": {"kind": "linear", "out_dim": 32}},
        "diffusion": {"num_train_timesteps": 100, "beta_schedule": "linear", "prediction_type": "epsilon"}}


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    te, tok = ch.build_text_encoder(TINY)
    vae = ch.build_vae_from_config(TINY).eval()
    vae.register_to_config(scaling_factor=1.7)
    unet = ch.build_unet_from_config(TINY, te.output_dim).eval()
    with torch.no_grad():  # a fresh U-Net's output layer is zero-initialised: give it weights so text matters
        for p in unet.conv_out.parameters():
            p.normal_(0, 0.2)
    sched = ch.DDIMScheduler.from_config(ch.noise_scheduler(TINY).config)
    return ch.Pipeline(vae, unet, te.eval(), tok, sched)


def test_components_follow_config(pipe):
    assert pipe.vae.config.latent_channels == 8
    assert pipe.unet.config.sample_size == 8 and pipe.unet.config.in_channels == 8  # 16 px / 2
    assert pipe.unet.config.cross_attention_dim == 32 == pipe.text_encoder.output_dim
    assert ch.count_parameters(pipe.text_encoder.projection) == 384 * 32 + 32


def test_guidance_is_applied_and_deterministic(pipe):
    prompts, seeds = ["Large right pleural effusion."], [3]
    g1 = ch.sample(pipe, prompts, seeds, steps=3, guidance_scale=1.0)
    g4 = ch.sample(pipe, prompts, seeds, steps=3, guidance_scale=4.0)
    assert g1.shape == (1, 1, 16, 16) and g1.min() >= -1 and g1.max() <= 1
    assert not torch.allclose(g1, g4, atol=1e-4)                 # the guided estimate is what gets stepped
    again = ch.sample(pipe, ["x", *prompts], [9, *seeds], steps=3, guidance_scale=4.0)[1:]
    assert torch.allclose(again, g4, atol=1e-5)                  # image depends on its own seed and prompt only
    g0 = ch.sample(pipe, prompts, seeds, steps=3, guidance_scale=0.0)
    null = ch.sample(pipe, [""], seeds, steps=3, guidance_scale=1.0)
    assert torch.allclose(g0, null, atol=1e-5)                   # w = 0 is exactly the unconditional model
    with pytest.raises(MedsynthError):
        ch.sample(pipe, prompts, [1, 2], steps=3)


def test_pipeline_round_trip(pipe, tmp_path):
    ch.save_pipeline(tmp_path, pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer, pipe.scheduler)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ch.load_pipeline(tmp_path)
    assert loaded.vae.config.scaling_factor == pytest.approx(1.7)
    a = ch.sample(pipe, ["Normal chest X-ray."], [5], steps=2, guidance_scale=3.0)
    b = ch.sample(loaded, ["Normal chest X-ray."], [5], steps=2, guidance_scale=3.0)
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(MedsynthError, match="lacks"):
        ch.load_pipeline(tmp_path / "unet")


def _png_dataset(root: Path, n: int = 12) -> pd.DataFrame:
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        yy, xx = np.mgrid[:16, :16]
        img = (120 + 80 * np.sin(xx / (2 + i % 3)) + rng.normal(0, 5, (16, 16))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i}.png")
        rows.append({"id": f"r{i}", "image": f"{i}.png", "split": "train" if i < 9 else "val",
                     "prompt": f"FINDINGS: case {i % 3}. IMPRESSION: none.", "Pleural Effusion": float(i % 2)})
    return pd.DataFrame(rows)


def test_vae_stage_measures_its_own_latent_scale(tmp_path):
    df = _png_dataset(tmp_path)
    cfg = {**TINY, "vae": {**TINY["vae"], "train": {"max_steps": 2, "batch_size": 4, "validate_every": 1,
                                                     "checkpoint_every": 10}}}
    summary = ch.train_vae_stage(df, tmp_path, cfg, tmp_path / "work", tmp_path / "vae", seed=0)
    from diffusers import AutoencoderKL
    from medsynth.models.autoencoder import measure_scaling_factor

    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert vae.config.scaling_factor == pytest.approx(summary["scaling_factor"])
    assert summary["scaling_factor"] != pytest.approx(0.18215, abs=1e-3)
    train = ch.load_images([tmp_path / p for p in df["image"][:9]], 16)
    assert train.min() < -0.2 and train.max() <= 1.0            # [-1, 1], not [0, 1]
    remeasured = measure_scaling_factor(vae, [train], seed=0)
    assert remeasured == pytest.approx(summary["scaling_factor"], rel=1e-4)
    assert summary["restored_best"] and len(summary["val_loss"]) == 2 and summary["n_val"] == 3


def test_prompt_sets():
    t = ch.resolve_prompt_set({"prompts": ["a", "b"], "n_per_prompt": 2, "seed": 5})
    assert t["prompt"].tolist() == ["a", "a", "b", "b"] and t["seed"].tolist() == [5, 6, 5, 6]
    df = pd.DataFrame({"id": ["x", "y", "z"], "image": ["1.png", "2.png", "3.png"], "split": ["train", "val", "test"],
                       "prompt": ["p1", "p2", "p3"], "source": ["/raw/1.dcm"] * 3, "Edema": [0.0, 1.0, 0.0]})
    s = ch.resolve_prompt_set({"splits": ["val", "test"], "seed": 1}, df)
    assert s["source_id"].tolist() == ["y", "z"] and s["source_image"].tolist() == ["2.png", "3.png"]
    assert "source" not in s and s["Edema"].tolist() == [1.0, 0.0]
    with pytest.raises(MedsynthError):
        ch.resolve_prompt_set({"prompts": ["a"], "splits": ["val"]}, df)
    with pytest.raises(MedsynthError, match="no rows"):
        ch.resolve_prompt_set({"splits": ["test"]}, df[df["split"] == "train"])


def test_region_effect_and_quality_cells():
    normal = np.full((2, 8, 8), 100, np.uint8)
    finding = normal.copy()
    finding[:, 4:, :4] = 160                                     # change only in the lower-left quadrant
    region = np.zeros((8, 8), bool)
    region[4:, :4] = True
    e = ch.region_effect(normal, finding, region)
    assert e["mean_abs_diff_inside"] == 60 and e["mean_abs_diff_outside"] == 0 and e["region_fraction"] == 0.25
    with pytest.raises(MedsynthError):
        ch.region_effect(normal, finding, np.zeros((8, 8), bool))
    big = np.kron(finding, np.ones((1, 2, 2), np.uint8))         # SSIM's 11x11 window needs >= 11 px
    vals = ch.quality_values(big, big)
    assert vals["SSIM"][0] == pytest.approx(1.0) and vals["SSIM"][2] == 2
    cells = ch.quality_cells(vals, {"dataset": "d", "n": 2, "method": "", "scale": "ci", "seed": 0})
    assert [c["column"] for c in cells] == ch.QUALITY_COLUMNS and all(c["row"] == ch.ROW for c in cells)
    with pytest.raises(MedsynthError):
        ch.quality_values(big, big[:1])
    with pytest.raises(MedsynthError, match="11x11"):
        ch.quality_values(finding, finding)


def test_classifier_auc():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], float)
    p = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.2], [0.1, 0.4]])
    out = ch.classifier_auc(y, p, ["Pleural Effusion", "Edema"])
    assert out["Pleural Effusion"]["auc"] == 1.0 and out["Edema"]["auc"] is None
