"""Serving speed: a vLLM server (concurrent requests) against HF generate (one request at a time), median of 3 rounds.

Same prompts, greedy, every answer exactly --max-tokens long (ignore_eos / min_new_tokens). Rounds alternate:
vLLM, then HF, then vLLM, ... Each round starts a fresh server and stops it before HF generate runs: an idle
vLLM CPU server still used 0.9 CPU-s per 10 s here (its worker polls), so HF gets the machine alone, and each
round includes a server's own variance. On the server: base-only, adapter-only and mixed (base and every adapter
in equal shares) load tests; ratio = mixed tokens/s ÷ HF sequential tokens/s; lora_overhead = base-only
tokens/s ÷ adapter-only tokens/s. HF runs with 1 and with 2 torch threads each round and the faster counts
(the honest baseline: nothing slows it down on purpose). The load generator (serve_checks.load_test, plain
asyncio HTTP) runs in this process on the same cores as the server; its CPU seconds are printed with each run
(httpx's async client took 3.5-5.6 CPU-s per mixed run here, 15-25% of the machine; this one ~0.1).
ftplay's vLLM plugin (serve_plugin/: LoRA as one GEMM per layer on CPU) is on; --plugin-compare adds the mixed
run once more on a server with it off (not by default: vLLM's own CPU LoRA ops took over 2 minutes for this load,
more than the three rounds' budget).
With --run, that run's adapter(s) (03 trains two); else two random-weight r=16 test adapters.
Last line printed: JSON {"ratio_median", "ratios", "lora_overhead", "rounds": [...], ...}.

    .venv/bin/python benchmarks/serve_speed.py --run runs/both2
"""
import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test adapters
from ftplay import identity, models, prompts, serve, serve_checks, serve_tasks  # noqa: E402

