"""Modal: write the app that runs the playbook's training stages on a GPU rented by the second and
serves the adapter with vLLM, and read back what Modal itself makes of it, offline.

`write_app` renders a plain Modal app file (no ftplay magic at deploy time): two images that mirror
the project's two environments (`make setup GPU=1`: the notebooks' packages with the `train` extra;
`.venv-serve`: the official vLLM), a `modal.Volume` holding run directories, a GPU function that runs
`ftplay run --only ...` into the volume, and a `@modal.web_server` function that starts
`vllm serve BASE --enable-lora --lora-modules ...` with the command `ftplay.serve.gpu_command` builds.
`inspect_app` imports that file with the `modal` package (the optional `routes` extra) and reports
functions, GPUs, secrets, volumes, the web server and each image layer's Dockerfile commands, without
a token or any network call.

MODEL is a hub id on Modal: `tiny:<hub id>` (a stand-in that proves the path here) becomes the hub id
itself, since the GPU run is the real one. Gated models (Llama 3.1, Mistral v0.3) need a Hugging Face
token where they download: both functions get the Modal Secret HF_SECRET, which holds HF_TOKEN.
"""
import importlib.util
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import run_plan, stages, standins
from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# GPU names Modal accepts for `gpu=`, from https://modal.com/docs/guide/gpu (read 2026-11). The
# modal 1.6.4 client does not check them (modal/_utils/function_utils.py `parse_gpu_config` only
# upper-cases the string); the server rejects an unknown name at deploy time, so ftplay checks first.
# A10G is the older name of A10, still in Modal's examples. "NAME:N" asks for N GPUs (8 at most, 4 on A10).
MODAL_GPUS = ("T4", "L4", "A10", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "RTX-PRO-6000",
              "H100", "H100!", "H200", "B200", "B200+")
MAX_GPUS = {"A10": 4, "A10G": 4}
# Modal object names (apps, volumes): modal/_utils/name_utils.py `is_valid_object_name` (1.6.4).
OBJECT_NAME = re.compile(r"^[a-zA-Z0-9-_.]{1,64}$")
MAX_TIMEOUT_S = 24 * 3600          # Modal's longest function timeout (modal.com/docs/guide/timeouts)
STAGES = stages.TRAINING
# What the train image leaves out of the project folder: environments, run outputs, caches.
IGNORE = (".git", ".venv", ".venv-serve", "runs", ".cache", "**/__pycache__", "**/.ipynb_checkpoints")


def parse_gpu(value, param="GPU"):
    """(name, count) for a Modal GPU string like 'A100-80GB' or 'H100:2'; ConfigError naming `param`."""
    name, _, count = str(value).partition(":")
    name = name.upper()
    problems = []
    if name not in MODAL_GPUS:
        problems.append(f"{param}={value!r} is not a GPU Modal offers; choose one of {', '.join(MODAL_GPUS)}")
    n = int(count) if count.isdigit() else 0 if count else 1
    if not 1 <= n <= MAX_GPUS.get(name, 8):
        problems.append(f"{param}={value!r}: the count after ':' must be 1-{MAX_GPUS.get(name, 8)}")
    if problems:
        raise ConfigError(problems, "invalid Modal GPU")
    return name, n


