"""Text encoders: extraction methods on the packaged MiniLM, projections, save/load, clear errors."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, CLIPTextConfig, CLIPTextModel

from _engine_fixtures import tiny_text_encoder, tiny_tokenizer
from medsynth.embedded import minilm_dir
from medsynth.errors import MedsynthError
from medsynth.models import loading
from medsynth.models.loading import load_text_encoder, wrap_encoder
from medsynth.models.text_encoders import ConditioningTextEncoder, embed_documents, encode, tokenize

TEXTS = ["No acute cardiopulmonary abnormality.", "Large left pleural effusion with adjacent atelectasis."]


@pytest.fixture(scope="module")
def minilm():
    return AutoModel.from_pretrained(str(minilm_dir())).eval()


def _reference(minilm, tokenizer):
    batch = tokenize(tokenizer, TEXTS)
    with torch.no_grad():
        return minilm(**batch), batch["attention_mask"]


@pytest.mark.parametrize("method", ["cls", "mean", "pooler", "model_specific", "tokens"])
def test_extraction_methods_match_their_definitions(minilm, method):
    te, tok = load_text_encoder({"name": "embedded:minilm", "extraction": method, "max_length": 24})
    te.eval()
    out, mask = _reference(minilm, tok)
    with torch.no_grad():
        got = encode(te, tok, TEXTS)
    hidden, m = out.last_hidden_state, mask[..., None].float()
    mean = (hidden * m).sum(1) / m.sum(1)
    want = {"cls": hidden[:, 0], "mean": mean, "pooler": out.pooler_output,
            "model_specific": torch.nn.functional.normalize(mean, dim=-1),  # sentence-transformers recipe
            "tokens": hidden}[method]
    if method != "tokens":  # one document vector, broadcast over the token axis (see ConditioningTextEncoder)
        assert got.shape == (2, 24, 384) and torch.equal(got, got[:, :1].expand_as(got))
        got = got[:, 0]
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)


def test_mean_pooling_masks_padding():
    short, tok = load_text_encoder({"name": "embedded:minilm", "extraction": "mean", "max_length": 32})
    long_tok = tiny_tokenizer()
    long_tok.model_max_length = 64
    a = embed_documents(short, tok, TEXTS)
    b = embed_documents(short, long_tok, TEXTS)
    assert torch.allclose(a, b, atol=1e-5)  # padding length must not change a masked mean


def test_model_specific_minilm_is_unit_norm_and_differs_from_cls():
    te, tok = load_text_encoder({"name": "embedded:minilm", "extraction": "model_specific"})
    assert te.config.st_pooling == "mean" and te.config.st_normalize
    emb = embed_documents(te, tok, TEXTS)
    assert emb.shape == (2, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_clip_model_specific_is_the_eos_pooled_state():
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=16, eos_token_id=99))
    te = wrap_encoder(clip.eval(), {"extraction": "model_specific"})
    ids = torch.tensor([[1, 5, 7, 99, 0, 0], [1, 9, 99, 0, 0, 0]])
    with torch.no_grad():
        got = te(ids)[0]
        want = clip(input_ids=ids).pooler_output
    assert not te.config.use_attention_mask  # SD-1.x calls CLIP without a mask
    assert got.shape == (2, 6, 32) and torch.allclose(got[:, 0], want, atol=1e-6)


@pytest.mark.parametrize("kind,layers", [("linear", [torch.nn.Linear]),
                                          ("mlp", [torch.nn.Linear, torch.nn.LayerNorm, torch.nn.ReLU,
                                                   torch.nn.Linear])])
@pytest.mark.parametrize("extraction", ["tokens", "cls"])
def test_projection_heads_token_and_document_level(kind, layers, extraction):
    tok = tiny_tokenizer()
    te = tiny_text_encoder(tok, projection={"kind": kind, "out_dim": 24}, extraction=extraction)
    mods = [te.projection] if kind == "linear" else list(te.projection)
    assert [type(m) for m in mods] == layers
    with torch.no_grad():
        out = encode(te, tok, TEXTS)
        raw = encode(te, tok, TEXTS, project=False)
    assert out.shape == (2, 16, 24) and raw.shape == (2, 16, 32)
    assert torch.allclose(out, te.projection(raw), atol=1e-6)
    if extraction == "cls":  # document level: one projected vector per prompt
        assert torch.equal(out, out[:, :1].expand_as(out))
    else:
        assert not torch.allclose(out[:, 0], out[:, 1])


def test_save_and_reload_roundtrip(tmp_path):
    tok = tiny_tokenizer()
    te = tiny_text_encoder(tok, projection={"kind": "mlp", "out_dim": 24, "hidden_dim": 40}, extraction="mean")
    te.save_pretrained(tmp_path)
    again = ConditioningTextEncoder.from_pretrained(tmp_path)
    assert again.config.extraction == "mean" and again.config.projection["hidden_dim"] == 40
    with torch.no_grad():
        assert torch.allclose(encode(te.eval(), tok, TEXTS), encode(again.eval(), tok, TEXTS), atol=1e-6)
    assert list(tmp_path.glob("*.safetensors"))


def test_missing_weights_raise_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MedsynthError, match=r"StanfordAIMI/RadBERT.*local folder path.*hf download"):
        load_text_encoder({"name": "StanfordAIMI/RadBERT"})
    with pytest.raises(MedsynthError, match="no-such-folder"):
        load_text_encoder({"name": str(tmp_path / "no-such-folder")})


def test_trust_remote_code_is_off_unless_the_entry_sets_it(monkeypatch):
    seen = []
    real = loading.pretrained

    def spy(loader, entry, what, **kwargs):
        seen.append(bool(entry.get("trust_remote_code", False)))
        return real(loader, entry, what, **kwargs)

    monkeypatch.setattr(loading, "pretrained", spy)
    load_text_encoder({"name": "embedded:minilm"})
    assert seen and not any(seen)


def test_bad_extraction_choices_are_rejected():
    tok = tiny_tokenizer()
    with pytest.raises(MedsynthError, match="unknown text extraction"):
        tiny_text_encoder(tok, extraction="max")
    te = tiny_text_encoder(tok, extraction="model_specific")  # a plain BERT has no model-specific pooling
    with pytest.raises(MedsynthError, match="no model-specific extraction"):
        encode(te, tok, TEXTS)
    with pytest.raises(MedsynthError, match="pooled extraction"):
        embed_documents(tiny_text_encoder(tok), tok, TEXTS)
