"""Serving speed: a vLLM server (concurrent requests) against HF generate (one request at a time).

Same prompts, greedy, every answer exactly --max-tokens long (ignore_eos / min_new_tokens). The
server runs first and is stopped before HF generate starts, so they do not share the CPU.
vllm_tokens_per_s is the run with base and adapter requests mixed half and half; lora_overhead =
base-only tokens/s ÷ adapter-only tokens/s, from two separate runs on the same server.
Last line printed: JSON {"vllm_tokens_per_s", "hf_sequential_tokens_per_s", "ratio", "lora_overhead"}.

    .venv/bin/python benchmarks/serve_speed.py --requests 48 --concurrency 16 --max-tokens 32
"""
import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from ftplay import data, evaluate, models, serve


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--adapter", default="", help="adapter folder; empty: a random-weight test adapter (r=16)")
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=16)
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
    adapter = args.adapter or str(serve.make_test_adapter(ref, work / "adapter", r=16, seed=1))
    texts, _ = serve.sample_texts(work, n=max(args.requests, args.hf_prompts))
    labels = serve.adapter_meta(adapter)["labels"] if (Path(adapter) / "ftplay_adapter.json").exists() else ["other"]
    prompts = [evaluate.build_messages(t, labels, data.DEFAULT_SYSTEM_PROMPT) for t in texts]
    cfg = serve.ServeConfig(ref.path, {"ft": adapter}, python=args.python)
    print("config:", json.dumps({"backend": cfg.backend, "requests": args.requests, "concurrency": args.concurrency,
                                 "max_tokens": args.max_tokens, "hf_prompts": args.hf_prompts,
                                 "threads": args.threads}))

    # ---------------------------------------------------------------- vLLM
    runs = {}
    with serve.Server(cfg, work) as srv:
        print(f"vLLM ready after {srv.startup_s} s")
        serve.load_test(srv.url, ["base", "ft"], prompts[:4], 8, 4, 4)  # warm-up
        for name, mix in (("base", ["base"]), ("adapter", ["ft"]), ("mixed", ["base", "ft"])):
            runs[name] = serve.load_test(srv.url, mix, prompts[:args.requests], args.requests, args.concurrency,
                                         args.max_tokens, max_seconds=300)
            r = runs[name]
            print(f"vLLM {name:<8} {r['requests']} req, {r['errors']} errors, {r['tokens_per_s']} tok/s, "
                  f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms")

    # ---------------------------------------------------------------- HF generate, sequential
    import torch

    torch.set_num_threads(args.threads)
    tok = models.load_tokenizer(ref)
    model = models.load_model(ref)
    ids = [tok(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False), return_tensors="pt",
               add_special_tokens=False) for m in prompts[:args.hf_prompts]]
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
    print(json.dumps({"vllm_tokens_per_s": vllm, "hf_sequential_tokens_per_s": round(hf, 1),
                      "ratio": round(vllm / hf, 2), "lora_overhead": round(b / a, 3) if a else None,
                      "vllm_base_tokens_per_s": b, "vllm_adapter_tokens_per_s": a,
                      "startup_s": srv.startup_s}))


if __name__ == "__main__":
    main()
