"""Pseudonymous identifiers: a keyed hash (HMAC-SHA256) of the source identifier.

Without the key the mapping cannot be inverted or recomputed by someone holding only the outputs.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from .errors import MedsynthError

DEMO_KEY = "medsynth-demo-key-not-secret"


def resolve_key(pseudonym_cfg: dict, real_data: bool = False) -> bytes:
    """The pseudonymisation key: the environment variable the config names, else the file `key_file`, else (only
    for embedded/phantom data, `real_data` False) the config's public demo key. A real dataset hashed with the
    public key would give ids anyone can recompute, so that is refused with one line saying how to set a secret."""
    env = pseudonym_cfg.get("key_env") or "MEDSYNTH_PSEUDONYM_KEY"
    if os.environ.get(env):
        return os.environ[env].encode()
    key_file = pseudonym_cfg.get("key_file")
    if key_file:
        path = Path(key_file).expanduser()
        try:
            secret = path.read_bytes().strip()
        except OSError:
            raise MedsynthError(f"config error at 'pseudonym.key_file': {path} is not a readable file") from None
        if not secret:
            raise MedsynthError(f"config error at 'pseudonym.key_file': {path} is empty")
        return secret
    if real_data:
        raise MedsynthError(
            f"real data needs a secret pseudonymisation key: export {env}=<secret> (e.g. from `openssl rand -hex 32`, "
            "kept out of the results) or set pseudonym.key_file; pseudonym.key is a public demo key for the phantom only"
        )
    key = pseudonym_cfg.get("key")
    if not key:
        raise MedsynthError(
            f"pseudonym key missing: set the environment variable {env} (real data) or pseudonym.key in the config "
            "(demo only)"
        )
    return str(key).encode()


def pseudonym(key: bytes, namespace: str, value: str, length: int = 16) -> str:
    """Stable pseudonymous id for `value` within `namespace` (e.g. 'mimic_cxr/patient')."""
    digest = hmac.new(key, f"{namespace}\x1f{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:length]
