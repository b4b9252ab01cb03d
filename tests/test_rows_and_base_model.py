"""Model entries on a selected subset with their own prompts (training.rows) and starting from another entry's
trained pipeline (`pretrained: {model: <entry>}`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _engine_fixtures import ddpm, tiny_images, tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae
from medsynth.errors import MedsynthError
from medsynth.training.rows import select_rows
from medsynth.training.stages import base_model, pipeline_dir, resolve_pretrained

SPEC = {"per_label": {"No Finding": 3, "Pleural Effusion": 2}, "val_per_label": {"No Finding": 1, "Pleural Effusion": 1},
        "prompts": {"No Finding": "a photo of a lung xray",
                    "Pleural Effusion": "a photo of a lung xray with a visible pleural effusion"}}


def _manifest():
    rows = []
    for i in range(20):
        split = "train" if i < 14 else "val"
        nf, pe = (1.0, 0.0) if i % 2 == 0 else (0.0, 1.0 if i % 4 == 1 else 0.0)
        if i == 3:  # effusion and another label positive in one image; uncertain effusion elsewhere
            pe = 1.0
        if i == 7:
            pe = -1.0
        rows.append({"id": f"r{i:02d}", "split": split, "prompt": f"report {i}", "image": f"img/{i}.png",
                     "No Finding": nf, "Pleural Effusion": pe})
    return pd.DataFrame(rows)


def test_rows_are_seeded_per_label_with_their_prompts_and_recorded():
    df = _manifest()
    rows, rec = select_rows(df, SPEC, seed=0)
    again, _ = select_rows(df, SPEC, seed=0)
    pd.testing.assert_frame_equal(rows, again)
    tr = rows[rows["split"] == "train"]
    assert tr["selected_for"].value_counts().to_dict() == {"No Finding": 3, "Pleural Effusion": 2}
    assert set(rows.loc[rows["selected_for"] == "Pleural Effusion", "prompt"]) == {SPEC["prompts"]["Pleural Effusion"]}
    assert (rows.loc[rows["selected_for"] == "No Finding", "No Finding"] == 1).all()
    assert (rows.loc[rows["selected_for"] == "Pleural Effusion", "Pleural Effusion"] == 1).all()  # -1 is not positive
    assert rows["original_prompt"].str.startswith("report").all() and rows["id"].is_unique
    assert rec["splits"]["train"]["No Finding"]["ids"] == tr.loc[tr["selected_for"] == "No Finding", "id"].tolist()
    assert rec["shortfalls"] == [] and rec["n_rows"] == {"train": 5, "val": 2}
    other, _ = select_rows(df, {**SPEC, "seed": 5})
    assert other["id"].tolist() != rows["id"].tolist()  # the seed decides which images


def test_rows_shortfall_and_all_and_list_prompts():
    df = _manifest()
    spec = {"per_label": {"Pleural Effusion": 50, "No Finding": None}, "val_per_label": {"No Finding": None},
            "prompts": {"Pleural Effusion": "effusion", "No Finding": ["a chest x-ray", "a lung xray"]}}
    rows, rec = select_rows(df, spec)
    tr = rows[rows["split"] == "train"]
    n_pe = int(((df["split"] == "train") & (df["Pleural Effusion"] == 1)).sum())
    assert (tr["selected_for"] == "Pleural Effusion").sum() == n_pe < 50
    assert len(rec["shortfalls"]) == 1 and "asked 50" in rec["shortfalls"][0] and f"took {n_pe}" in rec["shortfalls"][0]
    # null = every remaining positive; an image taken for an earlier label is not taken twice
    n_nf = int(((df["split"] == "train") & (df["No Finding"] == 1) & (df["Pleural Effusion"] != 1)).sum())
    assert (tr["selected_for"] == "No Finding").sum() == n_nf
    assert set(tr.loc[tr["selected_for"] == "No Finding", "prompt"]) <= set(spec["prompts"]["No Finding"])
    with pytest.raises(MedsynthError, match="no prompt for label"):
        select_rows(df, {"per_label": {"No Finding": 1}, "prompts": {}})
    with pytest.raises(MedsynthError, match="not in the dataset"):
        select_rows(df, {"per_label": {"Edema": 1}, "prompts": {"Edema": "x"}})
    with pytest.raises(MedsynthError, match="nothing selected in the val split"):
        select_rows(df[df["split"] == "train"], SPEC)


def test_exclusive_rows_skip_images_positive_for_another_label():
    df = _manifest()
    df.loc[df["id"] == "r01", "No Finding"] = 1.0  # r01: effusion and no finding (contradictory) -> excluded
    rows, _ = select_rows(df, {**SPEC, "per_label": {"No Finding": None, "Pleural Effusion": None},
                               "exclusive": True})
    assert "r01" not in rows["id"].tolist()


def test_pretrained_from_another_entry_resolves_to_its_pipeline(tmp_path):
    cfg = {"pretrained": {"model": "base", "max_length": 16}, "diffusion": {}}
    out = resolve_pretrained(cfg, tmp_path)
    assert out["pretrained"]["name"] == str(tmp_path / "models" / "base" / "pipeline") == str(pipeline_dir(tmp_path, "base"))
    assert out["pretrained"]["max_length"] == 16 and cfg["pretrained"] == {"model": "base", "max_length": 16}
    assert base_model(out) == "base" and resolve_pretrained(out, tmp_path / "elsewhere") == out
    assert resolve_pretrained({"pretrained": {"name": "hub/id"}}, tmp_path)["pretrained"] == {"name": "hub/id"}
    assert base_model({"vae": {}}) is None and base_model(cfg) == "base"
    with pytest.raises(MedsynthError, match="both `name`"):
        base_model({"pretrained": {"name": "x", "model": "base"}})


def test_entry_fine_tunes_from_another_entrys_pipeline(tmp_path):
    """A `pretrained: {model: base}` entry loads the base entry's saved pipeline (VAE, U-Net, text encoder) and
    fine-tunes it; max_steps 0 saves the starting model unchanged (chambon2022's untrained 'no projection')."""
    from medsynth.pipeline_io import load_pipeline, save_pipeline
    from medsynth.sampling import make_scheduler
    from medsynth.training.stages import train_diffusion_stage

    tok = tiny_tokenizer()
    te, vae, unet = tiny_text_encoder(tok), tiny_vae(), tiny_unet()
    save_pipeline(pipeline_dir(tmp_path, "base"), vae, unet, te, tok, make_scheduler("ddim", ddpm().config))
    imgs = tiny_images(6).images
    rows = []
    for i, split in enumerate(["train"] * 4 + ["val"] * 2):
        Image.fromarray(((imgs[i, 0].numpy() + 1) * 127.5).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"split": split, "image": f"{i}.png", "prompt": "a photo of a lung xray"})
    df = pd.DataFrame(rows)
    base_unet = {k: v.clone() for k, v in unet.state_dict().items()}
    for steps in (0, 2):
        cfg = {"dataset": "d", "pretrained": {"model": "base", "max_length": 16},
               "diffusion": {"train": {"strategy": "finetune_unet", "max_steps": steps, "batch_size": 2,
                                       "validate_every": 0, "progress_bar": False, "checkpoint_every": 2}}}
        out = tmp_path / f"ft{steps}"
        summary = train_diffusion_stage(df, tmp_path, cfg, None, tmp_path / f"work{steps}", out, seed=0)
        assert summary["base_model"] == "base" and summary["steps"] == steps and summary["image_size"] == 32
        tuned = load_pipeline(out).unet.state_dict()
        same = all(torch.equal(tuned[k], base_unet[k]) for k in base_unet)
        assert same == (steps == 0)
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state()
    GradientState._reset_state()
