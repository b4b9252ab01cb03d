"""Training engine on tiny models (CPU, seeded): strategies, CFG dropout, caches, exact resume, EMA, stopping."""
from __future__ import annotations

import pytest
import torch

from _engine_fixtures import PROMPTS, ddpm, tiny_images, tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae
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


def test_textual_inversion_updates_only_new_token_rows(tmp_path):
    vae, unet, te, tok, data = _setup(projection=None)
    data.prompts = [f"a photo of a <lung-xray> {p}" for p in data.prompts]
    unet_before, enc_before = _snapshot(unet), _snapshot(te.encoder)
    cfg = TrainConfig(strategy="textual_inversion", max_steps=3, batch_size=4, learning_rate=5e-2,
                      adam_weight_decay=0.1, placeholder_tokens=("<lung-xray>",), initializer_token="lung")
    _, strategy = train_diffusion(vae, unet, te, tok, ddpm(), data, cfg, tmp_path)
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


def test_gradient_checkpointing_and_bf16(tmp_path):
    losses = {}
    for name, kw in {"plain": {}, "ckpt": {"gradient_checkpointing": True}, "bf16": {"mixed_precision": "bf16"}}.items():
        _reset_accelerate()
        vae, unet, te, tok, data = _setup()
        result, _ = train_diffusion(vae, unet, te, tok, ddpm(), data, TrainConfig(max_steps=1, batch_size=4, **kw),
                                    tmp_path / name)
        losses[name] = result.losses[0]
    assert losses["ckpt"] == pytest.approx(losses["plain"], rel=1e-5)
    assert losses["bf16"] == pytest.approx(losses["plain"], rel=0.05)


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
