"""Checks of a served model: pre-flight of the adapters before vLLM starts, parity with transformers,
structured output scored against the labels, load test.

`serve` starts the server and talks to it; this module asks whether what it serves is what was
trained (pre-flight: rank, target modules, vocab, base revision, chat template; parity: the same
greedy tokens as transformers + PEFT), whether its schema-constrained answers are right and not
only valid (structured output, scored), and how fast it answers (the load test, `ftplay.loadtest`, base and
adapters mixed).
"""
import json
from dataclasses import dataclass
from pathlib import Path

from . import evaluate, identity, models, numbers, progress, prompts, tinymodel
from .errors import ConfigError, FtplayError
from .loadtest import load_lanes, load_test  # noqa: F401 (05 and the benchmarks call serve_checks.load_test)
from .serve import ALLOWED_LORA_RANKS, LORA_TARGETS, adapter_config, adapter_rank, lora_rank_for


# ---------------------------------------------------------------- pre-flight
@dataclass(frozen=True)
class Finding:
    adapter: str
    check: str
    ok: bool
    message: str


def _as_ref(base):
    if isinstance(base, models.ModelRef):
        return base
    p = Path(str(base))
    return models.ModelRef(str(base), str(p.resolve()) if p.exists() else str(base),
                           "local" if p.exists() else "hub", tinymodel.files_hash(p) if p.exists() else "main")


def _targeted_modules(path, cfg):
    """Module names the adapter's weights touch (read from the weights file when there is one,
    so regex or `all-linear` target_modules are resolved the way PEFT resolved them)."""
    weights = Path(path) / "adapter_model.safetensors"
    if weights.exists():
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as f:
            names = list(f.keys())
        return {n.split(".lora_")[0].split(".")[-1] for n in names if ".lora_" in n}
    tm = cfg.get("target_modules") or []
    return {tm} if isinstance(tm, str) else set(tm)


def preflight(base, adapters, max_lora_rank=None):
    """Check each adapter against the served base before starting vLLM: [Finding], one per check.

    `base` is a ModelRef or a model folder / hub id; `adapters` is {name: folder};
    `max_lora_rank` None means the value ServeConfig would derive from these adapters.
    """
    ref = _as_ref(base)
    base_cfg = json.loads((Path(ref.path) / "config.json").read_text()) if Path(ref.path).exists() else {}
    model_type = base_cfg.get("model_type", "?")
    base_tok = models.load_tokenizer(ref)
    base_thash = models.template_hash(base_tok)
    ranks = {n: adapter_rank(p) for n, p in adapters.items()}
    limit = max_lora_rank or lora_rank_for(ranks.values())
    out = []
    for name, path in adapters.items():
        def add(check, ok, msg):
            out.append(Finding(name, check, bool(ok), msg))

        cfg = adapter_config(path)
        meta_path = Path(path) / identity.ADAPTER_META
        meta = identity.read_adapter_meta(path, missing_ok=True)
        r = ranks[name]
        if limit not in ALLOWED_LORA_RANKS:
            add("rank", False, f"--max-lora-rank {limit} is not one vLLM accepts {ALLOWED_LORA_RANKS}; "
                f"use {lora_rank_for([limit])}")
        else:
            add("rank", r <= limit, f"rank {r} <= --max-lora-rank {limit}" if r <= limit else
                f"rank {r} exceeds --max-lora-rank {limit}; serve with max_lora_rank={lora_rank_for([r])} "
                f"(or leave it 0 to derive it) or retrain with LORA_R <= {limit}")
        supported = LORA_TARGETS.get(model_type)
        targets = _targeted_modules(path, cfg)
        if supported is None:
            add("target_modules", False, f"model_type {model_type!r} is not in ftplay's table of vLLM LoRA "
                f"modules ({sorted(LORA_TARGETS)}); check vllm/model_executor/models/ and extend LORA_TARGETS")
        else:
            bad = sorted(targets - supported)
            add("target_modules", not bad, f"targets {sorted(targets)} are all LoRA-capable in vLLM for {model_type}"
                if not bad else f"targets {bad} are not LoRA modules vLLM serves for {model_type} "
                f"(allowed: {sorted(supported)}); retrain with TARGET_MODULES from that list")
        mts = cfg.get("modules_to_save") or []
        add("modules_to_save", not mts, "no modules_to_save" if not mts else
            f"modules_to_save={mts}: vLLM rejects fully trained extra modules (vllm#9280); retrain without "
            "modules_to_save or merge the adapter into the base (peft merge_and_unload) and serve the merged model")
        vocab = (meta or {}).get("vocab_size")
        added_ok, added_msg = True, ""
        if (Path(path) / "tokenizer_config.json").exists():
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(path))
            if len(tok) != len(base_tok) or tok.get_added_vocab() != base_tok.get_added_vocab():
                added_ok = False
                added_msg = (f"; the adapter's tokenizer has {len(tok)} tokens ({len(tok.get_added_vocab())} added), "
                             f"the base's {len(base_tok)} ({len(base_tok.get_added_vocab())} added)")
        vocab_ok = added_ok and (vocab is None or vocab == base_cfg.get("vocab_size"))
        add("vocab", vocab_ok, f"vocab {vocab} matches the base" if vocab_ok else
            f"adapter trained with vocab_size {vocab} / added tokens differing from the base's "
            f"{base_cfg.get('vocab_size')}{added_msg}: vLLM serves the base tokenizer and embeddings; "
            "retrain without adding tokens, or merge the adapter and serve the merged model")
        if meta is None:
            add("base", False, f"{meta_path} is missing, so the base revision and chat template the adapter was "
                "trained with are unknown; train with ftplay (03 writes it) or write it by hand")
        else:
            base = identity.compare_base(meta.get("base") or {}, ref, str(meta_path))
            add("base", base.changed is False, base.message)
        if meta is not None:
            th = meta.get("template_hash")
            add("chat_template", th == base_thash, f"chat template {th} matches" if th == base_thash else
                f"adapter trained with chat template {th}, the served tokenizer has {base_thash}: prompts would "
                "be rendered differently; serve the tokenizer it was trained with (--chat-template) or retrain")
    return out


