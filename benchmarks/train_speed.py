"""Training speed: ftplay's training path against a plain TRL + PEFT script, same model, data and recipe.

    .venv/bin/python benchmarks/train_speed.py [--rows 480] [--model embedded]

Both train one epoch of LoRA (all linear projections, r 32, alpha 64, lr 1e-3, batch 8, 8-bit AdamW,
float32 base) on the same curated tickets, each in its own process, one after the other, so they never
share the CPU. tokens/s = non-padding tokens trained on ÷ seconds inside trainer.train(). ftplay's path
is `train.train(engine="trl")`: batches grouped by length (less padding), the LM head applied only to
the positions that carry a label, no activation checkpointing on CPU. MFU = ftplay's model FLOPs per
second ÷ this machine's measured float32 matmul peak with the same threads (formula in `flops_per_token`).
Last line printed: JSON {"ftplay_tokens_per_s", "plain_tokens_per_s", "ratio", "mfu", ...}.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_flops(threads, n=2048, reps=5):
    """Best float32 matmul rate (FLOP/s) of this machine with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def flops_per_token(cfg_json, lora_params, avg_len, trained_share):
    """Training FLOPs per input token for LoRA on a frozen base (forward + backward).

    Frozen linear layers: 2N forward + 2N backward (input gradients only, no weight gradients);
    LoRA weights: 6N; attention scores and values: 4·d·T/2 per layer forward (causal), x3 with backward;
    LM head: 4·V·d, only at the share of positions that carry a label (what the loss needs).
    """
    d, L = cfg_json["hidden_size"], cfg_json["num_hidden_layers"]
    f, V = cfg_json["intermediate_size"], cfg_json["vocab_size"]
    kv = d // cfg_json["num_attention_heads"] * cfg_json.get("num_key_value_heads", cfg_json["num_attention_heads"])
    frozen = L * (d * d + 2 * d * kv + d * d + 3 * d * f)
    attention = 3 * L * 4 * d * avg_len / 2
    return 4 * frozen + 6 * lora_params + attention + trained_share * 4 * V * d


def worker_ftplay(model_dir, train_file, out_dir):
    from ftplay import data, masks, models, prompts, recipes, train

    rows = data.load(train_file, "chat")
    labels = sorted({r["label"] for r in rows})
    convs = [prompts.messages(r["text"], labels, r["label"]) for r in rows]
    ref = models.resolve(model_dir)
    cfg = recipes.recipe_for("embedded", {"engine": "trl", "load_in_4bit": False, "num_epochs": 1.0,
                                        "logging_steps": 10, "save_steps": 0})
    res = train.train(cfg, ref, convs, [], out_dir, resume=False)
    tok = models.load_tokenizer(ref)
    rows_tok, _ = masks.tokenize_chat(tok, convs, cfg.max_seq_len)
    trained = sum(sum(label != -100 for label in r["labels"]) for r in rows_tok)
    print(json.dumps({"tokens": res.tokens_seen, "seconds": res.seconds, "steps": res.steps,
                      "final_loss": res.train_loss, "lora_params": res.trainable_params,
                      "trained_tokens": trained, "optimizer": recipes.resolve_engine(cfg)[2],
                      "group_by_length": cfg.group_by_length}))


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    if out.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--rows", type=int, default=480, help="training conversations (one epoch)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each, alternated; the fastest counts")
    ap.add_argument("--worker", choices=["ftplay"], help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_ftplay(*a.args)

    import torch

    from ftplay import data, models

    ref = models.resolve(a.model)
    work = Path(tempfile.mkdtemp(prefix="train_speed_"))
    cur = data.curate(data.DataConfig(production_path=None))
    cur.train = cur.train[:a.rows]
    data.write_curated(cur, work / "data")
    train_file = str(work / "data" / "train.jsonl")
    threads = torch.get_num_threads()
    print(f"model {ref.path}, {len(cur.train)} conversations, {threads} torch threads")

    plains, ourss = [], []
    for i in range(a.repeats):  # alternated, best of each: a noisy neighbour hurts both alike
        plains.append(run([sys.executable, "benchmarks/plain_trl_sft.py", ref.path, train_file,
                           str(work / f"plain{i}")]))
        print("plain TRL + PEFT:", json.dumps(plains[-1]))
        ourss.append(run([sys.executable, "benchmarks/train_speed.py", "--worker", "ftplay", ref.path, train_file,
                          str(work / f"ftplay{i}")]))
        print("ftplay:          ", json.dumps(ourss[-1]))
    plain, ours = min(plains, key=lambda r: r["seconds"]), min(ourss, key=lambda r: r["seconds"])
    peak = peak_flops(threads)

    cfg_json = json.loads((Path(ref.path) / "config.json").read_text())
    avg_len = ours["tokens"] / len(cur.train)
    fpt = flops_per_token(cfg_json, ours["lora_params"], avg_len, ours["trained_tokens"] / ours["tokens"])
    f_tps, p_tps = ours["tokens"] / ours["seconds"], plain["tokens"] / plain["seconds"]
    print(f"peak float32 matmul: {peak / 1e9:.1f} GFLOP/s; {fpt / 1e6:.2f} MFLOP per token")
    print(json.dumps({"ftplay_tokens_per_s": round(f_tps, 1), "plain_tokens_per_s": round(p_tps, 1),
                      "ratio": round(f_tps / p_tps, 3), "mfu": round(f_tps * fpt / peak, 4),
                      "peak_gflops": round(peak / 1e9, 1), "tokens": ours["tokens"], "plain_tokens": plain["tokens"],
                      "ftplay_final_loss": ours["final_loss"], "plain_final_loss": plain["final_loss"],
                      "threads": threads}))


if __name__ == "__main__":
    main()
