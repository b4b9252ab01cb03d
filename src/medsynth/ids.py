"""Pseudonymous identifiers: a keyed hash (HMAC-SHA256) of the source identifier.

Without the key the mapping cannot be inverted or recomputed by someone holding only the outputs.
"""
from __future__ import annotations

import hashlib
import hmac
import os

from .errors import MedsynthError

DEMO_KEY = "medsynth-demo-key-not-secret"


def resolve_key(pseudonym_cfg: dict) -> bytes:
    """The pseudonymisation key: from the environment variable the config names, else the config's demo key."""
    env = pseudonym_cfg.get("key_env")
    if env and os.environ.get(env):
        return os.environ[env].encode()
    key = pseudonym_cfg.get("key")
    if not key:
        raise MedsynthError(
            f"pseudonym key missing: set the environment variable {env or 'named in pseudonym.key_env'} "
            "(real data) or pseudonym.key in the config (demo only)"
        )
    return str(key).encode()


def pseudonym(key: bytes, namespace: str, value: str, length: int = 16) -> str:
    """Stable pseudonymous id for `value` within `namespace` (e.g. 'mimic_cxr/patient')."""
    digest = hmac.new(key, f"{namespace}\x1f{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:length]
