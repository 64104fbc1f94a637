"""GPU check: Unsloth training with 4-bit against 16-bit base weights, tokens/s and peak GPU memory.

Each mode runs ftplay's own train.train() (engine 'unsloth', the embedded recipe, --steps steps, no
eval) in a fresh process, so peak memory (torch.cuda.max_memory_allocated) and Unsloth's patching
are each mode's own. tokens_per_s counts the whole run, warm-up and kernel compilation included;
steady_tokens_per_s is the median of the logged intervals after the first. Without a CUDA GPU it
prints the plan and exits 0 (so `make bench` passes on CPU). --dry-run prints what train.train()
would pass to FastLanguageModel.from_pretrained / get_peft_model and to SFTConfig on a bf16 GPU:
a stand-in `unsloth` module records the calls and SFTConfig stops the run before anything trains.
Last line printed: JSON.

    bash benchmarks/gpu_check.sh                      # on the GPU box (installs carried wheels)
    .venv/bin/python benchmarks/gpu_check.py --dry-run --model embedded
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
from ftplay import train  # noqa: E402  (first: on a GPU it imports Unsloth before transformers)
from ftplay import data, models, prompts  # noqa: E402

MODES = {"4bit": True, "16bit": False}
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
    return train.recipe_for("embedded", {"engine": "unsloth", "load_in_4bit": four, "max_steps": args.steps,
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
                mock.patch.object(train, "device_info", lambda: dict(CUDA_BF16)), \
                mock.patch.object(train, "_cuda", lambda: True), tempfile.TemporaryDirectory() as work:
            engine, four_used, optim, reasons = train.resolve_engine(cfg)
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
           "trainable_params": res.trainable_params, "total_params": res.total_params}
    if MODES[mode] and not res.load_in_4bit:
        out["error"] = "4-bit was asked for but training ran in 16-bit: " + "; ".join(res.reasons)
    return out


def versions():
    from importlib import metadata

    import torch

    v = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("unsloth", "unsloth_zoo", "bitsandbytes", "transformers", "trl", "peft", "triton"):
        try:
            v[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            v[name] = None
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded", help="a model folder (carried .gpu/model) or 'embedded'")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per mode")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--logging-steps", type=int, default=10)
    ap.add_argument("--rows", type=int, default=512, help="training conversations")
    ap.add_argument("--modes", default="4bit,16bit")
    ap.add_argument("--timeout", type=int, default=210, help="seconds per mode")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--one", choices=list(MODES), help=argparse.SUPPRESS)  # internal: run one mode here
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"--modes {bad} unknown; use a comma list of {list(MODES)}")
    ref = models.resolve(args.model, param="--model")
    convs = conversations(args.rows)

    if args.one:
        print(json.dumps(run_one(args.one, ref, convs, args), default=str))
        return 0

    import torch

    if args.dry_run or not torch.cuda.is_available():
        plan = {m: dry_run(MODES[m], ref, convs, args) for m in modes}
        print(json.dumps({"dry_run": True, "cuda": torch.cuda.is_available(), "model": ref.path,
                          "rows": len(convs), "plan": plan}, default=lambda o: getattr(o, "__dict__", str(o))))
        return 0

    # ---------------------------------------------------------------- one process per mode
    t0, results = time.time(), {}
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
        print(f"{m}: {json.dumps(results[m])[:400]}", file=sys.stderr, flush=True)
    four, sixteen = results.get("4bit", {}), results.get("16bit", {})
    summary = {"gpu": torch.cuda.get_device_name(), "model": ref.path, "versions": versions(),
               "steps": args.steps, "batch_size": args.batch_size, "rows": len(convs),
               "seconds": round(time.time() - t0, 1), "modes": results}
    if four.get("peak_memory_mb") and sixteen.get("peak_memory_mb"):
        summary["memory_4bit_vs_16bit"] = round(four["peak_memory_mb"] / sixteen["peak_memory_mb"], 3)
        summary["speed_4bit_vs_16bit"] = round(four["tokens_per_s"] / sixteen["tokens_per_s"], 3)
    print(json.dumps(summary, default=str))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
