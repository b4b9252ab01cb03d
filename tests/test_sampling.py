"""Sampling on tiny random models (CPU): samplers, per-image seeds, CFG, diffusers parity, img2img strength and
mask, batched generation to disk, pipeline save/reload, the `medsynth generate` CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image

from _engine_fixtures import (ddpm, save_tiny_stable_diffusion, tiny_images, tiny_text_encoder, tiny_tokenizer,
                              tiny_unet, tiny_vae)
from medsynth import cli
from medsynth.errors import MedsynthError
from medsynth.models.autoencoder import set_scaling_factor
from medsynth.pipeline_io import load_pipeline, save_pipeline
from medsynth.sampling import SCHEDULERS, generate_to_dir, img2img, make_scheduler, txt2img

PROMPTS = ["left pleural effusion", "normal chest x ray", "cardiomegaly"]


def _components(sampler="ddim", projection=None, extraction="tokens"):
    tok = tiny_tokenizer()
    te = tiny_text_encoder(tok, projection=projection, extraction=extraction).eval()
    vae = tiny_vae().eval()
    set_scaling_factor(vae, 0.9)
    return dict(vae=vae, unet=tiny_unet(cross_dim=te.output_dim).eval(), text_encoder=te, tokenizer=tok,
                scheduler=make_scheduler(sampler, ddpm().config))


def _count_unet_calls(unet):
    calls = []
    handle = unet.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[0]))
    return calls, handle


@pytest.mark.parametrize("sampler", sorted(SCHEDULERS))
def test_each_sampler_is_deterministic_and_seed_per_image(sampler):
    comp = _components(sampler)
    batch = txt2img(**comp, prompts=PROMPTS, seeds=[11, 12, 13], num_inference_steps=4, guidance_scale=3.0)
    alone = txt2img(**comp, prompts=PROMPTS[1:2], seeds=[12], num_inference_steps=4, guidance_scale=3.0)
    assert batch.shape == (3, 1, 32, 32) and 0 <= float(batch.min()) and float(batch.max()) <= 1
    assert torch.allclose(batch[1], alone[0], atol=1e-4)  # image depends on its own seed, not on the batch
    other = txt2img(**comp, prompts=PROMPTS[1:2], seeds=[99], num_inference_steps=4, guidance_scale=3.0)
    assert not torch.allclose(other[0], alone[0], atol=1e-3)


def test_ddpm_can_run_every_training_timestep():
    comp = _components("ddpm")
    images = txt2img(**comp, prompts=PROMPTS[:1], seeds=[1], num_inference_steps=100, guidance_scale=1.0)
    assert list(comp["scheduler"].timesteps[[0, -1]]) == [99, 0] and torch.isfinite(images).all()


def test_cfg_runs_one_batched_forward_per_step():
    comp = _components()
    calls, handle = _count_unet_calls(comp["unet"])
    txt2img(**comp, prompts=PROMPTS, seeds=[1, 2, 3], num_inference_steps=5, guidance_scale=4.0)
    assert calls == [6] * 5  # negative + positive halves in one forward
    calls.clear()
    txt2img(**comp, prompts=PROMPTS, seeds=[1, 2, 3], num_inference_steps=5, guidance_scale=1.0)
    handle.remove()
    assert calls == [3] * 5


@pytest.mark.parametrize("sampler", ["ddim", "dpmsolver++", "ddpm"])
def test_txt2img_matches_stock_diffusers_pipeline(sampler):
    comp = _components(sampler, projection={"kind": "mlp", "out_dim": 32}, extraction="mean")
    ours = txt2img(**comp, prompts=PROMPTS, seeds=[5, 6, 7], num_inference_steps=6, guidance_scale=2.5)
    pipe = StableDiffusionPipeline(**comp, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(s) for s in (5, 6, 7)]
    ref = pipe(PROMPTS, num_inference_steps=6, guidance_scale=2.5, generator=gens, output_type="pt").images
    assert torch.allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("strength,steps,expected", [(0.5, 10, 5), (0.33, 10, 3), (1.0, 8, 8), (0.99, 7, 6)])
def test_img2img_runs_int_strength_times_steps(strength, steps, expected):
    comp = _components()
    images = tiny_images(2).get([0, 1])
    calls, handle = _count_unet_calls(comp["unet"])
    result = img2img(**comp, images=images, prompts=PROMPTS[:2], seeds=[1, 2], strength=strength,
                     num_inference_steps=steps, guidance_scale=2.0)
    handle.remove()
    assert len(calls) == result.steps_run == int(strength * steps) == expected
    assert result.images.shape == (2, 1, 32, 32)


def test_img2img_matches_stock_diffusers_img2img():
    comp = _components("pndm")
    images = tiny_images(2).get([0, 1])
    ours = img2img(**comp, images=images, prompts=PROMPTS[:2], seeds=[3, 4], strength=0.6, num_inference_steps=10,
                   guidance_scale=3.0).images
    pipe = StableDiffusionImg2ImgPipeline(**comp, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPTS[:2], image=(images + 1) / 2, strength=0.6, num_inference_steps=10, guidance_scale=3.0,
               generator=[torch.Generator().manual_seed(s) for s in (3, 4)], output_type="pt").images
    assert torch.allclose(ours, ref, atol=1e-5)


def test_img2img_mask_is_carried_through_and_confines_the_edit():
    comp = _components()
    images = tiny_images(1).get([0])
    free = img2img(**comp, images=images, prompts=PROMPTS[:1], seeds=[9], strength=0.8, num_inference_steps=5)
    ones = img2img(**comp, images=images, prompts=PROMPTS[:1], seeds=[9], strength=0.8, num_inference_steps=5,
                   mask=torch.ones(1, 1, 32, 32))
    zeros = img2img(**comp, images=images, prompts=PROMPTS[:1], seeds=[9], strength=0.8, num_inference_steps=5,
                    mask=torch.zeros(1, 1, 32, 32))
    assert torch.allclose(ones.images, free.images, atol=1e-6) and free.mask is None
    assert torch.equal(zeros.mask, torch.zeros(1, 1, 32, 32))
    # Nothing may change: the result is the decoded posterior sample of the input (same generator use).
    vae = comp["vae"]
    with torch.no_grad():
        z = vae.encode(images).latent_dist.sample(generator=torch.Generator().manual_seed(9))
        want = (vae.decode(z).sample / 2 + 0.5).clamp(0, 1)
    assert torch.allclose(zeros.images, want, atol=1e-5)
    with pytest.raises(MedsynthError, match="strength"):
        img2img(**comp, images=images, prompts=PROMPTS[:1], seeds=[9], strength=1.5)


def test_generate_to_dir_writes_pngs_and_resumes(tmp_path):
    comp = _components()
    kwargs = dict(num_inference_steps=3, guidance_scale=2.0)
    paths = generate_to_dir(comp, PROMPTS, [1, 2, 3], tmp_path, batch_size=2, **kwargs)
    assert [p.name for p in paths] == ["000000_seed1.png", "000001_seed2.png", "000002_seed3.png"]
    arr = np.asarray(Image.open(paths[2]))
    want = txt2img(**comp, prompts=PROMPTS[2:], seeds=[3], **kwargs)[0, 0].numpy()
    assert arr.shape == (32, 32) and np.abs(arr / 255.0 - want).max() <= 1 / 255 + 1e-6
    paths[0].write_bytes(b"kept")  # a finished file is not recomputed on resume
    generate_to_dir(comp, PROMPTS, [1, 2, 3], tmp_path, batch_size=2, **kwargs)
    assert paths[0].read_bytes() == b"kept"


@pytest.mark.parametrize("projection,extraction,te_class", [
    ({"kind": "linear", "out_dim": 32}, "cls", "ConditioningTextEncoder"),
    (None, "tokens", "BertModel")])
def test_saved_pipeline_reloads_with_diffusers_and_generates(tmp_path, projection, extraction, te_class):
    comp = _components(projection=projection, extraction=extraction)
    out = save_pipeline(tmp_path / "pipe", **comp, card={"title": "tiny test model", "training": {"steps": 0}})
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder"][1] == te_class
    assert (out / "README.md").read_text().startswith("---") and "latent scale factor 0.9" in (out / "README.md").read_text()
    assert list(out.glob("unet/*.safetensors")) and not list(out.rglob("*.bin"))
    pipe = DiffusionPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae.config.scaling_factor == 0.9
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    ref = pipe(PROMPTS[:2], num_inference_steps=3, guidance_scale=2.0, generator=gens, output_type="pt").images
    ours = txt2img(**comp, prompts=PROMPTS[:2], seeds=[1, 2], num_inference_steps=3, guidance_scale=2.0)
    assert torch.allclose(ref, ours, atol=1e-5)  # same mask / null-prompt handling after the round trip


def test_models_share_identical_weight_files_through_the_store(tmp_path):
    store = tmp_path / ".weights"
    comp = _components()
    base = save_pipeline(tmp_path / "base", **comp, store=store)
    te_files = sorted(p.name for p in (base / "text_encoder").glob("*.safetensors"))
    assert te_files == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    with torch.no_grad():  # an adaptation that changed the U-Net and one embedding row (a textual inversion)
        next(comp["unet"].parameters()).add_(0.5)
        comp["text_encoder"].get_input_embeddings().weight[3].add_(1.0)
    out = save_pipeline(tmp_path / "adapted", **comp, store=store)
    ino = lambda p: p.stat().st_ino
    for rel in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model-00002-of-00002.safetensors"):
        assert ino(out / rel) == ino(base / rel) and (out / rel).stat().st_nlink == 3  # base, adapted, store
    for rel in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model-00001-of-00002.safetensors"):
        assert ino(out / rel) != ino(base / rel) and (out / rel).read_bytes() != (base / rel).read_bytes()
    pipe = load_pipeline(out)
    assert torch.equal(next(pipe.unet.parameters()), next(comp["unet"].parameters()))
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight,
                       comp["text_encoder"].get_input_embeddings().weight)
    assert len(list(store.iterdir())) == 6  # 4 files of the base + the adapted U-Net and embedding table
    # the base is replaced whole on a rerun: the adapted folder keeps its (old) files, and the store drops the
    # base's old U-Net and embeddings, which nothing links any more
    old_unet = (base / "unet/diffusion_pytorch_model.safetensors").stat().st_ino
    rerun = _components()
    with torch.no_grad():
        next(rerun["unet"].parameters()).sub_(0.5)
    save_pipeline(base, **rerun, store=store)
    assert load_pipeline(out).unet is not None and (out / "vae/diffusion_pytorch_model.safetensors").exists()
    assert old_unet not in {p.stat().st_ino for p in store.iterdir()}
    assert all(p.stat().st_nlink >= 2 for p in store.iterdir())


def test_cli_generate(tmp_path):
    comp = _components()
    save_pipeline(tmp_path / "pipe", **comp)
    out = tmp_path / "img" / "x.png"
    rc = cli.main(["generate", "--pipeline", str(tmp_path / "pipe"), "--prompt", PROMPTS[0], "--out", str(out),
                   "--seed", "4", "--steps", "3", "--guidance", "2", "--sampler", "ddim"])
    assert rc == 0 and out.is_file()
    want = txt2img(**comp, prompts=PROMPTS[:1], seeds=[4], num_inference_steps=3, guidance_scale=2.0)[0, 0]
    assert np.abs(np.asarray(Image.open(out)) / 255.0 - want.numpy()).max() <= 1 / 255 + 1e-6
    assert cli.main(["generate", "--pipeline", str(tmp_path / "nope"), "--prompt", "x", "--out", str(out)]) == 2
    # img2img / SDEdit with a mask: black (kept) pixels come back as the decoded input, as img2img() gives them
    src = tiny_images(1).get([0])
    Image.fromarray(((src[0, 0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "mask.png")
    edited = tmp_path / "img" / "edit.png"
    assert cli.main(["generate", "--pipeline", str(tmp_path / "pipe"), "--prompt", PROMPTS[0], "--out", str(edited),
                     "--seed", "2", "--steps", "4", "--init-image", str(tmp_path / "in.png"), "--strength", "0.5",
                     "--mask", str(tmp_path / "mask.png")]) == 0
    from medsynth.training.data import FileImages
    want = img2img(**comp, images=FileImages([tmp_path / "in.png"], 32).get([0]), prompts=PROMPTS[:1], seeds=[2],
                   strength=0.5, num_inference_steps=4, mask=torch.zeros(1, 1, 32, 32)).images[0, 0]
    assert np.abs(np.asarray(Image.open(edited)) / 255.0 - want.numpy()).max() <= 1 / 255 + 1e-6
    assert cli.main(["generate", "--pipeline", str(tmp_path / "pipe"), "--prompt", "x", "--out", str(edited),
                     "--mask", str(tmp_path / "mask.png")]) == 2


def test_unknown_sampler_and_seed_mismatch():
    with pytest.raises(MedsynthError, match="unknown sampler"):
        make_scheduler("euler-magic", ddpm().config)
    comp = _components()
    with pytest.raises(MedsynthError, match="one seed per image"):
        txt2img(**comp, prompts=PROMPTS, seeds=[1])
    with pytest.raises(MedsynthError, match="not a diffusers pipeline"):
        load_pipeline("/nonexistent")


def test_stable_diffusion_checkpoint_from_a_local_folder_matches_stock_diffusers(tmp_path):
    from medsynth.models.loading import load_stable_diffusion

    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    comp = load_stable_diffusion({"name": str(folder)})
    assert type(comp["scheduler"]).__name__ == "PNDMScheduler" and comp["vae"].config.scaling_factor == 0.7
    assert type(comp["text_encoder"].encoder).__name__ == "CLIPTextModel"
    assert not comp["text_encoder"].config.use_attention_mask and comp["tokenizer"].model_max_length == 77
    assert comp["noise_scheduler"].config.beta_schedule == "scaled_linear"
    stock = StableDiffusionPipeline.from_pretrained(folder)
    stock.set_progress_bar_config(disable=True)
    ref = stock(PROMPTS[:2], num_inference_steps=4, guidance_scale=3.0, output_type="pt",
                generator=[torch.Generator().manual_seed(s) for s in (1, 2)]).images
    parts = {k: comp[k] for k in ("vae", "unet", "text_encoder", "tokenizer", "scheduler")}
    ours = txt2img(**parts, prompts=PROMPTS[:2], seeds=[1, 2], num_inference_steps=4, guidance_scale=3.0)
    assert ours.shape == (2, 3, 32, 32) and torch.allclose(ours, ref, atol=1e-5)
    # and with the stock pipeline's own components (a plain CLIPTextModel, as `medsynth generate` gets them)
    plain = txt2img(vae=stock.vae, unet=stock.unet, text_encoder=stock.text_encoder, tokenizer=stock.tokenizer,
                    scheduler=stock.scheduler, prompts=PROMPTS[:2], seeds=[1, 2], num_inference_steps=4,
                    guidance_scale=3.0)
    assert torch.allclose(plain, ref, atol=1e-5)


def test_stable_diffusion_checkpoint_errors_name_the_model(tmp_path, monkeypatch):
    from medsynth.models.loading import load_stable_diffusion

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MedsynthError, match=r"some-org/sd-model.*hf download"):
        load_stable_diffusion({"name": "some-org/sd-model"})
    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    for f in folder.rglob("*.safetensors"):  # a checkpoint with pickle weights only is refused, never unpickled
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(MedsynthError, match=r"only pickle weights.*safetensors"):
        load_stable_diffusion({"name": str(folder)})



def test_stable_diffusion_with_a_replaced_text_encoder_and_a_medsynth_pipeline_as_base(tmp_path):
    from medsynth.models.loading import load_stable_diffusion

    folder = save_tiny_stable_diffusion(tmp_path / "sd")
    with pytest.raises(MedsynthError, match=r"384-d states.*attends to 32-d.*projection"):
        load_stable_diffusion({"name": str(folder)}, {"name": "embedded:minilm"})  # siddiqui2023-style swap
    comp = load_stable_diffusion({"name": str(folder)}, {"name": "embedded:minilm", "max_length": 16,
                                                         "projection": {"kind": "linear", "out_dim": 32}})
    assert comp["text_encoder"].output_dim == 32 and comp["tokenizer"].model_max_length == 16
    # A pipeline medsynth saved (ConditioningTextEncoder with its projection) is itself a valid base checkpoint.
    parts = {k: comp[k] for k in ("vae", "unet", "text_encoder", "tokenizer", "scheduler")}
    save_pipeline(tmp_path / "ours", **parts)
    again = load_stable_diffusion({"name": str(tmp_path / "ours"), "max_length": 16})
    assert type(again["text_encoder"]).__name__ == "ConditioningTextEncoder"
    a = txt2img(**parts, prompts=PROMPTS[:1], seeds=[3], num_inference_steps=2, guidance_scale=2.0)
    b = txt2img(**{k: again[k] for k in parts}, prompts=PROMPTS[:1], seeds=[3], num_inference_steps=2,
                guidance_scale=2.0)
    assert torch.allclose(a, b, atol=1e-6)
