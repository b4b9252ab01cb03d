"""Strategy projection_distill (chambon2022 Study 3, textual projection) on tiny models: a tiny Stable Diffusion
checkpoint (CLIP base encoder) and a tiny BERT as the in-domain encoder, CPU, seeded."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from _engine_fixtures import PROMPTS, folder_weights, save_tiny_stable_diffusion, tiny_tokenizer
from medsynth.errors import MedsynthError
from medsynth.models.loading import load_text_encoder
from medsynth.training.distill import distill_projection
from medsynth.training.loop import TrainConfig

MLP = {"kind": "mlp", "out_dim": 32, "hidden_dim": 48}
REPORTS = ["no acute cardiopulmonary abnormality", "small left pleural effusion", "stable cardiomegaly",
           "right lower lobe consolidation", "no pneumothorax", "mild pulmonary edema", "clear lungs",
           "bibasilar atelectasis", "large right pleural effusion", "normal heart size"]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state()
    GradientState._reset_state()


def _tiny_bert_folder(folder, positions=80):
    """A tiny BERT + the MiniLM tokenizer saved as a local model folder (the in-domain encoder's stand-in)."""
    from transformers import BertConfig, BertModel

    tok = tiny_tokenizer()
    torch.manual_seed(5)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=48, max_position_embeddings=positions))
    bert.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return str(folder)


def _world(tmp_path):
    """(tiny SD checkpoint, in-domain encoder folder, model manifest) with a reports dataset under results/data."""
    sd = save_tiny_stable_diffusion(tmp_path / "sd")
    enc = _tiny_bert_folder(tmp_path / "bert")
    rows = [{"id": f"m{i}", "split": "train" if i < 6 else "val", "prompt": p}
            for i, p in enumerate([*PROMPTS, "normal chest x ray", "mild cardiomegaly", "a chest radiograph",
                                   "left pleural effusion"])]
    df = pd.DataFrame(rows)
    (tmp_path / "data" / "reports").mkdir(parents=True)
    pd.DataFrame({"split": ["train"] * 7 + ["val"] * 3 + ["test"],
                  "impression": [*REPORTS, "held-out test report"]}).to_parquet(
        tmp_path / "data" / "reports" / "manifest.parquet")
    return sd, enc, df


def _entry(sd, enc, extraction, **train):
    return {"dataset": "x", "pretrained": {"name": str(sd)},
            "text_encoder": {"name": enc, "extraction": extraction, "projection": MLP},
            "diffusion": {"train": {"strategy": "projection_distill", "max_steps": 40, "batch_size": 8,
                                    "learning_rate": 3e-3, "lr_scheduler": "constant", "validate_every": 10,
                                    "checkpoint_every": 100, "progress_bar": False,
                                    "distill_corpus": {"dataset": "reports", "column": "impression"}, **train}}}


