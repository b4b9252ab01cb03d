"""choksi2025 through the engine: model assembly from the config entry, DDIM with classifier-free guidance that is
really applied, pipeline round trip, the VAE's own latent scale; the paper's quality/FID cells and classifier AUCs
(the effusion text-control statistic: tests/test_text_control.py; the `choksi2025` target on the CI config:
tests/test_e2e.py)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medsynth.errors import MedsynthError
from medsynth.papers import choksi2025 as ch
from medsynth.pipeline_io import load_pipeline, save_pipeline
from medsynth.sampling import make_scheduler, txt2img
from medsynth.training import stages

TINY = {"image_size": 16,
        "vae": {"latent_channels": 8, "block_out_channels": [32, 32], "layers_per_block": 1, "norm_num_groups": 32},
        "unet": {"block_out_channels": [32, 32], "attention_resolutions": [8, 4], "layers_per_block": 1,
                 "attention_head_dim": 8, "norm_num_groups": 16},
        "text_encoder": {"name": "embedded:minilm", "extraction": "tokens", "max_length": 16,
                         "projection": {"kind": "linear", "out_dim": 32}},
        "diffusion": {"num_train_timesteps": 100, "beta_schedule": "linear", "prediction_type": "epsilon"}}


@pytest.fixture(scope="module")
def comp(tmp_path_factory):
    """The components the diffusion stage assembles from the entry (stages.diffusion_components), around a VAE
    folder that holds its own latent scale."""
    torch.manual_seed(0)
    vae_dir = tmp_path_factory.mktemp("vae")
    vae = stages.build_vae(TINY)
    vae.register_to_config(scaling_factor=1.7)
    vae.save_pretrained(vae_dir, safe_serialization=True)
    c = stages.diffusion_components(TINY, vae_dir)
    with torch.no_grad():  # a fresh U-Net's output layer is zero-initialised: give it weights so text matters
        for p in c["unet"].conv_out.parameters():
            p.normal_(0, 0.2)
    return {k: (c[k].eval() if hasattr(c[k], "eval") else c[k])
            for k in ("vae", "unet", "text_encoder", "tokenizer", "scheduler")}


def _sample(comp, prompts, seeds, w, steps=3, **kw):
    return txt2img(**comp, prompts=prompts, seeds=seeds, num_inference_steps=steps, guidance_scale=w, **kw)


def test_components_follow_config(comp):
    assert comp["vae"].config.latent_channels == 8 and comp["vae"].config.scaling_factor == pytest.approx(1.7)
    assert comp["unet"].config.sample_size == 8 and comp["unet"].config.in_channels == 8  # 16 px / 2
    assert comp["unet"].config.cross_attention_dim == 32 == comp["text_encoder"].output_dim
    assert stages.count_parameters(comp["text_encoder"].projection) == 384 * 32 + 32
    assert type(comp["scheduler"]).__name__ == "DDIMScheduler"
    assert comp["scheduler"].config.prediction_type == "epsilon" and comp["scheduler"].config.num_train_timesteps == 100


def test_guidance_is_applied_and_deterministic(comp):
    prompts, seeds = ["Large right pleural effusion."], [3]
    g1 = _sample(comp, prompts, seeds, 1.0)
    g4 = _sample(comp, prompts, seeds, 4.0)
    assert g1.shape == (1, 1, 16, 16) and g1.min() >= 0 and g1.max() <= 1
    assert not torch.allclose(g1, g4, atol=1e-4)
    again = _sample(comp, ["x", *prompts], [9, *seeds], 4.0)[1:]
    assert torch.allclose(again, g4, atol=1e-5)                  # image depends on its own seed and prompt only
    # the null half is the negative prompt: with the prompt itself there, guidance leaves the conditional model
    assert torch.allclose(_sample(comp, prompts, seeds, 4.0, negative_prompt=prompts[0]), g1, atol=1e-5)
    # the empty prompt (the 10% null prompts of training) guided against itself is the unconditional model
    assert torch.allclose(_sample(comp, [""], seeds, 4.0), _sample(comp, [""], seeds, 1.0), atol=1e-5)
    with pytest.raises(MedsynthError):
        _sample(comp, prompts, [1, 2], 3.0)


def test_the_scheduler_steps_with_the_guided_estimate(comp):
    """eps = eps(null) + w (eps(prompt) - eps(null)) is what DDIM steps with (the public code's defect)."""
    sched = make_scheduler("ddim", comp["scheduler"].config)
    unet_out, stepped = [], []
    step = sched.step
    sched.step = lambda pred, t, latents, **kw: (stepped.append(pred.clone()), step(pred, t, latents, **kw))[1]
    handle = comp["unet"].register_forward_hook(lambda m, args, out: unet_out.append(out[0].clone()))
    try:
        txt2img(**{**comp, "scheduler": sched}, prompts=["Cardiomegaly."], seeds=[4], num_inference_steps=2,
                guidance_scale=4.0)
    finally:
        handle.remove()
    assert len(unet_out) == len(stepped) == 2
    for out, pred in zip(unet_out, stepped):
        null, cond = out.chunk(2)
        assert not torch.allclose(null, cond, atol=1e-4)
        assert torch.allclose(pred, null + 4.0 * (cond - null), atol=1e-5)


def test_pipeline_round_trip(comp, tmp_path):
    save_pipeline(tmp_path / "pipe", comp["vae"], comp["unet"], comp["text_encoder"], comp["tokenizer"],
                  comp["scheduler"])
    assert (tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not [f for f in (tmp_path / "pipe").rglob("*") if f.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    loaded = load_pipeline(tmp_path / "pipe")
    assert loaded.vae.config.scaling_factor == pytest.approx(1.7)
    again = dict(vae=loaded.vae, unet=loaded.unet, text_encoder=loaded.text_encoder, tokenizer=loaded.tokenizer,
                 scheduler=make_scheduler("ddim", loaded.scheduler.config))
    a = _sample(comp, ["Normal chest X-ray."], [5], 3.0, steps=2)
    b = _sample(again, ["Normal chest X-ray."], [5], 3.0, steps=2)
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(MedsynthError, match="not a diffusers pipeline"):
        load_pipeline(tmp_path / "pipe" / "unet")


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
    from diffusers import AutoencoderKL

    from medsynth.models.autoencoder import measure_scaling_factor
    from medsynth.training.data import FileImages

    df = _png_dataset(tmp_path)
    cfg = {**TINY, "vae": {**TINY["vae"], "train": {"max_steps": 2, "batch_size": 4, "validate_every": 1,
                                                     "checkpoint_every": 10}}}
    summary = stages.train_vae_stage(df, tmp_path, cfg, tmp_path / "work", tmp_path / "vae", seed=0)
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert vae.config.scaling_factor == pytest.approx(summary["scaling_factor"])
    assert summary["scaling_factor"] != pytest.approx(0.18215, abs=1e-3)
    train = FileImages([tmp_path / p for p in df["image"][:9]], 16).get(range(9))
    assert train.min() < -0.2 and train.max() <= 1.0            # [-1, 1], not [0, 1]
    remeasured = measure_scaling_factor(vae, [train], seed=0)
    assert remeasured == pytest.approx(summary["scaling_factor"], rel=1e-4)
    assert summary["restored_best"] and len(summary["val_loss"]) == 2 and summary["n_val"] == 3


def test_quality_cells():
    finding = np.full((2, 8, 8), 100, np.uint8)
    finding[:, 4:, :4] = 160
    big = np.kron(finding, np.ones((1, 2, 2), np.uint8))         # SSIM's 11x11 window needs >= 11 px
    vals = ch.quality_values(big, big)
    assert vals["SSIM"][0] == pytest.approx(1.0) and vals["SSIM"][2] == 2
    cells = ch.quality_cells(vals, {"dataset": "d", "n": 2, "method": "", "scale": "ci", "seed": 0})
    assert [c["column"] for c in cells] == ch.QUALITY_COLUMNS and all(c["row"] == ch.ROW for c in cells)
    with pytest.raises(MedsynthError):
        ch.quality_values(big, big[:1])
    with pytest.raises(MedsynthError, match="11x11"):
        ch.quality_values(finding, finding)


def test_fid_cell_is_the_generic_rule_record(tmp_path):
    """The quality table's FID is the generative_metrics record (cached reference statistics), with its provenance,
    and a stand-in backbone is labelled in the cell and on the report page."""
    from PIL import Image

    from medsynth.io import read_json, write_json
    from medsynth.metrics import generative as G
    from medsynth.metrics.fid import InceptionEvaluator
    from medsynth.metrics.inception import BackboneInfo
    from medsynth.report.render import side_by_side, to_markdown

    class Pool(torch.nn.Module):  # a cheap backbone with the Inception interface (features, no logits)
        def forward(self, x):
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1), None

    rng = np.random.default_rng(0)
    for side, n, bright in (("real", 6, 0.0), ("gen", 4, 0.3)):
        (tmp_path / side).mkdir()
        for i in range(n):
            Image.fromarray((np.clip(rng.random((16, 16)) * 0.6 + bright, 0, 1) * 255).astype(np.uint8)).save(
                tmp_path / side / f"{i}.png")
    manifest = pd.DataFrame({"image": [f"real/{i}.png" for i in range(6)],
                             "split": ["train"] * 2 + ["val", "test"] * 2})
    samples = pd.DataFrame({"file": [f"{i}.png" for i in range(4)], "split": ["val", "test"] * 2})
    prov = {"dataset": "phantom_cxr", "split": "val+test", "model": "choksi2025", "scale": "ci", "seed": 0,
            "ddim_steps": 4, "guidance_scale": 3.0, "resolution": "16x16"}
    for name, stand_in in (("toy-random", True), ("toy", False)):
        ev = InceptionEvaluator(Pool(), BackboneInfo(name, "w.safetensors", "a" * 64, "native"), dims=6, is_splits=2)
        G.compute_reference(ev, G.reference_paths(manifest, tmp_path, "val+test"), tmp_path / "ref.npz",
                            "phantom_cxr", "val+test")
        recs = G.evaluate_generated(ev, tmp_path / "ref.npz", G.generated_paths(samples, tmp_path / "gen", "val+test"),
                                    kid_subsets=2, extra={"model": "choksi2025", "promptset": "reports",
                                                          "split": "val+test", "scale": "ci"})
        write_json(recs, tmp_path / "fid.json")
        cell = ch.fid_cell(read_json(tmp_path / "fid.json"), prov, source="eval/generative/x.json")
        pv = cell["provenance"]
        assert (cell["paper"], cell["table"], cell["row"], cell["column"]) == (ch.PAPER, "quality", ch.ROW, "FID")
        assert cell["value"] == pytest.approx(recs["fid"]["value"]) and cell["value"] > 0
        assert pv["backbone"] == name and pv["weights_sha256"] == "a" * 64 and pv["resize_mode"] == ev.resize_mode
        assert pv["n"] == 4 and pv["n_reference"] == 4 and pv["reference_split"] == "val+test"
        assert pv["dataset"] == "phantom_cxr" and pv["model"] == "choksi2025" and pv["ddim_steps"] == 4
        assert pv["source"] == "eval/generative/x.json" and pv["stand_in"] is stand_in
        assert ("STAND-IN" in pv["method"]) is stand_in and "Frechet distance" in pv["method"]
    stand = ch.fid_cell(read_json(tmp_path / "fid.json") | {"fid": {**recs["fid"], "backbone": "inception-random"}},
                        prov)
    assert "†" in to_markdown(ch.PAPER, side_by_side(ch.PAPER, [stand]), "ci", "c")
    with pytest.raises(MedsynthError, match="no 'fid'"):
        ch.fid_cell({"kid": recs["kid"]}, prov)
    with pytest.raises(MedsynthError, match="dataset"):
        ch.fid_cell(recs, {**prov, "dataset": "openi"})


def test_classifier_auc():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], float)
    p = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.2], [0.1, 0.4]])
    out = ch.classifier_auc(y, p, ["Pleural Effusion", "Edema"])
    assert out["Pleural Effusion"]["auc"] == 1.0 and out["Edema"]["auc"] is None
