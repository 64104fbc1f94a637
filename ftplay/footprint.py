"""What LoRA trains and QLoRA stores, counted on a loaded model or from the shape of 7-70B bases too big to load."""
import json
import math
from pathlib import Path

# The bases the seed names (and the 70B it says QLoRA trains on one H100), as their hub config.json
# gives them (read 2026-11). Vocabulary size and tied embeddings also sit in standins.FAMILIES for the
# three families with a stand-in; tests/test_train.py checks that both agree, and that a stand-in's
# shape counted here equals the parameters transformers builds for it.
# Columns of the table below; a None is a field the config.json does not set (Qwen2.5 derives head_dim).
_SHAPE_FIELDS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "vocab_size", "tie_word_embeddings")
HUB_SHAPES = {hub: {k: v for k, v in zip(_SHAPE_FIELDS, row) if v is not None} for hub, row in (
    ("meta-llama/Llama-3.1-8B-Instruct", ("llama", 4096, 14336, 32, 32, 8, 128, 128256, False)),
    ("Qwen/Qwen2.5-7B-Instruct", ("qwen2", 3584, 18944, 28, 28, 4, None, 152064, False)),
    ("mistralai/Mistral-7B-Instruct-v0.3", ("mistral", 4096, 14336, 32, 32, 8, 128, 32768, False)),
    ("meta-llama/Llama-3.1-70B-Instruct", ("llama", 8192, 28672, 80, 64, 8, 128, 128256, False)),
)}
# bitsandbytes nf4 with double quantization (what QLoRA, Unsloth's bnb-4bit bases and ftplay load):
# each linear weight of n values keeps n/2 bytes (two 4-bit codes a byte), one uint8 scale per block of
# 64 values, one float32 scale per 256 of those, and a float32 offset. Embeddings, the LM head, norms
# and biases are not quantized: they stay in the compute dtype.
NF4_BLOCK, NF4_BLOCK2 = 64, 256
H100_MB = 80e3
LLAMA_8B, LLAMA_70B = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct"