@pytest.mark.parametrize("extraction,level", [("mean", "document"), ("tokens", "token")])
def test_stage_trains_only_the_head_and_saves_a_pipeline_that_matches_the_base_context(tmp_path, extraction, level):
    from diffusers import DiffusionPipeline

    from medsynth.training.stages import train_diffusion_stage

    sd, enc, df = _world(tmp_path)
    entry, length = _entry(sd, enc, extraction), 77
    if level == "token":  # start from another entry's trained pipeline: results/models/<entry>/pipeline, whose
        import shutil     # tokenizer was saved with the length it trained at
        sd = shutil.copytree(sd, tmp_path / "models" / "base" / "pipeline")
        config = json.loads((sd / "tokenizer" / "tokenizer_config.json").read_text())
        (sd / "tokenizer" / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 40}))
        entry["pretrained"], length = {"model": "base"}, 40
    summary = train_diffusion_stage(df, tmp_path, entry, None, tmp_path / "work", tmp_path / "pipe", seed=0)
    assert summary["strategy"] == "projection_distill" and summary["level"] == level
    assert summary["base_model"] == ("base" if level == "token" else None)
    assert summary["context_length"] == length  # the base's own context length: both tokenizers pad to it
    # corpus: "" + 5 distinct manifest train prompts + 7 train reports; val: held-out texts only
    assert summary["corpus"]["n_train"] == 13 and summary["corpus"]["source"]["train_texts"] == 7
    assert summary["corpus"]["val_texts_also_in_train"] == 1  # "left pleural effusion" is a train prompt too
    assert summary["n_val"] == 1 + 3
    losses = summary["train_loss"]
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5  # the MSE falls
    assert [s for s, _ in summary["val_loss"]] == [10, 20, 30, 40]
    assert summary["best_val"] < 0.5 * summary["val_mse_initial"] and summary["restored_best"]
    assert 0 < summary["val_mse_constant"] < summary["val_mse_initial"]
    head = sum(p.numel() for p in load_text_encoder({"name": enc, "projection": MLP})[0].projection.parameters())
    assert summary["parameters"]["trainable_diffusion_stage"] == head == 24 * 48 + 48 + 2 * 48 + 48 * 32 + 32

    pipe_dir = tmp_path / "pipe"
    for part in ("unet", "vae"):  # untouched: saved bit-identical to the checkpoint
        ref, got = folder_weights(sd / part), folder_weights(pipe_dir / part)
        assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    body, saved = folder_weights(tmp_path / "bert"), folder_weights(pipe_dir / "text_encoder")
    assert all(torch.equal(body[k], saved[f"encoder.{k}"]) for k in body)  # the encoder body too
    assert {k for k in saved if not k.startswith("encoder.")} == {
        f"projection.{i}.{w}" for i in (0, 1, 3) for w in ("weight", "bias")}

    pipe = DiffusionPipeline.from_pretrained(pipe_dir)
    pipe.set_progress_bar_config(disable=True)
    base = DiffusionPipeline.from_pretrained(sd)
    assert type(pipe.text_encoder).__name__ == "ConditioningTextEncoder" and pipe.tokenizer.model_max_length == length
    assert base.tokenizer.model_max_length == length
    val_texts = ["a chest radiograph", *REPORTS[7:]]
    with torch.no_grad():
        ours = pipe.encode_prompt(val_texts, "cpu", 1, False)[0]
        theirs = base.encode_prompt(val_texts, "cpu", 1, False)[0]
    assert ours.shape == theirs.shape == (4, length, 32)
    spread = (ours - ours[:, :1]).abs().amax()
    assert (spread == 0) if level == "document" else (spread > 0)  # one broadcast vector vs per-token states
    # the stock pipelines' own prompt encoding gives the recorded full-context MSE on the held-out texts
    assert float(((ours - theirs) ** 2).mean()) == pytest.approx(summary["val_context_mse"], rel=1e-4)
    images = pipe(["small left pleural effusion"], num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 32, 32, 3) and float(images.std()) > 0


def _direct(tmp_path, extraction="tokens", **cfg):
    sd = save_tiny_stable_diffusion(tmp_path / "sd")
    base, base_tok = load_text_encoder({"name": str(sd), "subfolder": "text_encoder", "tokenizer_subfolder": "tokenizer"})
    torch.manual_seed(0)
    enc, enc_tok = load_text_encoder({"name": _tiny_bert_folder(tmp_path / "bert"), "extraction": extraction,
                                      "projection": MLP})
    cfg = TrainConfig(strategy="projection_distill", batch_size=4, learning_rate=3e-3, lr_scheduler="constant",
                      checkpoint_every=2, progress_bar=False, **{"max_steps": 6, **cfg})
    return enc, enc_tok, base, base_tok, cfg


def test_only_projection_parameters_change_and_cached_equals_live(tmp_path):
    enc, enc_tok, base, base_tok, cfg = _direct(tmp_path / "a")
    snap = {n: {k: v.clone() for k, v in m.state_dict().items()}
            for n, m in (("body", enc.encoder), ("proj", enc.projection), ("base", base))}
    start = {k: v.clone() for k, v in enc.projection.state_dict().items()}
    res = distill_projection(enc, enc_tok, base, base_tok, REPORTS[:8], REPORTS[8:], cfg, tmp_path / "a" / "w",
                             cache_dir=tmp_path / "cache")
    assert res.level == "token" and res.n_train == 9 and res.train.step == 6
    assert all(torch.equal(snap["body"][k], v) for k, v in enc.encoder.state_dict().items())
    assert all(torch.equal(snap["base"][k], v) for k, v in base.state_dict().items())
    assert any(not torch.equal(snap["proj"][k], v) for k, v in enc.projection.state_dict().items())
    assert len(list((tmp_path / "cache").glob("distill-*.safetensors"))) == 4  # E and B states, train and val
    # the same run computing the frozen states every step instead of caching them
    enc2, enc_tok2, base2, base_tok2, cfg2 = _direct(tmp_path / "b", cache_text=False)
    assert all(torch.equal(start[k], v) for k, v in enc2.projection.state_dict().items())  # seeded head init
    res2 = distill_projection(enc2, enc_tok2, base2, base_tok2, REPORTS[:8], REPORTS[8:], cfg2, tmp_path / "b" / "w")
    assert res2.train.losses == pytest.approx(res.train.losses, rel=1e-4)
    assert res2.val_mse_constant == pytest.approx(res.val_mse_constant, rel=1e-5)
    assert res2.val_mse_initial == pytest.approx(res.val_mse_initial, rel=1e-5)


