"""The model-family registry (medsynth.families): lookup, stage checks, dispatch of train/sample/edit."""
import numpy as np
import pandas as pd
import pytest
import torch

from medsynth import families
from medsynth.errors import MedsynthError


def test_kind_defaults_to_ldm2d_and_unknown_kinds_are_named():
    assert families.family_of({"dataset": "x"}).kind == "ldm2d"
    assert families.family_of({"kind": "ldm2d"}).stages == ("vae", "diffusion")
    with pytest.raises(MedsynthError, match="unknown model kind 'gan9d'.*known kinds: .*ldm2d"):
        families.family_of({"kind": "gan9d"})


def test_stage_folders_and_markers_of_ldm2d_match_its_rules():
    fam = families.family("ldm2d")
    assert fam.marker("vae") == "vae/config.json" and fam.marker("diffusion") == "pipeline/unet/config.json"
    assert fam.sample_dir == "pipeline"
    with pytest.raises(MedsynthError, match="no training stage 'tokens'; its stages: vae, diffusion"):
        fam.stage_dir("tokens")


def test_registering_a_kind_twice_is_refused():
    with pytest.raises(MedsynthError, match="registered twice"):
        families.register(families.Family(kind="ldm2d", module="x", stages=("a",)))


def test_launch_names_the_family_stage_inputs_and_mixed_precision(tmp_path):
    from medsynth.training import launch

    args = launch.stage_arguments("diffusion", tmp_path / "m.json", tmp_path / "m.parquet", tmp_path, tmp_path / "w",
                                  tmp_path / "o", tmp_path / "s.json", 3, inputs={"vae": tmp_path / "vae"})
    assert args[-2:] == ["--input", f"vae={tmp_path / 'vae'}"] and args[0] == "diffusion"
    assert launch.mixed_precision({"diffusion": {"train": {"mixed_precision": "bf16"}}}, "diffusion") == "bf16"
    assert launch.mixed_precision({}, "vae") == "no"
    with pytest.raises(MedsynthError, match="no training stage 'tokens'"):
        launch.run_stage("tokens", {"kind": "ldm2d"}, tmp_path / "m.parquet", tmp_path, tmp_path / "w",
                         tmp_path / "o", tmp_path / "s.json", 0)


def _tiny_pipeline(folder):
    from diffusers import DDIMScheduler

    from _engine_fixtures import tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae
    from medsynth.pipeline_io import save_pipeline

    tok = tiny_tokenizer()
    save_pipeline(folder, tiny_vae(), tiny_unet(), tiny_text_encoder(tok), tok,
                  DDIMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2"))
    return folder


def test_ldm2d_sample_and_edit_through_the_registry_are_seeded_per_row(tmp_path):
    from PIL import Image

    fam = families.family("ldm2d")
    pipe = fam.load(_tiny_pipeline(tmp_path / "pipe"))
    spec = {"steps": 3, "guidance_scale": 2.0, "batch_size": 2}
    table = pd.DataFrame({"file": ["a.png", "b.png", "c.png"], "prompt": ["effusion", "normal", "effusion"],
                          "seed": [1, 2, 1]})
    out = fam.sample(pipe, table, tmp_path / "s", spec, tmp_path)
    assert list(out["sampler"]) == ["ddim"] * 3 and (out["steps"] == 3).all()
    imgs = [torch.from_numpy(np.asarray(Image.open(tmp_path / "s" / f))) for f in table["file"]]
    assert torch.equal(imgs[0], imgs[2]) and not torch.equal(imgs[0], imgs[1])  # same (prompt, seed) -> same image

    edits = pd.DataFrame({"file": ["e0.png", "e1.png", "e2.png"], "source_image": ["s/b.png"] * 3,
                          "prompt": ["effusion"] * 3, "seed": [5, 5, 5], "strength": [0.0, 1.0, 1.0]})
    with pytest.raises(MedsynthError, match="runs no denoising step"):
        fam.edit(pipe, edits, tmp_path / "e", spec, tmp_path)
    edits = edits.assign(strength=[0.5, 1.0, 1.0])
    done = fam.edit(pipe, edits, tmp_path / "e", spec, tmp_path)
    assert len(done) == 3 and all((tmp_path / "e" / f).is_file() for f in edits["file"])
    e = [torch.from_numpy(np.asarray(Image.open(tmp_path / "e" / f))) for f in edits["file"]]
    assert torch.equal(e[1], e[2]) and not torch.equal(e[0], e[1])
    with pytest.raises(MedsynthError, match="source image\\(s\\) missing"):
        fam.edit(pipe, edits.assign(source_image="nope.png"), tmp_path / "e", spec, tmp_path)


def test_a_finished_stage_drops_its_checkpoints_only_when_asked(tmp_path, monkeypatch):
    from medsynth.training import launch

    def fake_stage(stage, model_cfg, manifest, results, work, out, summary, seed, inputs, gpus, log):
        for sub in ("checkpoints/step-000002", "best", "tensorboard"):
            (work / sub).mkdir(parents=True, exist_ok=True)
            (work / sub / "w.safetensors").write_bytes(b"0" * 100)
        return {"steps": 2}

    monkeypatch.setattr(launch, "_run_stage", fake_stage)
    args = ("vae", {}, tmp_path / "m.parquet", tmp_path, tmp_path / "w", tmp_path / "o", tmp_path / "s.json", 0)
    assert launch.run_stage(*args) == {"steps": 2} and (tmp_path / "w" / "checkpoints").is_dir()
    launch.run_stage(*args, keep_checkpoints=False)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["tensorboard"]