def shape(source):
    """The dimensions that size a decoder: a hub id of HUB_SHAPES, a model folder (its config.json),
    a `tiny:<hub id>` stand-in's folder, or a dict of config.json values."""
    if isinstance(source, dict):
        c = dict(source)
    elif str(source) in HUB_SHAPES:
        c = dict(HUB_SHAPES[str(source)])
    elif (Path(source) / "config.json").is_file():
        c = json.loads((Path(source) / "config.json").read_text())
    else:  # another hub id: its config.json from the hub cache (or the hub)
        from transformers import AutoConfig

        c = AutoConfig.from_pretrained(str(source)).to_dict()
    s = {k: c[k] for k in ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads", "num_key_value_heads", "vocab_size")}
    s["head_dim"] = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    s["tie_word_embeddings"] = bool(c.get("tie_word_embeddings", False))
    # Qwen2 always has q/k/v biases (no config key); Llama and Mistral only with attention_bias
    s["qkv_bias"] = c["model_type"] == "qwen2" or bool(c.get("attention_bias", False))
    return s


def linears(s):
    """{projection: (d_in, d_out)} of one decoder layer."""
    h, q, kv, i = s["hidden_size"], s["num_attention_heads"] * s["head_dim"], \
        s["num_key_value_heads"] * s["head_dim"], s["intermediate_size"]
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def lora_params(s, r, targets):
    """LoRA's trained parameters: each adapted d_in x d_out matrix gets A (r x d_in) and B (d_out x r),
    so layers x sum over targets of r x (d_in + d_out)."""
    lin = linears(s)
    return s["num_hidden_layers"] * sum(r * (lin[t][0] + lin[t][1]) for t in targets)


def base_params(s):
    """All parameters of the base: embeddings (and an untied LM head), per layer the seven projections,
    q/k/v biases where the family has them and two norms, and the final norm."""
    lin = linears(s)
    h, v = s["hidden_size"], s["vocab_size"]
    bias = (lin["q_proj"][1] + 2 * lin["k_proj"][1]) if s["qkv_bias"] else 0
    layer = sum(a * b for a, b in lin.values()) + bias + 2 * h
    return v * h * (1 if s["tie_word_embeddings"] else 2) + s["num_hidden_layers"] * layer + h


def nf4_bytes(n):
    """Bytes one n-value linear weight takes in nf4 with double quantization (see NF4_BLOCK)."""
    blocks = math.ceil(n / NF4_BLOCK)
    return n // 2 + blocks + 4 * math.ceil(blocks / NF4_BLOCK2) + 4


def weight_bytes(s, four_bit, dtype_bytes=2):
    """Bytes of the base's parameters: every linear weight of the layers in nf4 when `four_bit`,
    everything else (and every weight otherwise) at `dtype_bytes` (2: bf16/fp16, 4: float32)."""
    lin = [a * b for a, b in linears(s).values()] * s["num_hidden_layers"]
    rest = base_params(s) - sum(lin)
    return rest * dtype_bytes + (sum(nf4_bytes(n) for n in lin) if four_bit else sum(lin) * dtype_bytes)


def measure(model):
    """What a loaded model holds: trainable parameters, the base's parameters (every one that is not a
    LoRA A/B matrix; 4-bit ones counted as the values they stand for, not their packed bytes) and the
    bytes those take as stored (4-bit: packed codes + per-tensor constants, as nf4_bytes counts them)."""
    trainable = base = stored = 0
    dtypes = {}
    for name, p in model.named_parameters():
        trainable += p.numel() if p.requires_grad else 0
        if "lora_" in name:
            continue
        qs = getattr(p, "quant_state", None)
        base += math.prod(qs.shape) if qs is not None else p.numel()
        stored += p.numel() * p.element_size()
        if qs is not None:
            stored += _nbytes(qs.absmax) + _nbytes(getattr(qs, "offset", None))
            if getattr(qs, "nested", False):
                stored += _nbytes(qs.state2.absmax)
        else:
            key = str(p.dtype).removeprefix("torch.")
            dtypes[key] = dtypes.get(key, 0) + p.numel()
    return {"trainable_params": trainable, "base_params": base, "weights_bytes": stored,
            "dtype": max(dtypes, key=dtypes.get) if dtypes else None}   # of what is not quantized


def _nbytes(t):
    return 0 if t is None else t.numel() * t.element_size()


def lora_step_flops_ratio(base, lora):
    """A LoRA training step's matmul FLOPs over a full fine-tune's, per token: a full step is forward
    2N + backward 4N (input and weight gradients); LoRA still runs the forward and the input gradients
    through all N frozen weights and skips only their weight gradients: 4N + 6n. Attention's own
    sequence-length term is left out (the same in both)."""
    return (4 * base + 6 * lora) / (6 * base)


def table(models, recipes, dtype_bytes=2):
    """One row per model and recipe: base parameters, LoRA's trained parameters and their share,
    step FLOPs against a full fine-tune, Adam state (two float32 values per trained parameter) of
    LoRA and of a full fine-tune, the base's weights in `dtype_bytes` and in nf4. `models`: {label:
    shape source}, `recipes`: {label: (r, targets)}."""
    rows = []
    for name, source in models.items():
        s = shape(source)
        n = base_params(s)
        w16, w4 = weight_bytes(s, False, dtype_bytes), weight_bytes(s, True, dtype_bytes)
        for recipe, (r, targets) in recipes.items():
            k = lora_params(s, r, targets)
            rows.append({"model": name, "recipe": recipe, "base_params": n, "lora_params": k,
                         "trained_share_pct": round(100 * k / n, 3),
                         "step_flops_vs_full_pct": round(100 * lora_step_flops_ratio(n, k), 1),
                         "adam_state_mb_lora": _mb(8 * k), "adam_state_mb_full": _mb(8 * n),
                         "weights_mb_16bit": _mb(w16), "weights_mb_nf4": _mb(w4),
                         "nf4_saving_pct": round(100 * (1 - w4 / w16), 1)})
    return rows



def _mb(b):
    return round(b / 1e6, 1)   # MB = 10^6 bytes, GB = 10^9: the units GPU memory is sold in


# ---------------------------------------------------------------- what notebook 03 shows
def lora_share(measured, source, cfg, seed_cfg, others=(LLAMA_8B, LLAMA_70B)):
    """LoRA's trained share on this run's base, measured (`measured`: trainable_params, base_params of
    the trained model) and counted from its shape, and the table for `others` (hub ids) under this
    run's r/targets and the seed's."""
    s = shape(source)
    counted = {"lora_params": lora_params(s, cfg.lora_r, cfg.target_modules), "base_params": base_params(s)}
    recipes = {"this run": (cfg.lora_r, cfg.target_modules), "the seed": (seed_cfg.lora_r, seed_cfg.target_modules)}
    known = [h for h in others if h and h != source and (h in HUB_SHAPES or (Path(h) / "config.json").is_file())]
    models = {"this run's base": source, **{h: h for h in known}}
    return {"trainable_params": measured["trainable_params"], "base_params": measured["base_params"],
            "share_pct": round(100 * measured["trainable_params"] / measured["base_params"], 2),
            "counted": counted, "counted_equals_measured": counted == {
                "lora_params": measured["trainable_params"], "base_params": measured["base_params"]},
            "hidden_size": s["hidden_size"], "lora_r": cfg.lora_r, "target_modules": list(cfg.target_modules),
            "seed_lora_r": seed_cfg.lora_r, "seed_target_modules": list(seed_cfg.target_modules),
            "table": table(models, recipes)}


def read_share(share):
    """The share in words: measured against the formula, the seed's 0.1-1%, and why width decides it."""
    rows = {(r["model"], r["recipe"]): r for r in share["table"]}
    big = rows.get((LLAMA_8B, "this run")), rows.get((LLAMA_8B, "the seed"))
    r, h, r0, h8 = share["lora_r"], share["hidden_size"], share["seed_lora_r"], HUB_SHAPES[LLAMA_8B]["hidden_size"]
    out = [f"LoRA trains {share['trainable_params']:,} of this base's {share['base_params']:,} parameters "
           f"({share['share_pct']}%); counting r x (d_in + d_out) per adapted matrix gives "
           + ("exactly that." if share["counted_equals_measured"] else f"{share['counted']} (it does not agree).")]
    if all(big):
        out.append(f"The same r {r} and {len(share['target_modules'])} projections on Llama-3.1-8B train "
                   f"{big[0]['lora_params'] / 1e6:.1f}M of {big[0]['base_params'] / 1e9:.2f}B "
                   f"({big[0]['trained_share_pct']}%), "
                   f"the seed's r {r0} on {'/'.join(share['seed_target_modules'])} {big[1]['lora_params'] / 1e6:.1f}M "
                   f"({big[1]['trained_share_pct']}%): the seed's 0.1-1%.")
    out.append(f"Width decides it: a d x d matrix gains 2 x r x d adapter parameters against its d x d, a share of "
               f"2r/d: {100 * 2 * r / h:.1f}% at this base's width {h} with r {r}, "
               f"{100 * 2 * r0 / h8:.2f}% at 8B's {h8} with r {r0}.")
    return " ".join(out)


def read_quantization(demo, source, others=(LLAMA_8B, LLAMA_70B)):
    """The 4-bit against unquantized measurement in words, with what the same count gives for `others`."""
    if not demo.get("ran"):
        return f"Not measured: {demo.get('why')}."
    four, full = demo["4bit"], demo["unquantized"]
    s = shape(source)
    mine = table({"this": source}, {"-": (1, ("q_proj",))})[0]
    emb = s["vocab_size"] * s["hidden_size"] * (1 if s["tie_word_embeddings"] else 2) / base_params(s)
    out = [f"The nf4 base holds {four['weights_mb']} MB of weights against {full['weights_mb']} MB in {full['dtype']} "
           f"({demo['weights_saving_pct']}% less)."]
    if full["dtype"] != "bfloat16":
        out.append(f"Counted in bf16, as on a GPU: {mine['weights_mb_nf4']} MB against {mine['weights_mb_16bit']} MB "
                   f"({mine['nf4_saving_pct']}% less).")
    out.append(f"That is below the seed's ~70% because {100 * emb:.0f}% of this base is its embedding matrix, which is "
               "never quantized. The same count for the seed's sizes:")
    for h in others:
        r = table({h: h}, {"-": (1, ("q_proj",))})[0]
        fits = [f"{'fits' if r[k] < H100_MB else 'does not fit'} one 80 GB H100"
                for k in ("weights_mb_16bit", "weights_mb_nf4")]
        out.append(f"{h}: {r['weights_mb_16bit'] / 1e3:.1f} GB in bf16 ({fits[0]}), {r['weights_mb_nf4'] / 1e3:.1f} GB "
                   f"in nf4 ({r['nf4_saving_pct']}% less; {fits[1]}, before activations).")
    if four.get("peak_mb") and full.get("peak_mb"):
        out.append(f"Peak GPU memory of each run: {four['peak_mb']} MB against {full['peak_mb']} MB.")
    ratio = demo.get("speed_ratio")
    if ratio:
        how = "faster" if ratio > 1 else "about the same" if ratio >= 0.9 else "slower"
        why = {"about the same": ": on a model this small, turning 4-bit weights back into the compute dtype is "
                                 "a small share of a step",
               "slower": ": each 4-bit weight is turned back into the compute dtype before every matmul"
                         + (" (on a CPU without a fused 4-bit kernel)" if demo["device"] == "cpu" else "")
                         + ", so QLoRA buys memory with time"}.get(how, "")
        out.append(f"Speed: {four['tokens_per_s']:,.0f} tokens/s in 4-bit against {full['tokens_per_s']:,.0f} "
                   f"({ratio}x, {how}; {demo['steps']} steps, a rough figure){why}.")
    return " ".join(out)
