"""Family vq_ar: VQ tokenizer (VQModel + PatchDiscriminator) and an LLM with image tokens, on a tiny random Llama."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medsynth.errors import MedsynthError
from medsynth.families import StageJob, family

PROMPTS = ["large right pleural effusion", "no acute findings, clear lungs", "left lower lobe opacity",
           "cardiomegaly with small effusion"]


def _cohort(root, n=8, size=16):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        img = (rng.random((size, size)) * 255).astype(np.uint8)
        img[: size // 2] //= 1 + i % 2          # two visual classes
        Image.fromarray(img).save(root / f"{i}.png")
        rows.append({"id": f"p{i}", "split": "train" if i < 6 else "test", "image": f"{i}.png",
                     "prompt": PROMPTS[i % 4]})
    return pd.DataFrame(rows)


def _cfg(**lm_train):
    train = {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "checkpoint_every": 1, "progress_bar": False,
             "lr_scheduler": "constant"}
    return {"kind": "vq_ar", "image_size": 16,
            "vq": {"block_out_channels": [8, 8], "num_vq_embeddings": 16, "vq_embed_dim": 4, "latent_channels": 4,
                   "norm_num_groups": 4, "discriminator": {"channels": 8, "layers": 1}, "adv_weight": 0.1,
                   "train": train},
            "lm": {"llm": {"name": "random:tiny", "hidden_size": 32, "layers": 2, "heads": 2},
                   "max_text_tokens": 6, "train_layers": 1, "train": {**train, **lm_train}}}


def _train(tmp_path, cfg, name="m", stages=("vq", "lm")):
    df = _cohort(tmp_path)
    fam = family("vq_ar")
    root = tmp_path / name
    summaries = {}
    for stage in stages:
        job = StageJob(model_cfg=cfg, manifest=df, results=tmp_path, work=root / "work" / stage, out=root / stage,
                       inputs={"vq": root / "vq"} if stage == "lm" else {})
        summaries[stage] = fam.train_stage(stage, job)
    return fam, root, summaries


def test_vq_ar_trains_saves_loads_and_samples_seeded_per_row(tmp_path):
    fam, root, s = _train(tmp_path, _cfg())
    assert s["vq"]["steps"] == 2 and s["vq"]["tokens_per_image"] == 64 and s["vq"]["codebook_size"] == 16
    assert s["lm"]["steps"] == 2 and np.isfinite(s["lm"]["train_loss"]).all()
    assert (root / "vq" / "diffusion_pytorch_model.safetensors").is_file()
    assert list((root / "lm" / "lm").glob("*.safetensors")) and not list((root / "lm").rglob("*.bin"))
    model = fam.load(root / "lm")
    meta = model.meta
    assert meta["vocab_size"] == model.lm.get_input_embeddings().weight.shape[0] == meta["image_token_base"] + 18
    table = pd.DataFrame({"prompt": ["large right pleural effusion"] * 2 + ["clear lungs"],
                          "seed": [3, 4, 3], "file": ["a.png", "b.png", "c.png"]})
    out = fam.sample(model, table, tmp_path / "s1", {"batch_size": 2}, tmp_path)
    assert out["tokens_per_image"].tolist() == [64] * 3
    imgs = {f: np.asarray(Image.open(tmp_path / "s1" / f)) for f in table["file"]}
    assert imgs["a.png"].shape == (16, 16)
    # row 0 alone, in another batch, gives the same image (seeded per row, layout independent of the batch)
    fam.sample(model, table.iloc[[0]], tmp_path / "s2", {"batch_size": 1}, tmp_path)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s2" / "a.png")), imgs["a.png"])
    assert not np.array_equal(imgs["a.png"], imgs["b.png"])  # another seed, another draw

    from medsynth.families.vq_ar import generate_codes
    codes = generate_codes(model, ["x", "y"], [0, 1])
    assert codes.shape == (2, 64) and int(codes.min()) >= 0 and int(codes.max()) < 16


def test_lm_resume_equals_uninterrupted(tmp_path):
    cfg = _cfg()
    _, root_a, _ = _train(tmp_path, cfg, "a")
    stopped = _cfg(stop_after=1)
    fam, root_b, s = _train(tmp_path, stopped, "b")
    assert s["lm"]["steps"] == 1
    s2 = fam.train_stage("lm", StageJob(model_cfg=stopped | {"lm": {**stopped["lm"], "train": cfg["lm"]["train"]}},
                                        manifest=_cohort(tmp_path), results=tmp_path, work=root_b / "work" / "lm",
                                        out=root_b / "lm", inputs={"vq": root_b / "vq"}))
    assert s2["resumed_from"] == 1 and s2["steps"] == 2
    from safetensors.torch import load_file
    a = load_file(str(next((root_a / "lm" / "lm").glob("*.safetensors"))))
    b = load_file(str(next((root_b / "lm" / "lm").glob("*.safetensors"))))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_vq_discriminator_losses_move_only_their_own_network():
    from medsynth.families.vq_ar import VQGANLoss, build_discriminator, build_vq

    cfg = _cfg()
    vq, disc = build_vq(cfg), build_discriminator(cfg)
    loss_mod = VQGANLoss(vq, disc, adv_weight=1.0)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    # generator adversarial term alone: no gradient on the discriminator
    out = vq(images).sample
    frozen = {k: v.detach() for k, v in disc.named_parameters()}
    torch.func.functional_call(disc, frozen, (out,))[-1].mean().backward()
    assert all(p.grad is None for p in disc.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vq.parameters())
    loss, stats = loss_mod(images)
    assert torch.isfinite(loss) and {"l1", "commit", "g_adv", "d_adv"} <= set(stats)


def test_llm_loader_errors_name_the_fix(tmp_path):
    from medsynth.models.llm import embedded_folder, load_causal_lm

    with pytest.raises(MedsynthError, match="unknown embedded LLM"):
        embedded_folder("nope")
    with pytest.raises(MedsynthError, match="revision"):
        load_causal_lm({"name": "someone/some-llm"})
    with pytest.raises(MedsynthError, match="no training stage"):
        family("vq_ar").check_stage("diffusion")


def test_classifier_free_guidance_needs_prompt_dropout_and_mixes_the_blank_prompt_stream(tmp_path):
    from medsynth.families.vq_ar import generate_codes

    fam, root, _ = _train(tmp_path, _cfg(), "plain")
    table = pd.DataFrame({"prompt": ["large right pleural effusion"], "seed": [3], "file": ["a.png"]})
    with pytest.raises(MedsynthError, match="prompt_dropout"):
        fam.sample(fam.load(root / "lm"), table, tmp_path / "s0", {"guidance_scale": 3.0}, tmp_path)

    cfg = _cfg()
    cfg["lm"]["prompt_dropout"] = 0.5
    fam, root, s = _train(tmp_path, cfg, "cfg")
    model = fam.load(root / "lm")
    assert model.meta["prompt_dropout"] == 0.5
    prompts, seeds = ["large right pleural effusion", "left lower lobe opacity"], [5, 6]
    # w = 0 is the blank-prompt stream alone: the same draws as sampling the blank prompt unguided
    assert torch.equal(generate_codes(model, prompts, seeds, guidance_scale=0.0),
                       generate_codes(model, ["", ""], seeds))
    guided = generate_codes(model, prompts, seeds, guidance_scale=4.0)
    assert not torch.equal(guided, generate_codes(model, prompts, seeds))
    # a row's guided draw does not depend on its batch
    assert torch.equal(generate_codes(model, prompts[1:], seeds[1:], guidance_scale=4.0), guided[1:])
    out = fam.sample(model, table, tmp_path / "s1", {"guidance_scale": 4.0}, tmp_path)
    assert out["guidance_scale"].tolist() == [4.0] and (tmp_path / "s1" / "a.png").is_file()


def test_dead_codes_restart_onto_encoder_latents_reproducibly():
    from medsynth.families.vq_ar import build_vq, encode_codes, restart_dead_codes

    assert build_vq(_cfg()).quantize.legacy is True             # diffusers' default weighting unless asked
    cfg = _cfg()
    cfg["vq"]["quantizer_loss"] = "vqvae"
    vq = build_vq(cfg).eval()
    assert vq.quantize.legacy is False          # codebook term weighted 1, commitment 0.25 (VQ-VAE)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        vq.quantize.embedding.weight[1:] = 1e3     # every code but 0 is dead: all latents map to code 0
    assert encode_codes(vq, images).unique().tolist() == [0]
    book = vq.quantize.embedding.weight.detach().clone()
    n = restart_dead_codes(vq, images, torch.Generator().manual_seed(1))
    assert n == 15 and encode_codes(vq, images).unique().numel() > 1
    assert torch.equal(vq.quantize.embedding.weight[0], book[0])          # a live code is left alone
    again = build_vq(_cfg()).eval()
    again.load_state_dict({**vq.state_dict(), "quantize.embedding.weight": book})
    restart_dead_codes(again, images, torch.Generator().manual_seed(1))
    assert torch.equal(again.quantize.embedding.weight, vq.quantize.embedding.weight)


def test_text_reliance_compares_own_other_and_blank_reports(tmp_path):
    from medsynth.families.vq_ar import encode_codes, text_reliance

    fam, root, s = _train(tmp_path, _cfg(), "tr")
    assert s["lm"]["text_reliance"]["n"] == 2 and s["lm"]["text_reliance"]["split"] == "val+test"   # rows 6, 7
    model = fam.load(root / "lm")
    codes = encode_codes(model.vq, torch.rand(3, 1, 16, 16) * 2 - 1)
    same = text_reliance(model.lm, model.meta, model.tokenizer, ["clear lungs"] * 3, codes)
    assert set(same) == {"nll_own_report", "nll_other_report", "nll_blank"}
    assert same["nll_own_report"] == same["nll_other_report"] and np.isfinite(same["nll_blank"])
    mixed = text_reliance(model.lm, model.meta, model.tokenizer, PROMPTS[:3], codes)
    assert mixed["nll_own_report"] != mixed["nll_other_report"]
    assert mixed["nll_blank"] == pytest.approx(same["nll_blank"])   # the blank arm ignores the reports


def test_keypatch_prompting_puts_the_named_words_key_patch_codes_before_the_image(tmp_path):
    from medsynth.families.vq_ar import generate_codes, keypatch_codes, prompt_prefix

    book = {"effusion": {"category": "pathology", "codes": [3, 4, 5]}, "pleural": {"category": "anatomy",
                                                                                   "codes": [7, 8]},
            "opacity": {"category": "pathology", "codes": [9]}}
    # pathology words first, text order within a category, negated clauses ignored, capped
    assert keypatch_codes("right pleural effusion with opacity", book, 2, 16) == [3, 4, 9, 7, 8]
    assert keypatch_codes("no pleural effusion. clear lungs", book, 2, 16) == []
    assert keypatch_codes("pleural effusion", book, 2, 3) == [3, 4, 7]

    cfg = _cfg()
    cfg["lm"]["keypatch_prompt"] = {"tokens": 4, "per_word": 2, "top": 3}
    fam, root, s = _train(tmp_path, cfg, "kp")
    model = fam.load(root / "lm")
    kp = model.meta["keypatch_prompt"]
    assert kp["tokens"] == 4 and "effusion" in kp["codes"]
    assert all(0 <= c < 16 for w in kp["codes"].values() for c in w["codes"])
    ids, mask = prompt_prefix(model.tokenizer, ["large right pleural effusion", "clear lungs"], model.meta)
    assert ids.shape == (2, 6 + 4)
    base = model.meta["image_token_base"]
    want = keypatch_codes("large right pleural effusion", kp["codes"], 2, 4)
    assert want and ids[0, -len(want):].tolist() == [c + base for c in want] and mask[0, -len(want):].all()
    assert not mask[1, 6:].any()                       # a prompt naming no vocabulary word gets empty slots
    codes = generate_codes(model, ["large right pleural effusion"], [0])
    assert codes.shape == (1, 64) and np.isfinite(s["lm"]["text_reliance"]["nll_own_report"])
