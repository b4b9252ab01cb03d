"""Tiny models for the engine tests (built in the test, CPU, seeded): 32x32 one-channel images."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler
from transformers import AutoTokenizer, BertConfig, BertModel

from medsynth.embedded import minilm_dir
from medsynth.models.autoencoder import build_autoencoder
from medsynth.models.loading import wrap_encoder
from medsynth.models.unet import build_unet
from medsynth.training.data import TensorImages

PROMPTS = ["normal chest x ray", "left pleural effusion", "cardiomegaly", "right upper lobe nodule"]


def tiny_tokenizer():
    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    tok.model_max_length = 16
    return tok


def tiny_text_encoder(tokenizer, projection=None, extraction="tokens", seed=0):
    torch.manual_seed(seed)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0))
    return wrap_encoder(bert, {"extraction": extraction, "projection": projection})


def tiny_vae(seed=0):
    torch.manual_seed(seed)
    return build_autoencoder(in_channels=1, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                             norm_num_groups=8, sample_size=32)


def tiny_unet(cross_dim=32, seed=0):
    torch.manual_seed(seed)
    return build_unet(sample_size=16, in_channels=4, cross_attention_dim=cross_dim, block_out_channels=(16, 32),
                      attention_resolutions=(8,), layers_per_block=1, attention_head_dim=8, norm_num_groups=8)


def tiny_images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    imgs = []
    for _ in range(n):
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([1.0, 1.0, 0.4]) + torch.tensor([-0.5, -0.5, 0.2]))
        imgs.append((((xx - cx) ** 2 + (yy - cy) ** 2) < r ** 2).float() * 1.6 - 0.8)
    return TensorImages(torch.stack(imgs)[:, None])


def ddpm():
    return DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")


def tiny_clip_tokenizer(folder):
    """A byte-level CLIPTokenizer (no merges) written to `folder`: the tokenizer class of Stable Diffusion."""
    import json
    from pathlib import Path

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tok.model_max_length = 77
    return tok


def save_tiny_stable_diffusion(folder, seed=0):
    """A tiny Stable Diffusion checkpoint (RGB AutoencoderKL, UNet2DConditionModel, CLIP text model + tokenizer,
    PNDM scheduler with SD's schedule), saved by stock diffusers as a local pipeline folder (safetensors)."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tiny_clip_tokenizer(f"{folder}-tokenizer")
    torch.manual_seed(seed)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=77, bos_token_id=512,
                                        eos_token_id=513, pad_token_id=513))
    torch.manual_seed(seed + 1)
    vae = build_autoencoder(in_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                            norm_num_groups=8, sample_size=32)
    vae.register_to_config(scaling_factor=0.7)
    sched = PNDMScheduler(num_train_timesteps=100, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=clip, tokenizer=tok, unet=tiny_unet(32, seed=seed + 2),
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def folder_weights(folder):
    """Every tensor of a saved model folder, whatever its sharding (a pipeline's text encoder is two shards)."""
    from safetensors.torch import load_file
    return {k: v for f in sorted(Path(folder).glob("*.safetensors")) for k, v in load_file(str(f)).items()}