@dataclass(frozen=True)
class ModalConfig:
    """One Modal app for one run: where it trains, where it serves, what it keeps."""
    run_name: str                        # folder in the runs volume: <runs volume>/<run_name>
    gpu: str = "A100-80GB"               # training GPU (Modal name, "NAME:N" for N GPUs)
    serve_gpu: str = "L40S"              # serving GPU; 48 GB holds an 8B base and its adapters; "NAME:N" shards
                                         # the base over N GPUs (vLLM --tensor-parallel-size N; N = 1, 2, 4, 8)
    params: dict = field(default_factory=dict)   # NAME: value for `ftplay run --params` (e.g. MODEL)
    only: tuple = STAGES                 # notebooks the GPU function runs
    app_name: str = "ftplay"
    runs_volume: str = "ftplay-runs"     # modal.Volume with the run directories, mounted at /runs
    hf_cache_volume: str = "ftplay-hf-cache"   # hub downloads, shared by training and serving
    hf_secret: str = "huggingface"       # modal.Secret with HF_TOKEN, for gated models (Llama 3.1); "": none.
                                         # Create it once: modal secret create huggingface HF_TOKEN=hf_...
    adapters: dict = field(default_factory=dict)  # {served name: path in the runs volume}; {}: this run's adapter
    timeout_s: int = 4 * 3600            # the training function's limit (Modal allows 24 h)
    serve_concurrency: int = 32          # requests one vLLM container takes at once
    scaledown_s: int = 300               # idle seconds before a serving container stops (billed)
    startup_timeout_s: int = 900         # vLLM must answer on its port within this
    max_model_len: int = 512             # prompt + answer tokens the server accepts
    python_version: str = "3.11"

    def __post_init__(self):
        object.__setattr__(self, "only", tuple(self.only))
        model = str(self.params.get("MODEL", ""))
        if model.startswith(standins.PREFIX):   # the stand-in proved the path here; Modal runs the real model
            object.__setattr__(self, "params", {**self.params, "MODEL": standins.family_of(model).hub_id})
        if not self.adapters:
            object.__setattr__(self, "adapters", {"triage": f"{self.run_name}/train/adapter"})
        p = []
        for name, value in (("GPU", self.gpu), ("SERVE_GPU", self.serve_gpu)):
            try:
                parse_gpu(value, name)
            except ConfigError as e:
                p += e.problems
        n = self.serve_gpus
        if n and n & (n - 1):
            p.append(f"SERVE_GPU={self.serve_gpu!r}: vLLM shards the base over a power of two of GPUs "
                     "(--tensor-parallel-size); use 1, 2, 4 or 8")
        names = [("RUN_NAME", self.run_name), ("APP_NAME", self.app_name), ("RUNS_VOLUME", self.runs_volume),
                 ("HF_CACHE_VOLUME", self.hf_cache_volume)]
        names += [("HF_SECRET", self.hf_secret)] if self.hf_secret else []
        for name, value in names:
            if not OBJECT_NAME.match(str(value)):
                p.append(f"{name}={value!r}: use 1-64 letters, digits, '-', '_' or '.' (Modal's rule for names)")
        if not 60 <= self.timeout_s <= MAX_TIMEOUT_S:
            p.append(f"TIMEOUT_S={self.timeout_s} must be 60-{MAX_TIMEOUT_S} (Modal's limit is 24 h)")
        if not 2 <= self.scaledown_s <= 3600:
            p.append(f"SCALEDOWN_S={self.scaledown_s} must be 2-3600 (Modal's scaledown_window range)")
        if self.serve_concurrency < 1 or self.startup_timeout_s <= 0 or self.max_model_len < 16:
            p.append("SERVE_CONCURRENCY >= 1, STARTUP_TIMEOUT_S > 0 and MAX_MODEL_LEN >= 16 are needed")
        for name, path in self.adapters.items():
            if not re.match(r"^[A-Za-z0-9_.-]+$", name) or Path(path).is_absolute() or ".." in Path(path).parts:
                p.append(f"adapter {name!r}: {path!r} must be a relative path inside the runs volume "
                         "(e.g. 'RUN/train/adapter') under a plain name")
        if p:
            raise ConfigError(p, "invalid Modal parameters")

    @property
    def serve_gpus(self):
        """GPUs of the serving function, vLLM's tensor-parallel size (0 when SERVE_GPU is invalid)."""
        try:
            return parse_gpu(self.serve_gpu)[1]
        except ConfigError:
            return 0