from adapters import make_test_adapter  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--run", default="", help="a playbook run directory: serve the adapter(s) its 03 trained")
    ap.add_argument("--adapter", default="", help="adapter folder; empty: --run's, else a random-weight test adapter")
    ap.add_argument("--rounds", type=int, default=3, help="alternating vLLM / HF rounds; the median ratio counts")
    # The load: 256 requests in flight (ServeConfig's CPU max_num_seqs), 512 in all, 32 answer tokens each. On a
    # CPU the tiny model's decode step costs about the same for 64 or 256 sequences (per-op overhead, not FLOPs),
    # so a fuller batch is most of vLLM's advantage; a server under real traffic runs this full.
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--plugin-compare", action="store_true",
                    help="add a mixed run without ftplay's CPU LoRA plugin (slow)")
    ap.add_argument("--hf-prompts", type=int, default=16, help="prompts for the (slow) sequential HF run")
    ap.add_argument("--threads", default="1,2", help="torch thread counts HF generate runs with; the fastest counts")
    ap.add_argument("--python", default="", help="serving python; empty: .venv-serve/bin/python if present")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    threads = [int(t) for t in args.threads.split(",")]

    # ---------------------------------------------------------------- setup
    ref = models.resolve(args.model)
    work = Path(tempfile.mkdtemp(prefix="serve_speed_"))
    if args.run:
        adapters = serve_tasks.resolve_adapters(args.run)
    else:
        adapters = {"ft": args.adapter} if args.adapter else {
            f"ft{i}": str(make_test_adapter(ref, work / f"adapter{i}", r=16, seed=i)) for i in (1, 2)}
    first = next(iter(adapters.values()))
    texts, _ = serve_tasks.sample_texts(args.run or work, n=max(args.requests, args.hf_prompts))
    labels = (identity.read_adapter_meta(first, missing_ok=True) or {"labels": ["other"]})["labels"]
    convs = [prompts.messages(t, labels, system_prompt=prompts.DEFAULT_SYSTEM_PROMPT) for t in texts]
    cfg = serve.ServeConfig(ref.path, adapters, python=args.python)
    print("config:", json.dumps({"backend": cfg.backend, "adapters": adapters, "rounds": args.rounds,
                                 "requests": args.requests, "concurrency": args.concurrency,
                                 "max_tokens": args.max_tokens, "hf_prompts": args.hf_prompts, "threads": threads,
                                 "server": serve.shell_line(serve.command(cfg), serve.environment(cfg))}))
    mixed = ["base", *adapters]

    # ---------------------------------------------------------------- vLLM: one server per round
    def measure(mixes, tag):
        out = {}
        with serve.Server(cfg, work, log_name=f"vllm_{tag}.log") as srv:
            plugin = os.environ.get("FTPLAY_VLLM_CPU_LORA", "1")
            print(f"vLLM ready after {srv.startup_s} s (FTPLAY_VLLM_CPU_LORA={plugin})")
            serve_checks.load_test(srv.url, mixed, convs[:8], 32, 16, 4)  # warm-up
            for name, mix in mixes:
                cpu0 = time.process_time()
                out[name] = r = serve_checks.load_test(srv.url, mix, convs[:args.requests], args.requests,
                                                       args.concurrency, args.max_tokens, max_seconds=300)
                r["client_cpu_s"] = round(time.process_time() - cpu0, 2)  # the load generator's share of the CPU
                print(f"  vLLM {name:<8} {r['requests']} req, {r['errors']} errors, {r['tokens_per_s']} tok/s, "
                      f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
                      f"client {r['client_cpu_s']} CPU-s in {r['seconds']} s")
            out["startup_s"] = srv.startup_s
        return out

    # ---------------------------------------------------------------- HF generate, sequential
    import torch

    tok = models.load_tokenizer(ref)
    model = models.load_model(ref)
    ids = [{"input_ids": torch.tensor([prompts.prompt_ids(tok, m)])} for m in convs[:args.hf_prompts]]

    def hf_sequential(n_threads):
        torch.set_num_threads(n_threads)
        with torch.no_grad():
            model.generate(**ids[0], max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)  # warm-up
            t0, n = time.perf_counter(), 0
            for enc in ids:
                out = model.generate(**enc, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                                     do_sample=False, pad_token_id=tok.pad_token_id)
                n += out.shape[1] - enc["input_ids"].shape[1]
        return round(n / (time.perf_counter() - t0), 1)

    # ---------------------------------------------------------------- alternating rounds
    rounds = []
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds}")
        v = measure((("base", ["base"]), ("adapter", list(adapters)), ("mixed", mixed)), f"round{i + 1}")
        hf = {n: hf_sequential(n) for n in threads}
        best = max(hf, key=hf.get)
        r = {"vllm_mixed": v["mixed"]["tokens_per_s"], "vllm_base": v["base"]["tokens_per_s"],
             "vllm_adapter": v["adapter"]["tokens_per_s"], "hf": {f"{n}_threads": hf[n] for n in threads},
             "hf_best": hf[best], "hf_best_threads": best, "startup_s": v["startup_s"],
             "client_cpu_s": v["mixed"]["client_cpu_s"],
             "errors": sum(v[k]["errors"] for k in ("base", "adapter", "mixed"))}
        r["ratio"] = round(r["vllm_mixed"] / r["hf_best"], 2)
        r["lora_overhead"] = round(r["vllm_base"] / r["vllm_adapter"], 3) if r["vllm_adapter"] else None
        rounds.append(r)
        print(f"  HF sequential: {args.hf_prompts} prompts x {args.max_tokens} tokens, "
              + ", ".join(f"{t} thread(s) {s} tok/s" for t, s in hf.items())
              + f"; round ratio {r['ratio']}x, LoRA overhead {r['lora_overhead']}")

    def med(k):
        return statistics.median(r[k] for r in rounds if r[k] is not None)

    out = {"ratio_median": med("ratio"), "ratios": [r["ratio"] for r in rounds],
           "lora_overhead": med("lora_overhead"), "lora_overheads": [r["lora_overhead"] for r in rounds],
           "vllm_mixed_tokens_per_s": med("vllm_mixed"), "vllm_base_tokens_per_s": med("vllm_base"),
           "vllm_adapter_tokens_per_s": med("vllm_adapter"), "hf_sequential_tokens_per_s": med("hf_best"),
           "hf_best_threads": statistics.mode(r["hf_best_threads"] for r in rounds),
           "errors": sum(r["errors"] for r in rounds), "rounds": rounds}
    print(json.dumps(out))  # the rounds' result, before the optional (slow) comparison
    if args.plugin_compare:
        os.environ["FTPLAY_VLLM_CPU_LORA"] = "0"
        print("plugin off")
        without = measure((("mixed", mixed),), "no_plugin")
        out["vllm_mixed_without_plugin_tokens_per_s"] = without["mixed"]["tokens_per_s"]
        os.environ.pop("FTPLAY_VLLM_CPU_LORA")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
