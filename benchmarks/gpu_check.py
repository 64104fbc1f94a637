"""GPU check: Unsloth training (4-bit and 16-bit base weights) and official CUDA vLLM serving, per model.

For each --model (default: the embedded model and the stand-ins of Llama 3.1, Qwen 2.5 and Mistral
v0.3), each mode runs ftplay's own train.train() (engine 'unsloth', the embedded recipe, --steps
steps, no eval) in a fresh process, so peak memory (torch.cuda.max_memory_allocated) and Unsloth's
patching are each mode's own; `unsloth_patched` says whether Unsloth came before transformers, TRL
and PEFT there (train.unsloth_patched()). tokens_per_s counts the whole run, warm-up and kernel
compilation included; steady_tokens_per_s is the median of the logged intervals after the first.
Then `vllm serve` (serve.gpu_command: one base + the adapters both modes trained) answers a short
load test (tokens/s); where `vllm` is not importable the serve part reports "not run: vllm not
installed". Without a CUDA GPU it prints the plan and exits 0 (so `make bench` passes on CPU).
--dry-run prints, per model, what train.train() would pass to FastLanguageModel.from_pretrained /
get_peft_model and to SFTConfig on a bf16 GPU (a stand-in `unsloth` module records the calls and
SFTConfig stops the run before anything trains) and the vLLM command. Last line printed: JSON.

What the box needs (it has no network): `.whl/` from benchmarks/gpu_wheels.sh (Unsloth, TRL, PEFT,
bitsandbytes, ... and the small packages the stand-ins' tokenizers are built from) and `.gpu/model`
(the embedded model, 17 MB; its build pretrains for ~3 min). The stand-ins are built on the box
(seconds each, into $FTPLAY_CACHE): in float32 they take 272, 326 and 72 MB, more than a 64 MiB
carry (gpu_wheels.sh builds them into .gpu/cache with CARRY_STANDINS=1 where the copy allows it).
Serving needs the official CUDA vLLM (vllm==0.33.0, the serve-gpu extra, with its own torch; GBs):
carry an environment that has it and point PYTHON at it, else the serve part is "not run".

    bash benchmarks/gpu_check.sh                      # on the GPU box (installs carried wheels)
    .venv/bin/python benchmarks/gpu_check.py --dry-run --model tiny:Qwen/Qwen2.5-7B-Instruct
"""
import argparse
import csv
import importlib.machinery
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ftplay import train  # noqa: E402  # isort: skip  (first: on a GPU it imports Unsloth before transformers)
from ftplay import models, prompts, recipes, serve, serve_checks, standins  # noqa: E402

MODES = {"4bit": True, "16bit": False}
ALL_MODELS = ("embedded", *(standins.PREFIX + h for h in standins.FAMILIES))
CARRIED_EMBEDDED = ROOT / ".gpu" / "model"   # gpu_wheels.sh copies the embedded model here
# What the GPU box reports for an SM 90 card; the dry run pretends to be one.
CUDA_BF16 = {"device": "cuda", "name": "simulated bf16 GPU (dry run)", "bf16": True,
             "compute_dtype": "bfloat16", "why": "dry run: a CUDA device with bf16 assumed"}


