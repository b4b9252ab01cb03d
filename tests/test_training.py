"""Training engine on tiny models (CPU, seeded): strategies, CFG dropout, caches, exact resume, EMA, stopping."""
from __future__ import annotations

import pytest
import torch

from _engine_fixtures import PROMPTS, ddpm, folder_weights, tiny_images, tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae
from medsynth.errors import MedsynthError
from medsynth.models.autoencoder import measure_scaling_factor, set_scaling_factor
from medsynth.training import loop
from medsynth.training.caching import LatentCache
from medsynth.training.checkpoint import list_checkpoints
from medsynth.training.loop import DiffusionData, TrainConfig, run_training, train_diffusion, train_vae

PROJ = {"kind": "linear", "out_dim": 32}


def _reset_accelerate():
    """accelerate keeps one process-wide state (a run is one process in the workflow); tests vary precision."""
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state()
    GradientState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    _reset_accelerate()


def _setup(projection=PROJ, n=8):
    tok = tiny_tokenizer()
    te = tiny_text_encoder(tok, projection=projection)
    data = DiffusionData(tiny_images(n), [PROMPTS[i % 4] for i in range(n)],
                         class_images=tiny_images(4, seed=1), class_prompts=["chest x ray"] * 4)
    return tiny_vae(), tiny_unet(), te, tok, data


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_measured_scaling_factor_is_inverse_latent_std():
    vae, images = tiny_vae(), tiny_images(8)
    factor = measure_scaling_factor(vae, [images.get(range(0, 4)), images.get(range(4, 8))], seed=3)
    with torch.no_grad():
        dist = vae.encode(images.get(range(8))).latent_dist
    approx = 1.0 / torch.sqrt(dist.mean.var() + dist.std.pow(2).mean()).item()
    assert factor == pytest.approx(approx, rel=0.05)
    set_scaling_factor(vae, factor)
    assert vae.config.scaling_factor == pytest.approx(factor) and factor != pytest.approx(0.18215)


def test_vae_stage_trains_and_checkpoints(tmp_path):
    vae, images = tiny_vae(), tiny_images(8)
    result = train_vae(vae, images, TrainConfig(max_steps=4, batch_size=4, learning_rate=1e-3, checkpoint_every=2,
                                                checkpoint_limit=1), tmp_path, val_images=tiny_images(4, seed=2))
    assert result.step == 4 and all(torch.isfinite(torch.tensor(result.losses)))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-000004"]  # retention limit


EXPECTED = {  # strategy -> (unet changes, encoder body changes, projection changes)
    "scratch": (True, False, True),
    "finetune_unet": (True, False, False),
    "dreambooth": (True, False, False),
    "projection": (False, False, True),
    "joint": (True, True, True),
}


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_strategy_changes_exactly_its_parameters(tmp_path, strategy):
    vae, unet, te, tok, data = _setup()
    before = {"vae": _snapshot(vae), "unet": _snapshot(unet), "enc": _snapshot(te.encoder),
              "proj": _snapshot(te.projection)}
    cfg = TrainConfig(strategy=strategy, max_steps=2, batch_size=4, learning_rate=1e-3, checkpoint_every=100)
    result, _ = train_diffusion(vae, unet, te, tok, ddpm(), data, cfg, tmp_path)
    assert result.step == 2
    want_unet, want_enc, want_proj = EXPECTED[strategy]
    assert not _changed(before["vae"], vae)
    assert bool(_changed(before["unet"], unet)) == want_unet
    assert bool(_changed(before["enc"], te.encoder)) == want_enc
    assert bool(_changed(before["proj"], te.projection)) == want_proj
    if strategy in ("dreambooth", "joint"):
        assert result.conditions == 2 * 2 * 4  # instance + class images in every batch (prior preservation)


