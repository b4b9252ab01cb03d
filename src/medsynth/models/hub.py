"""Which pretrained models a run will load, and whether each is there: checked when the DAG is built, before the
first job, so a missing checkpoint is one line naming its config key instead of a traceback hours later.

Light on purpose (no torch, transformers or diffusers imports): the Snakefile calls it on every DAG build.
A model is available when it is a local folder with its config file, or a hub id whose files are in the Hugging
Face cache (HF_HUB_CACHE / HF_HOME). Offline (HF_HUB_OFFLINE=1) that is all; online, an id not in the cache is
looked up on the hub (it will be downloaded by the job), and a hub that does not answer counts as missing.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..embedded import minilm_dir
from ..errors import MedsynthError

EMBEDDED = {"embedded:minilm": minilm_dir}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def resolve_name(name: str) -> str:
    """A model name as from_pretrained takes it: the embedded encoders' package folder, else unchanged."""
    if name in EMBEDDED:
        return str(EMBEDDED[name]())
    return name


def check_remote_code(entry: dict, where: str) -> None:
    """trust_remote_code runs the repository's Python: for a hub id, only at a pinned commit (a branch or tag can
    move to new code after review). A local folder's code is the user's own copy."""
    if not entry.get("trust_remote_code") or Path(resolve_name(entry["name"])).expanduser().is_dir():
        return
    if not _COMMIT.match(str(entry.get("revision") or "")):
        raise MedsynthError(f"config error at '{where}': '{entry['name']}' enables trust_remote_code without a pinned "
                            f"revision; set revision: <40-hex commit hash> (got {entry.get('revision')!r})")


@dataclass(frozen=True)
class ModelNeed:
    key: str                  # the config key that names it, e.g. models.choksi2025.text_encoder.name
    name: str                 # hub id or local path
    config_file: str          # the file that must exist (relative to the repo / folder)
    weights_dir: str = ""     # folder whose *.safetensors must exist ('' = the root)
    need_weights: bool = True # False for a random_init entry (config and tokenizer only)
    revision: str | None = None
    trust_remote_code: bool = False


def run_models(config: dict) -> list[ModelNeed]:
    """Every pretrained model the config's model entries and studies load (embedded ones excluded)."""
    needs: list[ModelNeed] = []
    for m, entry in (config.get("models") or {}).items():
        pre = entry.get("pretrained") or {}
        if pre.get("name"):  # a Stable Diffusion checkpoint: its pipeline index and the VAE / U-Net weights
            for sub in ("vae", "unet"):
                needs.append(ModelNeed(f"models.{m}.pretrained.name", pre["name"], f"{sub}/config.json", sub,
                                       revision=pre.get("revision")))
        te = entry.get("text_encoder") or {}
        if te.get("name") and te["name"] not in EMBEDDED:
            sub = te.get("subfolder") or ""
            needs.append(ModelNeed(f"models.{m}.text_encoder.name", te["name"], f"{sub}/config.json".lstrip("/"), sub,
                                   need_weights=not te.get("random_init"), revision=te.get("revision"),
                                   trust_remote_code=bool(te.get("trust_remote_code"))))
    study = (config.get("chambon2022") or {}).get("text_study") or {}
    if study and study.get("enabled", True):
        for i, enc in enumerate(study.get("encoders") or []):
            if enc.get("model") and enc["model"] != "minilm":  # 'minilm': the packaged encoder
                needs.append(ModelNeed(f"chambon2022.text_study.encoders.{i}.model", enc["model"], "config.json", "",
                                       need_weights=not enc.get("random_init"), revision=enc.get("revision"),
                                       trust_remote_code=bool(enc.get("trust_remote_code"))))
    return needs


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _has_safetensors(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix == ".safetensors" for p in folder.iterdir())


def problem(need: ModelNeed) -> str | None:
    """Why `need` cannot be loaded, or None when it can."""
    local = Path(need.name).expanduser()
    if local.is_dir() or need.name.startswith(("/", ".", "~")):
        if not (local / need.config_file).is_file():
            return f"local folder {local} has no {need.config_file}"
        if need.need_weights and not _has_safetensors(local / need.weights_dir):
            return (f"local folder {local / need.weights_dir} has no *.safetensors weights (medsynth never unpickles "
                    "*.bin: convert them with save_pretrained(safe_serialization=True) on a trusted machine)")
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(need.name, need.config_file, revision=need.revision)
    except Exception as err:  # noqa: BLE001 -- a malformed id: reported as such
        return f"'{need.name}' is neither a local folder nor a valid hub id ({type(err).__name__})"
    if isinstance(cached, str):
        snapshot = Path(cached).parents[len(Path(need.config_file).parts) - 1]
        if need.need_weights and not _has_safetensors(snapshot / need.weights_dir):
            return (f"the Hugging Face cache has {need.name}'s config but no *.safetensors weights; download them: "
                    f"`hf download {need.name}{f' --revision {need.revision}' if need.revision else ''}`")
        return None
    if _offline():
        return (f"not in the Hugging Face cache and HF_HUB_OFFLINE is set; on a machine with internet run "
                f"`hf download {need.name}{f' --revision {need.revision}' if need.revision else ''}` (HF_HOME "
                "shared with this one), or put a local folder path in the config")
    try:
        from huggingface_hub import file_exists

        if file_exists(need.name, need.config_file, revision=need.revision):
            return None  # the job downloads it
        return f"the hub has no {need.config_file} in '{need.name}'" + (f" at {need.revision}" if need.revision else "")
    except Exception as err:  # noqa: BLE001 -- no network, gated repo, unknown id: the job would fail the same way
        return (f"not in the Hugging Face cache and the hub did not answer ({type(err).__name__}); download it with "
                f"`hf download {need.name}` where there is internet, or give a local folder")


def check_run_models(config: dict) -> None:
    """Raise one MedsynthError listing every model the run cannot load, one line each, naming its config key."""
    lines, seen = [], set()
    for need in run_models(config):
        if need.trust_remote_code:
            check_remote_code({"name": need.name, "trust_remote_code": True, "revision": need.revision}, need.key)
        why = problem(need)
        if why and (need.key, need.name) not in seen:
            seen.add((need.key, need.name))
            lines.append(f"model missing at '{need.key}' ({need.name}): {why}")
    if lines:
        raise MedsynthError("\n".join(lines))