def conversations(n, path=ROOT / "data" / "tickets_raw.csv"):
    """n chat conversations from the project's ticket export (rows with text and label)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["text"].strip() and r["label"].strip()]
    labels = sorted({r["label"] for r in rows})
    return [prompts.messages(r["text"], labels, r["label"]) for r in rows[:n]]


def recipe(four, args):
    return recipes.recipe_for("embedded", {"engine": "unsloth", "load_in_4bit": four, "max_steps": args.steps,
                                         "batch_size": args.batch_size, "logging_steps": args.logging_steps,
                                         "save_steps": 0})


def dry_run(four, ref, convs, args):
    """The calls train.train() makes for one mode, recorded instead of run."""
    calls = {}

    class Stop(Exception):
        pass

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kw):
            from transformers import AutoTokenizer

            calls["from_pretrained"] = kw
            return types.SimpleNamespace(), AutoTokenizer.from_pretrained(kw["model_name"])

        @staticmethod
        def get_peft_model(model, **kw):
            calls["get_peft_model"] = kw
            return model

    def sft_config(**kw):
        calls["sft_config"] = kw
        raise Stop

    fake = types.ModuleType("unsloth")
    fake.FastLanguageModel = FastLanguageModel
    fake.__spec__ = importlib.machinery.ModuleSpec("unsloth", None)
    import datasets  # noqa: F401  (imported before the stand-in goes in, so nothing binds to it)
    import trl

    cfg = recipe(four, args)
    real = sys.modules.get("unsloth")
    sys.modules["unsloth"] = fake
    try:
        with mock.patch.object(trl, "SFTConfig", sft_config), \
                mock.patch.object(recipes, "device_info", lambda: dict(CUDA_BF16)), \
                mock.patch.object(recipes, "_cuda", lambda: True), tempfile.TemporaryDirectory() as work:
            engine, four_used, optim, reasons = recipes.resolve_engine(cfg)
            try:
                train.train(cfg, ref, convs, None, work)
            except Stop:
                pass
    finally:
        if real is None:
            sys.modules.pop("unsloth", None)
        else:
            sys.modules["unsloth"] = real
    for k in ("output_dir", "logging_dir"):
        calls.get("sft_config", {}).pop(k, None)  # a temporary folder, different every run
    return {"train_config": cfg, "engine": engine, "load_in_4bit": four_used, "optimizer": optim,
            "reasons": reasons, **calls}


def resolve(spec):
    """A --model entry as a ModelRef: 'embedded' is the carried .gpu/model where present (its build
    pretrains for minutes), tiny:<hub id> is built here into $FTPLAY_CACHE (seconds)."""
    if spec == "embedded" and (CARRIED_EMBEDDED / "config.json").exists():
        return models.resolve(str(CARRIED_EMBEDDED), param="--model")
    return models.resolve(spec, param="--model")


def serve_config(ref, adapters, args):
    """The vLLM server of one model: base + the adapters each mode trained, on this GPU."""
    return serve.ServeConfig(ref.path, adapters, backend="cuda", python=sys.executable, runtime_lora_updating=False,
                             max_model_len=512, startup_timeout_s=args.serve_timeout,
                             tensor_parallel_size=args.tensor_parallel_size)


def dry_serve(ref, cfgs):
    """The vLLM command for `ref` with one adapter per mode (adapter_config.json written to a
    temporary folder, shown as <adapters>/MODE)."""
    with tempfile.TemporaryDirectory() as tmp:
        adapters = {}
        for mode, cfg in cfgs.items():
            (Path(tmp) / mode).mkdir()
            (Path(tmp) / mode / "adapter_config.json").write_text(json.dumps({"r": cfg.lora_r}))
            adapters[f"a{mode}"] = str(Path(tmp) / mode)
        argv = serve.gpu_command(serve.ServeConfig(ref.path, adapters, backend="cuda", python=sys.executable,
                                                   runtime_lora_updating=False, max_model_len=512, port=8000))
        return [a.replace(tmp, "<adapters>") for a in argv]


def serve_one(ref, adapters, convs, args, work):
    """Serve base + adapters with the official CUDA vLLM and run a short load test; a dict."""
    import importlib.util
    import shutil

    if args.no_serve:
        return {"not_run": "--no-serve"}
    if importlib.util.find_spec("vllm") is None:
        return {"not_run": "vllm not installed"}
    if not adapters:
        return {"not_run": "no adapter trained"}
    if shutil.which("vllm") is None and not (Path(sys.executable).parent / "vllm").exists():
        shim = Path(work) / "bin"   # vllm installed as a package only (e.g. --target): its CLI module
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "vllm").write_text(f'#!/bin/sh\nexec {sys.executable} -m vllm.entrypoints.cli.main "$@"\n')
        (shim / "vllm").chmod(0o755)
        os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
    cfg = serve_config(ref, adapters, args)
    out = {"command": serve.shell_line(serve.command(cfg))}
    try:
        with serve.Server(cfg, work, log_name="vllm.log") as srv:
            prompts_ = [c[:-1] for c in convs[:32]]   # the conversations without their answers
            load = serve_checks.load_test(srv.url, ["base", *adapters], prompts_, n_requests=args.serve_requests,
                                          concurrency=args.serve_concurrency, max_tokens=16, max_seconds=120)
            out |= {"startup_s": srv.startup_s, "load_test": load}
    except Exception as e:  # noqa: BLE001  (reported, the other models still run)
        out["error"] = f"{type(e).__name__}: {str(e)[-1500:]}"
    return out


def run_one(mode, ref, convs, args):
    """Train one mode here; the dict that the parent collects."""
    import torch

    cfg = recipe(MODES[mode], args)
    work = Path(tempfile.mkdtemp(prefix=f"gpu_check_{mode}_"))
    os.chdir(work)  # Unsloth writes its compiled cache into the working directory
    res = train.train(cfg, ref, convs, None, work / "out", resume=False)
    steady = [r["tokens_per_s"] for r in train.read_log(res.log_path) if "tokens_per_s" in r][1:]
    out = {"mode": mode, "engine": res.engine, "load_in_4bit": res.load_in_4bit, "reasons": res.reasons,
           "steps": res.steps, "seconds": res.seconds, "tokens_seen": res.tokens_seen,
           "tokens_per_s": res.tokens_per_s,
           "steady_tokens_per_s": round(statistics.median(steady), 1) if steady else None,
           "peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
           "first_loss": res.first_loss, "train_loss": res.train_loss,
           "trainable_params": res.trainable_params, "total_params": res.total_params,
           "unsloth_patched": train.unsloth_patched(), "unsloth_late": list(train.UNSLOTH_LATE),
           "adapter_dir": str(res.adapter_dir)}
    if MODES[mode] and not res.load_in_4bit:
        out["error"] = "4-bit was asked for but training ran in 16-bit: " + "; ".join(res.reasons)
    return out


def versions():
    from importlib import metadata

    import torch

    v = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("unsloth", "unsloth_zoo", "bitsandbytes", "transformers", "trl", "peft", "triton", "vllm"):
        try:
            v[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            v[name] = None
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all", help="comma list of 'embedded', tiny:<hub id> or model folders; "
                    f"all: {', '.join(ALL_MODELS)}")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per mode")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--logging-steps", type=int, default=10)
    ap.add_argument("--rows", type=int, default=512, help="training conversations")
    ap.add_argument("--modes", default="4bit,16bit")
    ap.add_argument("--timeout", type=int, default=210, help="seconds per mode")
    ap.add_argument("--no-serve", action="store_true", help="skip the vLLM part")
    ap.add_argument("--serve-requests", type=int, default=64, help="load-test requests per model")
    ap.add_argument("--serve-concurrency", type=int, default=16)
    ap.add_argument("--serve-timeout", type=float, default=300.0, help="seconds for vLLM to start")
    ap.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs vLLM shards each base over")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--one", choices=list(MODES), help=argparse.SUPPRESS)  # internal: run one mode here
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"--modes {bad} unknown; use a comma list of {list(MODES)}")
    specs = list(ALL_MODELS) if args.model == "all" else [m for m in args.model.split(",") if m]
    convs = conversations(args.rows)

    if args.one:
        print(json.dumps(run_one(args.one, models.resolve(specs[0], param="--model"), convs, args), default=str))
        return 0

    import torch

    refs = {spec: resolve(spec) for spec in specs}
    if args.dry_run or not torch.cuda.is_available():
        plan = {}
        for spec, ref in refs.items():
            modes_plan = {m: dry_run(MODES[m], ref, convs, args) for m in modes}
            plan[spec] = {"path": ref.path, "family": models.family(ref), "plan": modes_plan,
                          "vllm": dry_serve(ref, {m: p["train_config"] for m, p in modes_plan.items()}),
                          "unsloth_patched": train.unsloth_patched()}
        print(json.dumps({"dry_run": True, "cuda": torch.cuda.is_available(), "rows": len(convs), "models": plan},
                         default=lambda o: getattr(o, "__dict__", str(o))))
        return 0

    # ---------------------------------------------------------------- per model: one process per mode, then vLLM
    t0, out = time.time(), {}
    for spec, ref in refs.items():
        results = {}
        for m in modes:
            cmd = [sys.executable, __file__, "--one", m, "--model", ref.path, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--logging-steps", str(args.logging_steps),
                   "--rows", str(args.rows)]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                last = (r.stdout.strip().splitlines() or [""])[-1]
                results[m] = json.loads(last) if r.returncode == 0 and last.startswith("{") else \
                    {"mode": m, "error": f"exit {r.returncode}: {r.stderr[-1500:]}"}
            except subprocess.TimeoutExpired as e:
                results[m] = {"mode": m, "error": f"timed out after {args.timeout} s: {str(e.stderr or '')[-800:]}"}
            print(f"{spec} {m}: {json.dumps(results[m])[:400]}", file=sys.stderr, flush=True)
        four, sixteen = results.get("4bit", {}), results.get("16bit", {})
        row = {"path": ref.path, "family": models.family(ref), "modes": results}
        if four.get("peak_memory_mb") and sixteen.get("peak_memory_mb"):
            row["memory_4bit_vs_16bit"] = round(four["peak_memory_mb"] / sixteen["peak_memory_mb"], 3)
            row["speed_4bit_vs_16bit"] = round(four["tokens_per_s"] / sixteen["tokens_per_s"], 3)
        adapters = {f"a{m}": r["adapter_dir"] for m, r in results.items() if r.get("adapter_dir")}
        row["serve"] = serve_one(ref, adapters, convs, args, Path(tempfile.mkdtemp(prefix="gpu_check_vllm_")))
        print(f"{spec} serve: {json.dumps(row['serve'])[:400]}", file=sys.stderr, flush=True)
        out[spec] = row
    summary = {"gpu": torch.cuda.get_device_name(), "versions": versions(), "steps": args.steps,
               "batch_size": args.batch_size, "rows": len(convs), "seconds": round(time.time() - t0, 1),
               "models": out}
    print(json.dumps(summary, default=str))
    failed = [r for row in out.values() for r in [*row["modes"].values(), row["serve"]] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