def test_textual_inversion_updates_only_new_token_rows(tmp_path, monkeypatch):
    from medsynth.training.strategies import OBJECT_TEMPLATES

    vae, unet, te, tok, data = _setup(projection=None)
    unet_before, enc_before = _snapshot(unet), _snapshot(te.encoder)
    seen = []
    real_encode = loop.encode
    monkeypatch.setattr(loop, "encode", lambda te_, tok_, texts, *a, **k: seen.extend(texts) or real_encode(te_, tok_, texts, *a, **k))
    cfg = TrainConfig(strategy="textual_inversion", max_steps=3, batch_size=4, learning_rate=5e-2, cfg_dropout=0.0,
                      adam_weight_decay=0.1, placeholder_tokens=("<lung-xray>",), initializer_token="lung",
                      ti_templates="object")
    _, strategy = train_diffusion(vae, unet, te, tok, ddpm(), data, cfg, tmp_path)
    # diffusers' recipe: every training prompt is an object template around the placeholder
    assert len(seen) == 12 and all(t in {x.format("<lung-xray>") for x in OBJECT_TEMPLATES} for t in seen)
    assert len(set(seen)) > 1
    key = "embeddings.word_embeddings.weight"
    new = strategy.token_ids
    emb = te.encoder.state_dict()[key]
    old_rows = enc_before[key]
    assert emb.shape[0] == old_rows.shape[0] + 1 and new == [old_rows.shape[0]]
    assert torch.equal(emb[: old_rows.shape[0]], old_rows)  # bit-identical despite weight decay
    lung = tok.convert_tokens_to_ids("lung")
    assert not torch.equal(emb[new[0]], old_rows[lung])  # learned away from its initialiser
    assert not _changed(unet_before, unet)
    assert _changed(enc_before, te.encoder) == {key}


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_cfg_dropout_really_feeds_the_null_prompt(tmp_path, monkeypatch, p):
    vae, unet, te, tok, data = _setup()
    seen = []
    real_encode = loop.encode

    def spy(text_encoder, tokenizer, texts, *args, **kwargs):
        seen.extend(texts)
        return real_encode(text_encoder, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(loop, "encode", spy)
    cfg = TrainConfig(strategy="finetune_unet", max_steps=6, batch_size=4, cfg_dropout=p, cache_text=False)
    result, _ = train_diffusion(vae, unet, te, tok, ddpm(), data, cfg, tmp_path)
    nulls = sum(t == "" for t in seen)
    assert len(seen) == result.conditions == 24 and nulls == result.null_conditions
    assert nulls == {0.0: 0, 1.0: 24}.get(p, nulls) and (0 < nulls < 24 if p == 0.5 else True)


def test_cached_latents_and_text_give_the_same_loss_as_live_encoding(tmp_path):
    losses = []
    for cached in (True, False):
        vae, unet, te, tok, data = _setup()
        cfg = TrainConfig(max_steps=1, batch_size=4, cache_latents=cached, cache_text=cached)
        result, _ = train_diffusion(vae, unet, te, tok, ddpm(), data, cfg, tmp_path / str(cached))
        losses.append(result.losses[0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_latent_cache_is_keyed_by_vae_and_data(tmp_path):
    vae, images = tiny_vae(), tiny_images(4)
    first = LatentCache.build_or_load(tmp_path, vae, images)
    again = LatentCache.build_or_load(tmp_path, vae, images)
    assert not first.reused and again.reused and again.path == first.path
    assert torch.equal(first.mean, again.mean)
    with torch.no_grad():
        next(vae.parameters()).add_(0.01)
    assert LatentCache.build_or_load(tmp_path, vae, images).path != first.path
    assert LatentCache.build_or_load(tmp_path, tiny_vae(), tiny_images(4, seed=5)).path != first.path


def _resume_run(out, **kw):
    vae, unet, te, tok, data = _setup()
    cfg = TrainConfig(max_steps=5, batch_size=3, learning_rate=1e-3, lr_warmup_steps=2, lr_scheduler="cosine",
                      gradient_accumulation_steps=2, checkpoint_every=2, checkpoint_limit=2, use_ema=True,
                      ema_decay=0.9, cfg_dropout=0.3, **kw)
    result, _ = train_diffusion(vae, unet, te, tok, ddpm(), data, cfg, out)
    return result, unet, te


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    full, unet_a, te_a = _resume_run(tmp_path / "a")
    killed, _, _ = _resume_run(tmp_path / "b", stop_after=3)  # dies after step 3; last checkpoint is step 2
    assert killed.interrupted and killed.step == 3
    resumed, unet_b, te_b = _resume_run(tmp_path / "b")
    assert resumed.resumed_from == 2 and resumed.step == 5
    for a, b in ((unet_a, unet_b), (te_a.projection, te_b.projection)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # EMA weights are copied in at the end of both runs
    assert full.losses[-2:] == resumed.losses[-2:]
    assert [p.name for p in list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step-000004", "step-000005"]


def test_early_stopping_on_validation_loss_keeps_best_weights(tmp_path):
    model = torch.nn.Linear(2, 1)
    vals = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])

    def loss_fn(models, micro, generator):
        return models["m"](torch.randn(4, 2, generator=generator)).pow(2).mean(), {}

    cfg = TrainConfig(max_steps=6, validate_every=1, early_stopping_patience=2, checkpoint_every=100)
    result = run_training(tmp_path, cfg, {"m": model}, {"m": model}, list(model.parameters()), loss_fn,
                          val_fn=lambda models: next(vals))
    assert result.stopped_early and result.step == 4 and result.best_val == 0.5
    assert (tmp_path / "best" / "m.safetensors").is_file()
    assert list(tmp_path.joinpath("tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-000004"]
    again = run_training(tmp_path, cfg, {"m": model}, {"m": model}, list(model.parameters()), loss_fn,
                         val_fn=lambda models: 0.0)
    assert again.stopped_early and again.step == 4 and again.resumed_from == 4 and not again.losses  # stays stopped


def test_gradient_checkpointing_bf16_and_fp16(tmp_path):
    losses = {}
    for name, kw in {"plain": {}, "ckpt": {"gradient_checkpointing": True}, "bf16": {"mixed_precision": "bf16"},
                     "fp16": {"mixed_precision": "fp16"}}.items():
        _reset_accelerate()
        vae, unet, te, tok, data = _setup()
        frozen = _snapshot(vae)
        result, _ = train_diffusion(vae, unet, te, tok, ddpm(), data, TrainConfig(max_steps=1, batch_size=4, **kw),
                                    tmp_path / name)
        losses[name] = result.losses[0]
        # fp32 master weights: trained modules stay fp32; the frozen VAE (run in bf16) gets its exact fp32 weights back
        assert unet.dtype == torch.float32 and vae.dtype == torch.float32 and not _changed(frozen, vae)
    assert losses["ckpt"] == pytest.approx(losses["plain"], rel=1e-5)
    assert losses["bf16"] == pytest.approx(losses["plain"], rel=0.05)
    assert losses["fp16"] == pytest.approx(losses["plain"], rel=0.01)


def test_bad_inputs_raise_clear_errors(tmp_path):
    vae, unet, te, tok, data = _setup()
    with pytest.raises(MedsynthError, match="unknown training strategy"):
        train_diffusion(vae, unet, te, tok, ddpm(), data, TrainConfig(strategy="magic"), tmp_path)
    data.class_images = None
    with pytest.raises(MedsynthError, match="prior preservation"):
        train_diffusion(vae, unet, te, tok, ddpm(), data, TrainConfig(strategy="dreambooth"), tmp_path)
    vae, unet, te, tok, data = _setup(projection=None)
    with pytest.raises(MedsynthError, match="projection head"):
        train_diffusion(vae, unet, te, tok, ddpm(), data, TrainConfig(strategy="projection"), tmp_path)


def test_batches_are_split_across_processes_without_overlap():
    for n, b, world in ((10, 2, 2), (7, 2, 3), (8, 4, 1)):
        per_epoch = -(-n // (b * world))
        for epoch in range(2):
            parts = [[loop.batch_indices(n, b, epoch * per_epoch + m, 3, r, world) for m in range(per_epoch)]
                     for r in range(world)]
            flat = [i for rank in parts for batch in rank for i in batch]
            assert sorted(set(flat)) == list(range(n))  # every image once per epoch ...
            assert all(batch for rank in parts for batch in rank)  # ... and no process ever gets an empty batch
            if n % (b * world) == 0:
                assert len(flat) == n
    assert loop.batch_indices(8, 4, 0, 3) == loop.batch_indices(8, 4, 0, 3, 0, 1)


def _manifest(tmp_path, n_train=6, n_val=2, size=32):
    import pandas as pd
    from PIL import Image

    images = tiny_images(n_train + n_val).images
    rows = []
    for i, img in enumerate(images):
        name = f"img/{i:03d}.png"
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.fromarray(((img[0].numpy() + 1) * 127.5).round().astype("uint8")).save(tmp_path / name)
        rows.append({"id": f"p{i}", "split": "train" if i < n_train else "val", "image": name,
                     "prompt": PROMPTS[i % 4]})
    df = pd.DataFrame(rows)
    df.to_parquet(tmp_path / "manifest.parquet")
    return df


def test_dreambooth_from_a_stable_diffusion_checkpoint_generates_class_images_and_saves_a_pipeline(tmp_path):
    from diffusers import DiffusionPipeline

    from _engine_fixtures import save_tiny_stable_diffusion
    from medsynth.training.stages import train_diffusion_stage

    df = _manifest(tmp_path)
    sd = save_tiny_stable_diffusion(tmp_path / "sd")
    entry = {"dataset": "x", "pretrained": {"name": str(sd)}, "diffusion": {"train": {
        "strategy": "dreambooth", "max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "class_prompt": "chest x ray",
        "num_class_images": 3, "class_image_steps": 2, "checkpoint_every": 100, "progress_bar": False}}}
    summary = train_diffusion_stage(df, tmp_path, entry, None, tmp_path / "work", tmp_path / "pipe", seed=0)
    assert summary["steps"] == 2 and summary["strategy"] == "dreambooth" and summary["pretrained"] == str(sd)
    assert summary["image_size"] == 32 and summary["parameters"]["trainable_diffusion_stage"] == summary["parameters"]["unet"]
    assert sorted(p.name for p in (tmp_path / "work" / "class_images").glob("*.png")) == [
        "class_00000.png", "class_00001.png", "class_00002.png"]
    for part in ("vae", "text_encoder"):  # frozen: saved bit-identical to the checkpoint
        ref, got = folder_weights(sd / part), folder_weights(tmp_path / "pipe" / part)
        assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    ref_unet, got_unet = folder_weights(sd / "unet"), folder_weights(tmp_path / "pipe" / "unet")
    assert any(not torch.equal(ref_unet[k], got_unet[k]) for k in ref_unet)
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    out = pipe(["left pleural effusion"], num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 32, 32, 3)


def _scratch_entry(tmp_path):
    import json

    _manifest(tmp_path)
    train = {"max_steps": 2, "batch_size": 3, "learning_rate": 1e-3, "checkpoint_every": 100, "validate_every": 1,
             "progress_bar": False}
    entry = {"dataset": "x", "image_size": 32,
             "vae": {"latent_channels": 4, "block_out_channels": [8, 16], "norm_num_groups": 8, "train": train},
             "unet": {"block_out_channels": [16, 32], "attention_resolutions": [8], "layers_per_block": 1,
                      "norm_num_groups": 8},
             "text_encoder": {"name": "embedded:minilm", "max_length": 16, "projection": {"kind": "linear", "out_dim": 32}},
             "diffusion": {"num_train_timesteps": 100, "train": {**train, "sample_every": 2, "sample_steps": 2}}}
    (tmp_path / "model.json").write_text(json.dumps(entry))
    return entry, dict(model_config=tmp_path / "model.json", manifest=tmp_path / "manifest.parquet",
                       results=tmp_path, seed=0)


def test_cli_train_runs_both_stages_of_a_scratch_entry(tmp_path):
    import json

    from diffusers import DiffusionPipeline

    from medsynth import cli
    from medsynth.training.launch import launch_command, stage_arguments

    entry, common = _scratch_entry(tmp_path)
    assert cli.main(["train", *stage_arguments("vae", work=tmp_path / "wv", out=tmp_path / "vae",
                                                summary=tmp_path / "vae.json", **common)]) == 0
    vae_summary = json.loads((tmp_path / "vae.json").read_text())
    assert vae_summary["steps"] == 2 and vae_summary["scaling_factor"] > 0 and vae_summary["processes"] == 1
    args = stage_arguments("diffusion", work=tmp_path / "wd", out=tmp_path / "pipe", summary=tmp_path / "d.json",
                           inputs={"vae": tmp_path / "vae"}, **common)
    assert cli.main(["train", *args]) == 0
    summary = json.loads((tmp_path / "d.json").read_text())
    assert summary["strategy"] == "scratch" and summary["steps"] == 2 and len(summary["val_loss"]) == 2
    assert (tmp_path / "wd" / "samples" / "step-000002.png").is_file()  # sample grid ...
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(tmp_path / "wd" / "tensorboard")).Reload()
    assert events.Tags()["images"] == ["samples"] and {"train/loss", "val/loss"} <= set(events.Tags()["scalars"])
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    assert pipe.vae.config.scaling_factor == pytest.approx(vae_summary["scaling_factor"])
    assert cli.main(["train", *args]) == 0  # rerun (e.g. after a kill): resumes from the last checkpoint
    assert json.loads((tmp_path / "d.json").read_text())["resumed_from"] == 2
    entry["diffusion"]["train"]["learning_rate"] = 2e-3  # changed config: stale checkpoints are not resumed
    (tmp_path / "model.json").write_text(json.dumps(entry))
    assert cli.main(["train", *args]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["resumed_from"] is None
    cmd = launch_command(4, args, "bf16")
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and cmd[cmd.index("--num_processes") + 1] == "4"
    assert "--multi_gpu" in cmd and cmd[cmd.index("--module") + 1:][:3] == ["medsynth.cli", "train", "diffusion"]
    assert cli.main(["train", "vae", "--model-config", str(tmp_path / "nope.json"), "--manifest", "m",
                     "--results", "r", "--work", "w", "--out", "o", "--summary", "s"]) == 2


def _toy():
    import sys
    from pathlib import Path

    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        import _ddp_toy
    finally:
        sys.path.remove(here)
    return _ddp_toy


def test_gradient_accumulation_equals_the_whole_batch_in_one_step(tmp_path):
    import json

    toy = _toy()
    toy.main(tmp_path / "whole", 4)
    _reset_accelerate()
    toy.main(tmp_path / "accum", 2, accumulation=2)
    whole, accum = (json.loads((tmp_path / p / "rank0.json").read_text()) for p in ("whole", "accum"))
    assert accum["step"] == whole["step"] == 4  # optimizer steps, not micro-batches
    assert [a + b for a, b in zip(accum["seen"][::2], accum["seen"][1::2])] == whole["seen"]
    assert accum["weight"] == pytest.approx(whole["weight"], abs=1e-6) and accum["bias"] == pytest.approx(whole["bias"], abs=1e-6)


@pytest.mark.slow
def test_two_processes_under_a_distributed_launcher_equal_one_process_with_the_whole_batch(tmp_path):
    """What `accelerate launch --num_processes 2` does on two GPUs, on CPU (gloo): disjoint data per process,
    averaged gradients, identical weights everywhere, checkpoints written once."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    toy = Path(__file__).with_name("_ddp_toy.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                    str(toy), str(tmp_path / "two"), "2"], check=True, env=env, capture_output=True)
    _toy().main(tmp_path / "one", 4)
    r0, r1, one = (json.loads((tmp_path / p).read_text()) for p in ("two/rank0.json", "two/rank1.json", "one/rank0.json"))
    assert r0["world"] == r1["world"] == 2 and one["world"] == 1 and r0["step"] == r1["step"] == 4
    for a, b, whole in zip(r0["seen"], r1["seen"], one["seen"]):
        assert not set(a) & set(b) and sorted(a + b) == sorted(whole)
    assert r0["weight"] == r1["weight"] and r0["bias"] == r1["bias"]
    assert r0["weight"] == pytest.approx(one["weight"], abs=1e-6) and r0["bias"] == pytest.approx(one["bias"], abs=1e-6)
    assert [p.name for p in list_checkpoints(tmp_path / "two" / "checkpoints")] == ["step-000002", "step-000004"]


def test_textual_inversion_from_a_checkpoint_saves_a_pipeline_that_knows_the_new_token(tmp_path):
    from diffusers import DiffusionPipeline

    from _engine_fixtures import save_tiny_stable_diffusion
    from medsynth.training.stages import train_diffusion_stage

    df = _manifest(tmp_path, n_train=4)
    sd = save_tiny_stable_diffusion(tmp_path / "sd")
    entry = {"dataset": "x", "pretrained": {"name": str(sd)}, "diffusion": {"train": {
        "strategy": "textual_inversion", "placeholder_tokens": ["<cxr>"], "initializer_token": "x",
        "ti_templates": "style", "max_steps": 2, "batch_size": 2, "learning_rate": 0.1, "progress_bar": False}}}
    summary = train_diffusion_stage(df, tmp_path, entry, None, tmp_path / "work", tmp_path / "pipe", seed=0)
    assert summary["parameters"]["trainable_diffusion_stage"] == 32  # one 32-d embedding row
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    new_id = pipe.tokenizer.convert_tokens_to_ids("<cxr>")
    assert new_id == 514 and pipe.text_encoder.get_input_embeddings().weight.shape[0] == 515
    old = folder_weights(sd / "text_encoder")
    key = next(k for k in old if k.endswith("token_embedding.weight"))
    emb = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(emb[:514], old[key]) and not torch.equal(emb[514], old[key][pipe.tokenizer.convert_tokens_to_ids("x</w>")])
    for part in ("unet", "vae"):
        ref, got = folder_weights(sd / part), folder_weights(tmp_path / "pipe" / part)
        assert all(torch.equal(ref[k], got[k]) for k in ref)
    pipe.set_progress_bar_config(disable=True)
    assert pipe(["a painting in the style of <cxr>"], num_inference_steps=2, output_type="np").images.shape == (1, 32, 32, 3)


@pytest.mark.slow
def test_run_stage_on_two_processes(tmp_path, monkeypatch):
    """What the train rules do for a job with 2 GPUs (`accelerate launch --multi_gpu --num_processes 2 -m
    medsynth.cli train ...`), on CPU: the same command with torchrun as the launcher (gloo)."""
    import json
    import os
    import sys

    from diffusers import DiffusionPipeline

    from medsynth.training import launch

    entry, common = _scratch_entry(tmp_path)
    launch.run_stage_here("vae", entry, tmp_path / "manifest.parquet", tmp_path, tmp_path / "wv", tmp_path / "vae",
                          tmp_path / "vae.json", 0)
    seen = []

    def cpu_launcher(n, stage_args, mixed_precision="no", cpu=False):
        seen.append((n, mixed_precision))
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port", "29518",
                "-m", "medsynth.cli", "train", *stage_args]

    monkeypatch.setattr(launch, "launch_command", cpu_launcher)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    summary = launch.run_stage("diffusion", entry, tmp_path / "manifest.parquet", tmp_path, tmp_path / "wd",
                               tmp_path / "pipe", tmp_path / "d.json", 0, inputs={"vae": tmp_path / "vae"}, gpus=2)
    assert seen == [(2, "no")] and json.loads((tmp_path / "wd" / "model.json").read_text()) == entry
    assert summary["processes"] == 2 and summary["steps"] == 2  # one process group of two
    assert (tmp_path / "wd" / "accelerate-diffusion.log").read_text().count(str(tmp_path / "d.json")) == 2
    assert [p.name for p in list_checkpoints(tmp_path / "wd" / "checkpoints")] == ["step-000002"]
    DiffusionPipeline.from_pretrained(tmp_path / "pipe")
