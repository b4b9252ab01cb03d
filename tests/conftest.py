import os
from pathlib import Path

import pytest

# Tests run on CPU and must be deterministic; keep BLAS/torch from oversubscribing a 2-core runner.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO
