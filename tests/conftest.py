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


@pytest.fixture
def run_notebook():
    """Execute notebooks/<stem>.ipynb with papermill into run_dir; return what it recorded."""
    import json

    import papermill as pm

    def run(stem, run_dir, **params):
        pm.execute_notebook(str(ROOT / "notebooks" / f"{stem}.ipynb"), str(run_dir / f"{stem}.ipynb"),
                            parameters={"RUN_DIR": str(run_dir), **params}, cwd=str(ROOT), kernel_name="python3",
                            progress_bar=False)
        return json.loads((run_dir / f"{stem}.json").read_text())

    return run