def preflight_reading(findings):
    """One sentence of the pre-flight: how many checks pass, for which adapters, which checks; each failure named
    with its message (the notebook shows the failures as a table too)."""
    adapters = list(dict.fromkeys(f.adapter for f in findings))
    checks = list(dict.fromkeys(f.check for f in findings))
    ok = sum(f.ok for f in findings)
    out = (f"pre-flight: {ok} of {len(findings)} checks pass for {', '.join(adapters) or 'no adapter'} "
           f"({', '.join(checks)} each)")
    bad = [f"{f.adapter} {f.check}: {f.message}" for f in findings if not f.ok]
    return out + (": fails " + "; ".join(bad) if bad else "")


def check_or_raise(findings):
    """Raise FtplayError listing every failed pre-flight check (each with its fix)."""
    bad = [f"{f.adapter}: {f.check}: {f.message}" for f in findings if not f.ok]
    if bad:
        raise FtplayError(bad, "pre-flight failed: vLLM would reject or mis-serve these adapters")
    return findings


# ---------------------------------------------------------------- parity
def _hf_greedy(model, tok, ids, max_tokens):
    """Greedy ids after `ids`, on one torch thread: the vLLM server runs on the same cores, and a small model's
    token-by-token decoding loses more to two threads contending with it than it gains (05's parity on whole
    replies measured here, a reply-only run: 128 s with two threads, 37 s with one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                 generation_config=prompts.greedy_config(tok, max_tokens))
    finally:
        torch.set_num_threads(threads)
    return out[0, x.shape[1]:].tolist()


def _strip_eos(ids, stop):
    return ids[:-1] if ids and ids[-1] in stop else ids


def parity_cases(tasks, base_name="base", n=6):
    """{case: {"model", "task", "conversations", "max_tokens"}} for `parity`: each task's adapters on that
    task's own conversations and answer cap, and the base on each task's (the first task's case is
    named `base_name`, a further task's "<base_name>:<task>")."""
    cases = {}
    for i, (task, t) in enumerate(tasks.items()):
        convs = t.conversations(n)
        for name in (base_name, *t.adapters):
            case = f"{base_name}:{task}" if name == base_name and i else name
            cases[case] = {"model": name, "task": task, "conversations": convs, "max_tokens": t.max_tokens}
    return cases


def parity(ref, adapters, client, conversations, max_tokens=8, base_name="base"):
    """Greedy answers from transformers + PEFT in-process (float32) against the server's, token by token.

    `conversations` are chat message lists sent to the base and every adapter with `max_tokens`, or
    {case: {"model", "conversations", "max_tokens"}} (`parity_cases`: each task's adapters on their own
    conversations). Each is rendered by prompts.prompt_ids (the ids training and
    scoring use) and sent to /v1/completions as those token ids, and as messages to
    /v1/chat/completions, where the server renders them with its own copy of the template (token
    ids compared for both; `chat_prompt_exact` counts the chats whose prompt, as the server rendered
    it, is token for token the prompt training and scoring use). Returns {"models": {case: {"model", "prompts",
    "max_tokens", "exact", "token_agreement", "chat_exact", "chat_prompt_exact", "first_mismatch"}}, "ok": bool};
    the end-of-turn token is ignored (vLLM does not return it).
    """
    from contextlib import nullcontext

    from peft import PeftModel

    names = list(adapters)
    if not isinstance(conversations, dict):
        conversations = {n: {"model": n, "conversations": conversations, "max_tokens": max_tokens}
                         for n in [base_name] + names}
    tok = models.load_tokenizer(ref)
    stop = prompts.end_of_turn_ids(tok)
    base = models.load_model(ref)
    model = base
    if names:
        model = PeftModel.from_pretrained(base, str(adapters[names[0]]), adapter_name=names[0])
        for n in names[1:]:
            model.load_adapter(str(adapters[n]), adapter_name=n)
        model.eval()
    result = {}
    for case, spec in conversations.items():
        name, convs, cap = spec["model"], spec["conversations"], spec["max_tokens"]
        if name == base_name:
            ctx = model.disable_adapter() if names else nullcontext()
        else:
            model.set_adapter(name)
            ctx = nullcontext()
        texts = [prompts.prompt_ids(tok, m) for m in convs]
        exact = chat_exact = prompt_exact = agree = total = 0
        first = None
        with ctx:
            for msgs, text in zip(convs, texts):
                hf = _strip_eos(_hf_greedy(model, tok, text, cap), stop)
                c = client.complete(name, text, max_tokens=cap, extra_body={"return_token_ids": True,
                                                                            "skip_special_tokens": False})
                served = _strip_eos(list(getattr(c.choices[0], "token_ids", None) or []), stop)
                ch = client.chat(name, msgs, max_tokens=cap, extra_body={"return_token_ids": True})
                served_chat = _strip_eos(list(getattr(ch.choices[0], "token_ids", None) or []), stop)
                n = max(len(hf), len(served))
                agree += sum(a == b for a, b in zip(hf, served))
                total += n
                exact += hf == served
                chat_exact += hf == served_chat
                served_prompt = list(getattr(ch, "prompt_token_ids", None) or [])  # the server's own rendering
                prompt_exact += served_prompt == text
                if (hf != served or hf != served_chat or served_prompt != text) and first is None:
                    first = {"prompt": msgs[-1]["content"], "transformers": tok.decode(hf),
                             "prompt_ids_differ_from": None if served_prompt == text else tok.decode(served_prompt),
                             "completions": c.choices[0].text, "chat": ch.choices[0].message.content,
                             "transformers_ids": hf, "completions_ids": served, "chat_ids": served_chat}
        result[case] = {"model": name, "task": spec.get("task"), "prompts": len(convs), "max_tokens": cap,
                        "exact": exact, "chat_exact": chat_exact, "chat_prompt_exact": prompt_exact,
                        "token_agreement": round(agree / total, 4) if total else 1.0, "first_mismatch": first}
    ok = all(r["exact"] == r["prompts"] == r["chat_exact"] == r["chat_prompt_exact"] for r in result.values())
    return {"ok": ok, "max_tokens": max(r["max_tokens"] for r in result.values()) if result else max_tokens,
            "models": result}


def check_parity(result):
    """Raise FtplayError showing the first prompt where the server and transformers disagree."""
    bad = [f"{name}: {r['exact']}/{r['prompts']} completions and {r['chat_exact']}/{r['prompts']} chat answers "
           f"match transformers, {r.get('chat_prompt_exact', '?')}/{r['prompts']} chat prompts match ftplay's; "
           f"first mismatch: {json.dumps(r['first_mismatch'], ensure_ascii=False)[:600]}"
           for name, r in result["models"].items() if r["first_mismatch"]]
    if bad:
        raise FtplayError(bad + ["serve in float32 (dtype) and check that the server's base, tokenizer and "
                                 "adapters are the ones trained on"], "vLLM and transformers disagree")
    return result


# ---------------------------------------------------------------- structured output, scored
STRUCTURED_MODES = ("json_schema", "choice")   # {"label": enum}, as EndpointPredictor sends; the bare label
VALID_ENOUGH = 0.9   # valid rate above which "valid" says nothing more: the question is whether it is right


def structured_scores(client, models_, rows, labels, system_prompt, base_name="base", n_boot=1000,
                      concurrency=4, max_tokens=32, seed=0):
    """Schema-constrained answers of every model in `models_` (base first, then adapters) on `rows`
    ({"text", "label"}), scored against their labels with `evaluate.score`, in each mode of
    STRUCTURED_MODES: `json_schema` (the answer is {"label": one of labels}, what a JSON API asks for)
    and `choice` (the bare label: the format ftplay's adapters were trained to answer).

    Returns {"n", "modes", "valid_rate" (json_schema, every model), "models": {name: metrics
    under json_schema}, "choice": {name: metrics}, "answers": {mode: {name: [raw answer per row]}},
    "findings": [sentences]}; each metrics dict is
    {"n", "valid_rate", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "valid_but_wrong_share",
    "top_answer", "top_answer_share", "examples"}, and an adapter's also has `vs_base` (json_schema,
    paired on the same rows), `vs_choice` (its json_schema answers against its bare-label ones) and
    `valid_but_wrong` (bool, see `structured_findings`)."""
    from concurrent.futures import ThreadPoolExecutor

    if not rows or base_name not in models_:
        raise ConfigError(f"structured output needs rows (STRUCTURED_ROWS={len(rows)}: set it >= 1) and the base "
                          f"{base_name!r} among the models {list(models_)}")
    truth = [r["label"] for r in rows]
    convs = [prompts.messages(r["text"], labels, system_prompt=system_prompt) for r in rows]
    preds = {}
    for mode in STRUCTURED_MODES:
        for name in models_:
            with ThreadPoolExecutor(concurrency) as ex:
                answers = list(progress.bar(ex.map(lambda m: client.classify(name, m, labels, mode=mode,
                                                                              max_tokens=max_tokens), convs),
                                            total=len(convs), desc=f"structured output: {name}, {mode}", unit="row"))
            preds[mode, name] = [evaluate.Prediction(label, 1.0 if label else 0.0, raw) for label, raw in answers]
    out = {"n": len(rows), "modes": list(STRUCTURED_MODES), "models": {}, "choice": {},
           # each row's raw answer, for a second scorer on the same answers (harness.compare)
           "answers": {mode: {name: [preds[mode, name][i].raw for i in range(len(rows))] for name in models_}
                       for mode in STRUCTURED_MODES}}
    for (mode, name), p in preds.items():
        out["models" if mode == "json_schema" else "choice"][name] = _structured_metrics(truth, p, labels, n_boot, seed)
    for name in models_:
        if name == base_name:
            continue
        m = out["models"][name]
        for key, other in (("vs_base", preds["json_schema", base_name]), ("vs_choice", preds["choice", name])):
            d = evaluate.paired_difference(truth, preds["json_schema", name], other, labels, n_boot, seed)
            m[key] = {k: d[k] for k in ("accuracy_diff", "accuracy_diff_ci", "macro_f1_diff", "macro_f1_diff_ci",
                                        "mcnemar_p")}
    valid = [p.label is not None for name in models_ for p in preds["json_schema", name]]
    out["valid_rate"] = sum(valid) / len(valid) if valid else 0.0
    out["findings"] = structured_findings(out, base_name)
    return out


def classify_models(tasks, base_name="base"):
    """(model names, TaskServing) of the triage task for structured output and the eval framework, which
    score labels (a reply has none to restrict an answer to): the base and the classification adapters;
    ([base_name], None) when no served adapter classifies."""
    from .stages import CLASSIFY

    t = tasks.get(CLASSIFY)
    return ([base_name, *t.adapters], t) if t else ([base_name], None)


NO_TRIAGE = ("no classification adapter is served: structured output and the eval framework score labels, the "
             "triage task only")


def structured_for(client, tasks, base_name="base", n_rows=60, n_boot=1000):
    """structured_scores for the triage task's models on its first `n_rows` rows, with "ran": True;
    {"ran": False, "why", "findings"} when no classification adapter is served."""
    names, triage = classify_models(tasks, base_name)
    if triage is None:
        return {"ran": False, "why": NO_TRIAGE, "findings": [NO_TRIAGE]}
    return {"ran": True, **structured_scores(client, names, list(triage.rows[:n_rows]), list(triage.labels),
                                             triage.system_prompt, base_name=base_name, n_boot=n_boot)}


def structured_frame(structured):
    """structured_for's metrics as one table (mode, model) x readable columns (percentages, each value with its 95%
    interval in one cell), or its reason when it did not run."""
    import pandas as pd

    if not structured.get("ran", True):
        return pd.DataFrame({"structured output": [structured["why"]]})

    def row(m):
        return {"valid": f"{m['valid_rate']:.0%}",
                "accuracy [95% CI]": numbers.interval(m["accuracy"], m["accuracy_ci"], ".0%"),
                "macro-F1 [95% CI]": numbers.interval(m["macro_f1"], m["macro_f1_ci"], ".2f"),
                "valid but wrong": f"{m['valid_but_wrong_share']:.0%}", "top answer": m["top_answer"],
                "top answer share": f"{m['top_answer_share']:.0%}"}

    return pd.concat({mode: pd.DataFrame({name: row(m) for name, m in
                                          structured["models" if mode == "json_schema" else "choice"].items()}).T
                      for mode in structured["modes"]})


def _structured_metrics(truth, preds, labels, n_boot, seed):
    s = evaluate.score(truth, preds, labels, n_boot=n_boot, seed=seed)
    answered = [p.label for p in preds if p.label is not None]
    top = max(set(answered), key=answered.count) if answered else None
    return {"n": s["n"], "valid_rate": s["valid_rate"], "accuracy": s["accuracy"], "accuracy_ci": s["accuracy_ci"],
            "macro_f1": s["macro_f1"], "macro_f1_ci": s["macro_f1_ci"],
            "valid_but_wrong_share": (sum(p.label is not None and p.label != t for p, t in zip(preds, truth))
                                      / len(truth) if truth else 0.0),
            "top_answer": top, "top_answer_share": answered.count(top) / len(preds) if answered else 0.0,
            "examples": [p.raw for p in preds[:3]]}


def structured_findings(result, base_name="base"):
    """One sentence per adapter on what its schema-constrained answers are worth, and sets each
    adapter's `valid_but_wrong`: valid answers (valid rate >= VALID_ENOUGH) that are no more often
    right than the untrained base's under the same schema (the paired accuracy difference's 95% CI
    reaches 0 or below). A lower accuracy under json_schema than under choice (CI below 0) is
    named too: the adapter was trained to answer the bare label, not JSON."""
    out = []
    for name, m in result["models"].items():
        if name == base_name:
            continue
        lo, hi = m["accuracy_ci"]
        text = (f"{name}: {m['valid_rate']:.0%} valid, {m['accuracy']:.0%} right (95% CI {lo:.0%}-{hi:.0%}), "
                f"macro-F1 {m['macro_f1']:.3f} under json_schema on {m['n']} held-out rows")
        vb, vc = m.get("vs_base"), m.get("vs_choice")
        m["valid_but_wrong"] = bool(vb and m["valid_rate"] >= VALID_ENOUGH and vb["accuracy_diff_ci"][0] <= 0)
        if m["valid_but_wrong"]:
            text += (f": VALID BUT WRONG: {m['valid_but_wrong_share']:.0%} of rows get a valid, wrong label, "
                     f"no better than the untrained base under the same schema (accuracy {vb['accuracy_diff']:+.2f}, "
                     f"95% CI {vb['accuracy_diff_ci'][0]:+.2f} to {vb['accuracy_diff_ci'][1]:+.2f})")
        elif vb:
            text += (f"; {vb['accuracy_diff']:+.2f} accuracy against the base under the same schema "
                     f"(95% CI {vb['accuracy_diff_ci'][0]:+.2f} to {vb['accuracy_diff_ci'][1]:+.2f})")
        if m["top_answer_share"] >= 0.5:
            text += f"; answers {m['top_answer']!r} for {m['top_answer_share']:.0%} of rows"
        if vc and vc["accuracy_diff_ci"][1] < 0:
            c = result["choice"][name]
            lo, hi = vc["accuracy_diff_ci"]   # the interval of the difference, not of either accuracy
            text += (f"; the JSON format costs it {-vc['accuracy_diff']:.2f} accuracy (95% CI {-hi:.2f} to "
                     f"{-lo:.2f}) against the bare label it was trained to answer ({c['accuracy']:.0%} right under "
                     "choice): train on the format you serve")
        out.append(text)
    return out