def test_document_level_target_is_the_mean_context_and_resume_equals_uninterrupted(tmp_path):
    from medsynth.training.distill import _Texts

    enc, enc_tok, base, base_tok, cfg = _direct(tmp_path / "a", extraction="cls")
    enc_tok.model_max_length = base_tok.model_max_length
    texts = _Texts(REPORTS[:3], enc, enc_tok, base, base_tok, "document")
    out, target = texts.batch(range(3))
    assert out.shape == target.shape == (3, 1, 32)
    full = texts.batch(range(3), full_context=True)
    assert full[0].shape == full[1].shape == (3, 77, 32)
    assert torch.allclose(target, full[1].mean(1, keepdim=True))
    # broadcast-vs-context MSE = MSE to the mean + the context's spread over positions (same gradient)
    spread = float(((full[1] - target) ** 2).mean())
    assert texts.mse(full_context=True) == pytest.approx(texts.mse() + spread, rel=1e-5)

    whole = distill_projection(enc, enc_tok, base, base_tok, REPORTS, [], cfg, tmp_path / "a" / "w")
    enc_b, tok_b, base_b, btok_b, cfg_b = _direct(tmp_path / "b", extraction="cls", stop_after=4)
    first = distill_projection(enc_b, tok_b, base_b, btok_b, REPORTS, [], cfg_b, tmp_path / "b" / "w")
    assert first.train.interrupted and first.train.step == 4
    enc_c, tok_c, base_c, btok_c, cfg_c = _direct(tmp_path / "c", extraction="cls")
    resumed = distill_projection(enc_c, tok_c, base_c, btok_c, REPORTS, [], cfg_c, tmp_path / "b" / "w")
    assert resumed.train.resumed_from == 4 and resumed.train.step == 6 and whole.n_val == 0
    assert all(torch.equal(a, b) for a, b in zip(enc.projection.state_dict().values(),
                                                 enc_c.projection.state_dict().values()))


def test_random_init_text_encoder_entry(tmp_path):
    folder = _tiny_bert_folder(tmp_path / "bert")
    trained = load_text_encoder({"name": folder})[0].encoder.state_dict()
    torch.manual_seed(1)
    a = load_text_encoder({"name": folder, "random_init": True})[0].encoder.state_dict()
    torch.manual_seed(2)  # the global RNG does not matter: the draw has its own seed
    b = load_text_encoder({"name": folder, "random_init": True})[0].encoder.state_dict()
    c = load_text_encoder({"name": folder, "random_init": True, "random_init_seed": 1})[0].encoder.state_dict()
    key = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], trained[key]) and not torch.equal(a[key], c[key])


def test_wrong_setups_raise_clear_errors(tmp_path):
    from medsynth.training.loop import DiffusionData, train_diffusion
    from medsynth.training.stages import train_diffusion_stage

    sd, enc, df = _world(tmp_path)
    run = lambda entry: train_diffusion_stage(df, tmp_path, entry, None, tmp_path / "w", tmp_path / "p", seed=0)
    no_head = _entry(sd, enc, "mean")
    del no_head["text_encoder"]["projection"]
    with pytest.raises(MedsynthError, match="no projection head"):
        run(no_head)
    scratch = {k: v for k, v in _entry(sd, enc, "mean").items() if k != "pretrained"}
    with pytest.raises(MedsynthError, match="needs `pretrained:`"):
        run(scratch)
    no_encoder = {k: v for k, v in _entry(sd, enc, "mean").items() if k != "text_encoder"}
    with pytest.raises(MedsynthError, match="needs a `text_encoder:` entry"):
        run(no_encoder)
    wrong_width = _entry(sd, enc, "mean")
    wrong_width["text_encoder"]["projection"] = {**MLP, "out_dim": 16}
    with pytest.raises(MedsynthError, match="attends to 32-d"):
        run(wrong_width)
    short = _entry(sd, _tiny_bert_folder(tmp_path / "short", positions=64), "tokens")
    with pytest.raises(MedsynthError, match="64 positions but the base model's context is 77"):
        run(short)
    missing = _entry(sd, enc, "mean", distill_corpus={"dataset": "nowhere"})
    with pytest.raises(MedsynthError, match="no manifest at"):
        run(missing)
    with pytest.raises(MedsynthError, match="has no diffusion loss"):
        train_diffusion(None, None, None, None, None, DiffusionData([], []),
                        TrainConfig(strategy="projection_distill"), tmp_path)