def settings(cfg, root=ROOT):
    """The literal settings the app file is written with (also what the notebook shows)."""
    try:
        from tomllib import loads
    except ImportError:        # Python 3.10: the toml package comes with modal
        from toml import loads
    meta = loads((Path(root) / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    torch = [d for d in meta["dependencies"] if d.startswith("torch==")]
    return {"APP_NAME": cfg.app_name, "RUN_NAME": cfg.run_name, "GPU": cfg.gpu, "SERVE_GPU": cfg.serve_gpu,
            "PYTHON": cfg.python_version, "PROJECT_DIR": str(Path(root).resolve()),
            "PYPROJECT": str((Path(root) / "pyproject.toml").resolve()), "REMOTE_PROJECT": "/root/ftplay-project",
            "IGNORE": list(IGNORE), "TORCH": torch, "TRAIN_EXTRAS": ["train"], "SERVE_PACKAGES": extras["serve-gpu"],
            "RUNS_VOLUME": cfg.runs_volume, "HF_CACHE_VOLUME": cfg.hf_cache_volume, "HF_SECRET": cfg.hf_secret,
            "SERVE_GPUS": cfg.serve_gpus, "RUNS_DIR": "/runs",
            "HF_CACHE_DIR": "/root/.cache/huggingface", "PARAMS": dict(cfg.params), "ONLY": list(cfg.only),
            "ADAPTERS": dict(cfg.adapters), "TIMEOUT_S": cfg.timeout_s, "VLLM_PORT": 8000,
            "SERVE_CONCURRENCY": cfg.serve_concurrency, "SCALEDOWN_S": cfg.scaledown_s,
            "STARTUP_TIMEOUT_S": cfg.startup_timeout_s, "MAX_MODEL_LEN": cfg.max_model_len}


def write_app(cfg, out, root=ROOT):
    """Write the Modal app file for `cfg` to `out` and return its path. The notebooks and parameters
    are checked first (`ftplay run` would refuse them on the GPU otherwise)."""
    run_plan.plan_groups(list(cfg.only), dict(cfg.params))   # unknown notebooks, tasks or parameter names fail here
    values = settings(cfg, root)
    block = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    text = TEMPLATE.replace("@@SETTINGS@@", block).replace("@@FILE@@", Path(out).name)
    text = text.replace("@@RUN@@", cfg.run_name).replace("@@VOLUME@@", cfg.runs_volume)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


# ---------------------------------------------------------------- what Modal makes of it
def load_app(path):
    """Import an app file as a fresh module (Modal objects are lazy: nothing is sent)."""
    name = f"ftplay_modal_app_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def inspect_app(path):
    """What Modal reports about the app file at `path`, offline: {"app", "functions": {name:
    {"gpus", "timeout", "secrets", "volumes", "web_server", "concurrency", "image"}}}; secrets are
    the reprs Modal keeps until it deploys (`modal.Secret.from_name('huggingface')`). Functions are listed
    the way `modal run` finds them (modal.cli.import_refs.list_cli_commands) and described by
    `Function.info()`. Two facts have no public accessor in modal 1.6.4 and are read from its
    private state: the web server's port and timeout (`_webhook_config`) and each image layer's
    Dockerfile commands (the layer's `dockerfile_function`, rendered at the newest builder
    version this client knows; the server may pick an older one)."""
    from modal._image import LATEST_IMAGE_BUILDER_VERSION
    from modal._utils.async_utils import synchronizer
    from modal.cli.import_refs import _get_module_members, list_cli_commands

    module = load_app(path)
    members, _ = _get_module_members(module)
    apps = [m for m in members.values() if type(m).__name__ == "App"]
    out = {"app": apps[0].name if apps else None, "functions": {}}
    for cmd in list_cli_commands(members):
        fn = cmd.runnable
        info = fn.info()
        inner = synchronizer._translate_in(fn)
        hook = inner._webhook_config
        out["functions"][cmd.names[0]] = {
            "gpus": [list(g) for g in info.gpus], "timeout": info.timeout, "secrets": list(info.secrets),
            "volumes": {p: {"name": v.name, "read_only": v.read_only} for p, v in info.volumes.items()},
            "web_server": {"port": hook.web_server_port, "startup_timeout": hook.web_server_startup_timeout,
                           "requires_proxy_auth": hook.requires_proxy_auth} if cmd.is_web_endpoint else None,
            "concurrency": info.concurrency_info.max_inputs if info.concurrency_info else None,
            "image": _image_layers(inner._spec.image, LATEST_IMAGE_BUILDER_VERSION)}
    return out


def _closure(obj):
    fn = obj._load
    return dict(zip(fn.__code__.co_freevars, [c.cell_contents for c in fn.__closure__ or ()]))


def _entry(e):
    """(local, remote) of a mount entry: a directory, a file, or a Python package by name."""
    local = getattr(e, "local_dir", None) or getattr(e, "local_file", None) or getattr(e, "module_name", None)
    remote = getattr(e, "remote_path", None) or getattr(e, "remote_dir", None)
    return str(local), str(remote)


def _image_layers(image, version):
    """[{"commands"} | {"mount": [(local, remote)]}] from the base image up."""
    layers = []
    while image is not None:
        env = _closure(image)
        if "mount" in env:                              # add_local_* (mounted at container start)
            layers.append({"mount": [_entry(e) for e in env["mount"]._entries]})
            image = env["base_image"]
            continue
        spec = env["dockerfile_function"](version) if env.get("dockerfile_function") else None
        layers.append({"commands": list(spec.commands) if spec else []})
        bases = list((env.get("base_images") or {}).values())
        image = bases[0] if bases else None
    return layers[::-1]


TEMPLATE = '''"""Modal app for the ftplay run @@RUN@@: the playbook's training stages on a GPU rented by the second,
and vLLM serving the adapter(s). Written by ftplay.modal_app.write_app; change the settings below or
write it again.

    modal run @@FILE@@::train      # curate, train, evaluate on GPU; the run lands in the volume
    modal deploy @@FILE@@          # serve: an OpenAI-compatible vLLM endpoint with the adapters
    modal volume get @@VOLUME@@ @@RUN@@ runs/@@RUN@@   # copy the run directory here

Each container is billed by the second it runs (modal.com/pricing). The endpoint asks for Modal's
proxy-auth headers (Modal-Key, Modal-Secret), so it is not open to anyone who finds the URL.
A gated base (Llama 3.1) downloads with the token in the Modal Secret HF_SECRET; create it once,
after accepting the model's licence on its hub page:

    modal secret create huggingface HF_TOKEN=hf_...
"""
import json
import os
import subprocess
import sys

import modal

# ---------------------------------------------------------------- settings
@@SETTINGS@@

# ---------------------------------------------------------------- images, volumes
# The notebooks' environment as `make setup GPU=1` builds it: the CUDA torch from PyPI, then the
# project's pinned dependencies and its `train` extra (Unsloth, bitsandbytes); the project folder is
# mounted when a container starts. vLLM gets its own image, as it gets .venv-serve here: it pins its
# own torch.
train_image = (
    modal.Image.debian_slim(python_version=PYTHON)
    .pip_install(*TORCH)
    .pip_install_from_pyproject(PYPROJECT, optional_dependencies=TRAIN_EXTRAS)
    .env({"FTPLAY_CACHE": RUNS_DIR + "/.cache/ftplay", "HF_HOME": HF_CACHE_DIR, "PYTHONPATH": REMOTE_PROJECT,
          "TQDM_DISABLE": "1"})
    .add_local_dir(PROJECT_DIR, REMOTE_PROJECT, ignore=IGNORE)
)
serve_image = (
    modal.Image.debian_slim(python_version=PYTHON)
    .uv_pip_install(*SERVE_PACKAGES)
    .env({"HF_HOME": HF_CACHE_DIR, "VLLM_NO_USAGE_STATS": "1"})
    .add_local_python_source("ftplay")
)
# HF_TOKEN for the functions that download the base (gated models); Modal checks the key at deploy.
secrets = [modal.Secret.from_name(HF_SECRET, required_keys=["HF_TOKEN"])] if HF_SECRET else []
runs = modal.Volume.from_name(RUNS_VOLUME, create_if_missing=True)
hf_cache = modal.Volume.from_name(HF_CACHE_VOLUME, create_if_missing=True)
app = modal.App(APP_NAME)


# ---------------------------------------------------------------- train
def train_argv(params_path):
    """The `ftplay run` command the GPU function runs."""
    return [sys.executable, "-m", "ftplay.cli", "run", "--params", params_path, "--only", ",".join(ONLY),
            "--out", RUNS_DIR + "/" + RUN_NAME]


@app.function(image=train_image, gpu=GPU, timeout=TIMEOUT_S, secrets=secrets,
              volumes={RUNS_DIR: runs, HF_CACHE_DIR: hf_cache})
def train():
    """Run the training stages into the volume; returns the run summary (summary.json)."""
    params_path = "/tmp/ftplay-params.yaml"
    with open(params_path, "w") as f:
        json.dump(PARAMS, f)   # YAML reads JSON
    done = subprocess.run(train_argv(params_path), cwd=REMOTE_PROJECT)
    runs.commit()
    with open(RUNS_DIR + "/" + RUN_NAME + "/summary.json") as f:
        summary = json.load(f)
    summary["exit_code"] = done.returncode
    return summary


# ---------------------------------------------------------------- serve
def vllm_command(adapters=None, runs_dir=RUNS_DIR):
    """(argv, env) that start vLLM with one base and every adapter, built by ftplay.serve from the
    adapters as trained: the base recorded in their ftplay_adapter.json, --max-lora-rank from their ranks,
    the base sharded over SERVE_GPUS GPUs (--tensor-parallel-size)."""
    from ftplay import serve

    paths = {name: os.path.join(runs_dir, path) for name, path in (adapters or ADAPTERS).items()}
    bases = {name: serve.adapter_meta(path)["base"]["path"] for name, path in paths.items()}
    if len(set(bases.values())) != 1:
        raise ValueError(f"one vLLM server serves one base; these adapters were trained on different ones: {bases}")
    cfg = serve.ServeConfig(base=next(iter(bases.values())), adapters=paths, host="0.0.0.0", port=VLLM_PORT,
                            backend="cuda", python=sys.executable, max_model_len=MAX_MODEL_LEN,
                            runtime_lora_updating=False, tensor_parallel_size=SERVE_GPUS)
    return serve.gpu_command(cfg), serve.environment(cfg)


@app.function(image=serve_image, gpu=SERVE_GPU, scaledown_window=SCALEDOWN_S, timeout=STARTUP_TIMEOUT_S,
              secrets=secrets, volumes={RUNS_DIR: runs.read_only(), HF_CACHE_DIR: hf_cache})
@modal.concurrent(max_inputs=SERVE_CONCURRENCY)
@modal.web_server(port=VLLM_PORT, startup_timeout=STARTUP_TIMEOUT_S, requires_proxy_auth=True)
def serve():
    """vLLM's OpenAI-compatible server: model 'base' and one model per adapter name."""
    argv, env = vllm_command()
    subprocess.Popen(argv, env={**os.environ, **env})
'''
