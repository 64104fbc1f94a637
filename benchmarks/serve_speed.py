"""Serving speed: a vLLM server (concurrent requests) against HF generate (one request at a time).

Same prompts, greedy, every answer exactly --max-tokens long (ignore_eos / min_new_tokens). The
server runs first and is stopped before HF generate starts, so they do not share the CPU.
vllm_tokens_per_s is the run with base and adapter requests mixed in equal shares; lora_overhead =
base-only tokens/s ÷ adapter-only tokens/s, from separate runs on the same server. With ftplay's
vLLM plugin (serve_plugin/: grouped LoRA matmuls on CPU) on, then, unless --no-plugin-compare, the
mixed run again on a server with it off. With --run, that run's adapter(s) (03 trains two); else two
random-weight r=16 test adapters.
Last line printed: JSON {"vllm_tokens_per_s", "hf_sequential_tokens_per_s", "ratio", "lora_overhead", ...}.

    .venv/bin/python benchmarks/serve_speed.py --run runs/full1 --requests 256 --concurrency 64
"""
import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test adapters
from adapters import make_test_adapter  # noqa: E402
from ftplay import identity, models, prompts, serve, serve_checks  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--run", default="", help="a playbook run directory: serve the adapter(s) its 03 trained")
    ap.add_argument("--adapter", default="", help="adapter folder; empty: --run's, else a random-weight test adapter")
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--no-plugin-compare", action="store_true", help="skip the run without ftplay's CPU LoRA plugin")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--hf-prompts", type=int, default=16, help="prompts for the (slow) sequential HF run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for HF generate")
    ap.add_argument("--python", default="", help="serving python; empty: .venv-serve/bin/python if present")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    # ---------------------------------------------------------------- setup
    ref = models.resolve(args.model)
    work = Path(tempfile.mkdtemp(prefix="serve_speed_"))
    if args.run:
        adapters = serve.resolve_adapters(args.run)
    else:
        adapters = {"ft": args.adapter} if args.adapter else {
            f"ft{i}": str(make_test_adapter(ref, work / f"adapter{i}", r=16, seed=i)) for i in (1, 2)}
    first = next(iter(adapters.values()))
    texts, _ = serve.sample_texts(args.run or work, n=max(args.requests, args.hf_prompts))
    labels = (identity.read_adapter_meta(first, missing_ok=True) or {"labels": ["other"]})["labels"]
    convs = [prompts.messages(t, labels, system_prompt=prompts.DEFAULT_SYSTEM_PROMPT) for t in texts]
    cfg = serve.ServeConfig(ref.path, adapters, python=args.python)
    print("config:", json.dumps({"backend": cfg.backend, "adapters": adapters, "requests": args.requests,
                                 "concurrency": args.concurrency, "max_tokens": args.max_tokens,
                                 "hf_prompts": args.hf_prompts, "threads": args.threads}))

    # ---------------------------------------------------------------- vLLM
    def measure(mixes):
        out = {}
        with serve.Server(cfg, work) as srv:
            print(f"vLLM ready after {srv.startup_s} s (FTPLAY_VLLM_CPU_LORA={os.environ.get('FTPLAY_VLLM_CPU_LORA', '1')})")
            serve_checks.load_test(srv.url, ["base", *adapters], convs[:8], 16, 8, 4)  # warm-up
            for name, mix in mixes:
                out[name] = r = serve_checks.load_test(srv.url, mix, convs[:args.requests], args.requests,
                                                args.concurrency, args.max_tokens, max_seconds=300)
                print(f"vLLM {name:<8} {r['requests']} req, {r['errors']} errors, {r['tokens_per_s']} tok/s, "
                      f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms")
            out["startup_s"] = srv.startup_s
        return out

    mixed = ["base", *adapters]
    runs = measure((("base", ["base"]), ("adapter", list(adapters)), ("mixed", mixed)))
    if not args.no_plugin_compare:
        os.environ["FTPLAY_VLLM_CPU_LORA"] = "0"
        runs["mixed_without_plugin"] = measure((("mixed", mixed),))["mixed"]
        os.environ.pop("FTPLAY_VLLM_CPU_LORA")

    # ---------------------------------------------------------------- HF generate, sequential
    import torch

    torch.set_num_threads(args.threads)
    tok = models.load_tokenizer(ref)
    model = models.load_model(ref)
    ids = [{"input_ids": torch.tensor([prompts.prompt_ids(tok, m)])} for m in convs[:args.hf_prompts]]
    with torch.no_grad():
        model.generate(**ids[0], max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)  # warm-up
        t0, n = time.perf_counter(), 0
        for enc in ids:
            out = model.generate(**enc, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
            n += out.shape[1] - enc["input_ids"].shape[1]
        hf = n / (time.perf_counter() - t0)
    print(f"HF sequential: {len(ids)} prompts, {n} tokens, {hf:.1f} tok/s ({args.threads} thread(s))")

    vllm = runs["mixed"]["tokens_per_s"]
    b, a = runs["base"]["tokens_per_s"], runs["adapter"]["tokens_per_s"]
    out = {"vllm_tokens_per_s": vllm, "hf_sequential_tokens_per_s": round(hf, 1),
           "ratio": round(vllm / hf, 2), "lora_overhead": round(b / a, 3) if a else None,
           "vllm_base_tokens_per_s": b, "vllm_adapter_tokens_per_s": a, "startup_s": runs["startup_s"],
           "errors": sum(runs[k]["errors"] for k in ("base", "adapter", "mixed"))}
    if "mixed_without_plugin" in runs:
        out["vllm_mixed_without_plugin_tokens_per_s"] = runs["mixed_without_plugin"]["tokens_per_s"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
