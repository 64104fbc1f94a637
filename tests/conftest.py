"""Shared test setup: markers live in pyproject.toml; here the paths and the embedded model."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
os.environ.setdefault("FTPLAY_CACHE", str(ROOT / ".cache" / "ftplay"))
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_ref():
    """The embedded default model (built once, cached under FTPLAY_CACHE)."""
    from ftplay import models

    return models.resolve("embedded")


@pytest.fixture(scope="session")
def tiny_tok(tiny_ref):
    from ftplay import models

    return models.load_tokenizer(tiny_ref)
