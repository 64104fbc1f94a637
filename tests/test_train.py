"""Training: config validation, the loss-mask guard, and real training steps on both engines."""
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from ftplay import masks, prompts, recipes, standins, train
from ftplay.errors import ConfigError, FtplayError


def test_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        recipes.TrainConfig(engine="magic", lora_r=0, learning_rate=5, target_modules=("lm_head",), optimizer="sgd")
    msg = str(e.value)
    for name in ("ENGINE", "LORA_R", "LEARNING_RATE", "TARGET_MODULES", "OPTIMIZER"):
        assert name in msg
    assert e.value.problems and len(e.value.problems) == 5


def test_wrong_types_are_config_errors_naming_each_parameter():
    with pytest.raises(ConfigError) as e:
        recipes.TrainConfig(lora_r="16")
    assert e.value.problems == ["LORA_R='16' (str) must be an int; set it in the parameters cell like LORA_R=16"]
    with pytest.raises(ConfigError) as e:
        recipes.TrainConfig(num_epochs="3", load_in_4bit=1, lora_dropout=None, target_modules="q_proj", max_steps=2.0)
    assert [p.split("=")[0] for p in e.value.problems] == ["LOAD_IN_4BIT", "LORA_DROPOUT", "TARGET_MODULES", "EPOCHS",
                                                           "MAX_STEPS"]
    assert "must be a list of names" in e.value.problems[2]
    cfg = recipes.TrainConfig(num_epochs=3, target_modules=["q_proj"])  # an int is a number, a list a tuple
    assert cfg.num_epochs == 3 and cfg.target_modules == ("q_proj",)


def test_seed_recipe_is_the_documented_default():
    c = recipes.SEED_RECIPE
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.learning_rate, c.num_epochs, c.warmup_ratio) == \
        (16, 32, 0.05, 2e-4, 3.0, 0.1)
    assert c.target_modules == ("q_proj", "v_proj", "o_proj") and c.optimizer == "adamw_8bit" and c.load_in_4bit
    assert recipes.recipe_for("hub").lora_r == 16
    emb = recipes.recipe_for("embedded", {"learning_rate": None, "num_epochs": 1})
    assert emb.target_modules == recipes.ALL_LINEAR and emb.num_epochs == 1


def _conv(label="billing"):
    return prompts.messages("my card was charged twice", ["billing", "bug"], label)


def test_mask_guard_names_masked_eos(tiny_tok):
    ids = tiny_tok.apply_chat_template(_conv(), tokenize=True, return_dict=False)
    eos = tiny_tok.eos_token_id
    labels = [t if i > len(ids) - 4 and t != eos else -100 for i, t in enumerate(ids)]
    with pytest.raises(FtplayError, match="never trained"):
        masks.check_mask(tiny_tok, [{"input_ids": ids, "labels": labels}])
    with pytest.raises(FtplayError, match="prompt tokens are in the loss"):
        masks.check_mask(tiny_tok, [{"input_ids": ids, "labels": list(ids)}])


def test_tokenize_chat_trains_only_the_answer(tiny_tok):
    rows, truncated = masks.tokenize_chat(tiny_tok, [_conv("bug")], 512)
    trained = [tiny_tok.decode([t]) for t, label in zip(rows[0]["input_ids"], rows[0]["labels"]) if label != -100]
    assert trained == ["bug", "<|im_end|>"] and truncated == 0
    long = prompts.messages("word " * 200, ["billing", "bug"], "bug")
    rows, truncated = masks.tokenize_chat(tiny_tok, [_conv("bug"), long], 60)
    assert truncated == 1 and len(rows) == 1, "an example cut before its answer is dropped, not trained empty"
    with pytest.raises(FtplayError, match="MAX_SEQ_LEN=16"):
        masks.tokenize_chat(tiny_tok, [_conv("bug")], 16)


def test_the_reply_task_gets_its_own_embedded_recipe():
    """Issue 15: the embedded reply recipe trains unquantized (nf4 saves nothing that matters on a 17 MB base and is
    5-8% slower on this CPU) for 4 epochs at 3e-3 (issue 27: 2 at 1e-3 wrote one canned reply);
    triage and the real models' recipes are unchanged, and the parameters cell still overrides it."""
    reply = recipes.recipe_for("embedded", task="reply")
    assert (reply.load_in_4bit, reply.num_epochs, reply.lora_r, reply.learning_rate) == (False, 4.0, 32, 3e-3)
    assert recipes.EMBEDDED_RECIPE.load_in_4bit and recipes.SEED_RECIPE.load_in_4bit
    # issue 18: on a CPU (this machine, CI) the embedded model trains triage unquantized too; a GPU keeps QLoRA
    assert recipes.recipe_for("embedded") == replace(recipes.EMBEDDED_RECIPE, load_in_4bit=recipes._cuda())
    assert recipes.recipe_for("hub", task="reply") == recipes.SEED_RECIPE
    assert recipes.recipe_for("embedded", {"load_in_4bit": True, "num_epochs": None}, task="reply").load_in_4bit


def _reply_convs():
    from ftplay import formats

    fmt = formats.HOUSE
    a = formats.render(fmt, name="Ana", topic="a refund", details="order 1042; charged twice",
                       next_step="we refund the second charge")
    b = formats.render(fmt, name="there", topic="your delivery", details="none", next_step="we check with the carrier")
    return [prompts.reply_messages("I was charged twice for order 1042.", fmt, a),
            prompts.reply_messages("Where is my parcel?", fmt, b)]


def test_the_mask_trains_every_reply_token_and_the_end_of_turn_only(tiny_tok):
    convs = _reply_convs()
    report = masks.mask_report(tiny_tok, convs, 512)
    assert report == {"examples": 2, "checked": 2, "cut": 0, "whole_answer_trained": 2, "ends_with_end_of_turn": 2,
                      "prompt_tokens_trained": 0, "answer_tokens": {"p50": 49, "max": 49}}
    rows, _ = masks.tokenize_chat(tiny_tok, convs, 512)
    trained = [t for t, label in zip(rows[0]["input_ids"], rows[0]["labels"]) if label != -100]
    assert tiny_tok.decode(trained) == convs[0][-1]["content"] + "<|im_end|>"
    assert len(rows[0]["input_ids"]) == 187 and len(trained) == 49
    assert masks.mask_report(tiny_tok, convs, 180)["cut"] == 1, "a conversation MAX_SEQ_LEN cuts is counted apart"
    assert masks.mask_report(tiny_tok, [_conv("bug")], 512)["answer_tokens"] == {"p50": 2, "max": 2}


def test_a_mask_that_drops_the_end_of_turn_or_trains_the_prompt_is_refused(tiny_tok, monkeypatch):
    real = prompts.training_example
    monkeypatch.setattr(prompts, "training_example", lambda tok, msgs, how=None: (
        lambda ids, mask: (ids, mask[:-2] + [0, 0]))(*real(tok, msgs, how)))
    with pytest.raises(FtplayError, match="2 of 2 examples do not train exactly their answer"):
        masks.mask_report(tiny_tok, _reply_convs(), 512)
    monkeypatch.setattr(prompts, "training_example", lambda tok, msgs, how=None: (
        lambda ids, mask: (ids, [1] * len(mask)))(*real(tok, msgs, how)))
    with pytest.raises(FtplayError, match="prompt tokens are trained"):
        masks.mask_report(tiny_tok, _reply_convs(), 512)


def test_03_trains_the_task_02_curated_and_04_scores_the_adapter_s(tiny_ref, tmp_path):
    from ftplay import identity, tasks
    from ftplay.errors import ConfigError

    assert tasks.curated({"task": "reply", "reply_format": "bitext"}).reply_format == "bitext"
    assert tasks.curated({}).name == "classify"   # a record written before tasks existed is triage
    meta = train.write_adapter_meta(tmp_path / "r", tiny_ref, [], "Reply.", "reply", "house")
    task = tasks.of_adapter(identity.read_adapter_meta(tmp_path / "r"))
    assert (task.name, task.reply_format) == ("reply", "house") and meta["task"] == "reply"
    task.check_curated({"task": "reply"})
    with pytest.raises(ConfigError, match="the adapter was trained for the 'reply' task but 02 curated 'classify'"):
        task.check_curated({"task": "classify"})


def test_the_adapter_names_its_task(tiny_ref, tmp_path):
    from ftplay import identity

    meta = train.write_adapter_meta(tmp_path / "r", tiny_ref, [], "Reply.", "reply", "house")
    assert (meta["task"], meta["reply_format"], meta["system_prompt"]) == ("reply", "house", "Reply.")
    assert identity.read_adapter_meta(tmp_path / "r") == meta and identity.adapter_task(meta) == "reply"
    cls = train.write_adapter_meta(tmp_path / "c", tiny_ref, ["bug"], "Triage.")
    assert cls["task"] == "classify" and "reply_format" not in cls
    assert identity.adapter_task({}) == "classify", "an adapter written before tasks existed is triage"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["trl", "unsloth"])
def test_real_training_steps_produce_a_vllm_loadable_adapter(engine, tiny_ref, tmp_path):
    convs = [prompts.messages(text, ["billing", "bug"], label) for text, label in
             [("charged twice", "billing"), ("app crashes", "bug"), ("refund my invoice", "billing"),
              ("button broken", "bug")] * 4]
    cfg = recipes.recipe_for("embedded", {"engine": engine, "max_steps": 4, "batch_size": 4, "logging_steps": 1,
                                        "load_in_4bit": engine == "unsloth"})
    res = train.train(cfg, tiny_ref, convs, convs[:4], tmp_path)
    assert res.engine == engine and res.steps == 4
    if engine == "unsloth":
        assert recipes.resolve_engine(cfg)[2] == "adamw_torch_fused", "the optimizer actually used is reported"
    assert math.isfinite(res.train_loss) and res.train_loss < res.first_loss
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    acfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert not acfg.get("modules_to_save") and acfg["r"] == cfg.lora_r
    log = train.read_log(res.log_path)
    assert [r["step"] for r in log if "loss" in r][:2] == [1, 2]


def test_loss_on_trained_positions_equals_the_models_own_loss(tiny_ref, tiny_tok):
    import torch
    from peft import LoraConfig, get_peft_model

    from ftplay import models

    torch.manual_seed(0)
    model = get_peft_model(models.load_model(tiny_ref),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    crash = prompts.messages("it crashes on start, again and again", ["billing", "bug"], "bug")
    rows, _ = masks.tokenize_chat(tiny_tok, [_conv("billing"), crash], 512)
    n = max(len(r["input_ids"]) for r in rows)

    def pad(xs, v):
        return [x + [v] * (n - len(x)) for x in xs]

    batch = {"input_ids": torch.tensor(pad([r["input_ids"] for r in rows], 0)),
             "labels": torch.tensor(pad([r["labels"] for r in rows], -100)),
             "attention_mask": torch.tensor(pad([[1] * len(r["input_ids"]) for r in rows], 0))}
    assert rows[0]["input_ids"] != rows[1]["input_ids"] and len(rows[0]["input_ids"]) != n, "padding is exercised"
    for items in (None, torch.tensor(9)):
        own = model(**batch, num_items_in_batch=items).loss
        ours = train.trained_positions_loss(model, batch, items)
        assert abs(own.item() - ours.item()) < 1e-5
    ours.backward()
    assert any(p.grad is not None for n_, p in model.named_parameters() if "lora_" in n_)


def _worker(out, seed=3407, wait=True):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    cmd = [sys.executable, str(ROOT / "tests" / "train_worker.py"), str(out), str(seed)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    """Kill a real training process (SIGKILL) after a checkpoint, rerun it: it resumes from the
    newest complete checkpoint and ends with the same losses as an uninterrupted run with the same
    seed; a second uninterrupted run with that seed gives the same final loss to 1e-4."""
    import os
    import signal
    import time

    full = _worker(tmp_path / "full")
    again = _worker(tmp_path / "again")
    assert full["steps"] == 20 and full["resumed_from"] is None
    assert abs(full["train_loss"] - again["train_loss"]) < 1e-4 and abs(full["eval_loss"] - again["eval_loss"]) < 1e-4

    out = tmp_path / "killed"
    proc = _worker(out, wait=False)
    ck = out / "checkpoints" / "checkpoint-8" / "trainer_state.json"
    deadline = time.time() + 300
    while not ck.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ck.exists(), "the worker never wrote checkpoint-8"
    assert not (out / "adapter").exists(), "killed before the end: no final adapter"
    resumed = _worker(out)
    assert resumed["resumed_from"].endswith(("checkpoint-8", "checkpoint-12", "checkpoint-16"))
    assert resumed["steps"] == full["steps"]
    assert abs(resumed["train_loss"] - full["train_loss"]) < 1e-4
    assert abs(resumed["eval_loss"] - full["eval_loss"]) < 1e-4
    log = train.read_log(resumed["log_path"])
    assert [r["step"] for r in log if "loss" in r][-1] == 20


# ---------------------------------------------------------------- Unsloth imported first
def test_unsloth_is_imported_first_on_a_gpu_and_warned_when_late(caplog):
    imported = []

    def has(name):  # find_spec: installed
        return object()

    kw = {"find_spec": has, "importer": imported.append}
    assert train._import_unsloth_first({}, cuda=lambda: False, **kw) == (None, ()) and imported == [], \
        "CPU: the stock path, no import"
    assert train._import_unsloth_first({}, cuda=lambda: True, find_spec=lambda n: None,
                                       importer=imported.append) == (None, ()) and imported == []
    assert train._import_unsloth_first({"torch": 1, "json": 1}, cuda=lambda: True, **kw) == (True, ())
    assert imported == ["unsloth"] and not caplog.records
    with caplog.at_level("WARNING", logger="ftplay.train"):
        first, late = train._import_unsloth_first({"transformers": 1, "peft": 1}, cuda=lambda: True, **kw)
    assert (first, late) == (False, ("transformers", "peft")) and imported == ["unsloth", "unsloth"]
    assert "Unsloth is imported after transformers, peft" in caplog.text


def test_unsloth_patched_reports_where_it_came_from(monkeypatch):
    monkeypatch.setattr(train, "UNSLOTH_FIRST", None)
    assert train.unsloth_patched({}) is None
    assert train.unsloth_patched({"unsloth": 1}) is False, "imported later (by _load_unsloth): unpatched"
    for first in (True, False):
        monkeypatch.setattr(train, "UNSLOTH_FIRST", first)
        assert train.unsloth_patched({"unsloth": 1}) is first


def test_training_entry_points_import_ftplay_train_before_transformers():
    """ftplay and ftplay.train load none of transformers/TRL/PEFT, and notebook 03 and the GPU check
    import ftplay.train before any other ftplay module, so Unsloth can come first on a GPU."""
    import subprocess
    import sys
    from pathlib import Path

    ROOT = Path(__file__).resolve().parent.parent
    code = ("import sys, ftplay, ftplay.train; "
            "print(sorted(m for m in ('transformers', 'trl', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"

    def first_import(src):
        return next(line for line in src.splitlines() if line.startswith(("from ftplay", "import ftplay")))

    cell = next(c for c in json.loads((ROOT / "notebooks" / "03_train_qlora.ipynb").read_text())["cells"]
                if c["cell_type"] == "code")
    assert first_import("".join(cell["source"])).startswith("from ftplay import train")
    script = (ROOT / "benchmarks" / "gpu_check.py").read_text()
    assert first_import(script).startswith("from ftplay import train")
    first_stack_import = min(script.index(w) for w in ("import trl", "import transformers", "from transformers")
                             if w in script)
    assert script.index("from ftplay import train") < first_stack_import


# ---------------------------------------------------------------- what LoRA trains, what QLoRA stores
QVO = ("q_proj", "v_proj", "o_proj")


def test_counts_from_a_shape_equal_what_transformers_and_peft_build():
    """base_params and lora_params of each hub shape equal the parameters transformers builds for that
    config (on the meta device: no memory, no download) and the ones PEFT marks trainable."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftplay import footprint as fp

    for hub_id, (r, targets) in {fp.LLAMA_8B: (16, QVO), "Qwen/Qwen2.5-7B-Instruct": (8, recipes.ALL_LINEAR)}.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**fp.HUB_SHAPES[hub_id]))
        s = fp.shape(hub_id)
        assert fp.base_params(s) == sum(p.numel() for p in model.parameters())
        peft = get_peft_model(model, LoraConfig(r=r, target_modules=list(targets)))
        assert fp.lora_params(s, r, targets) == sum(p.numel() for p in peft.parameters() if p.requires_grad)


def test_the_seeds_bases_by_the_numbers():
    from ftplay import footprint as fp

    s = fp.shape(fp.LLAMA_8B)
    assert fp.base_params(s) == 8_030_261_248 and fp.base_params(fp.shape(fp.LLAMA_70B)) == 70_553_706_496
    assert fp.lora_params(s, 16, QVO) == 32 * 16 * (8192 + 5120 + 8192) == 11_010_048
    assert fp.lora_params(s, 16, recipes.ALL_LINEAR) == 41_943_040
    assert fp.nf4_bytes(64 * 256 * 4) == 32768 + 1024 + 16 + 4, "codes, 8-bit scales, float32 scales, offset"
    rows = {(r["model"], r["recipe"]): r for r in fp.table({"8b": fp.LLAMA_8B, "70b": fp.LLAMA_70B},
                                                            {"seed": (16, QVO)})}
    r8, r70 = rows["8b", "seed"], rows["70b", "seed"]
    assert r8["trained_share_pct"] == 0.137 and r8["step_flops_vs_full_pct"] == 66.8
    assert r8["weights_mb_16bit"] == 16060.5 and r8["weights_mb_nf4"] == 5702.3 and r8["nf4_saving_pct"] == 64.5
    assert r8["adam_state_mb_lora"] == 88.1 and r8["adam_state_mb_full"] == 64242.1
    assert r70["weights_mb_nf4"] < fp.H100_MB < r70["weights_mb_16bit"], "the seed: QLoRA trains a 70B on one H100"
    for hub_id in standins.FAMILIES:
        want = standins.FAMILIES[hub_id].config
        assert all(fp.HUB_SHAPES[hub_id][k] == want[k] for k in ("vocab_size", "tie_word_embeddings")), hub_id


def test_a_loaded_model_is_measured_as_the_formula_counts_it(tiny_ref):
    """The embedded base loaded unquantized and in nf4: footprint.measure gives the parameters and the
    bytes footprint's formulas give for its shape (tied embeddings, q/k/v biases, float32 rest)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ftplay import footprint as fp

    s = fp.shape(tiny_ref.path)
    full = fp.measure(AutoModelForCausalLM.from_pretrained(tiny_ref.path, dtype=torch.float32))
    assert full == {"trainable_params": 4_239_360, "base_params": 4_239_360, "weights_bytes": 4 * 4_239_360,
                    "dtype": "float32"}
    assert fp.base_params(s) == 4_239_360 and fp.weight_bytes(s, False, 4) == full["weights_bytes"]
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.float32)
    four = fp.measure(AutoModelForCausalLM.from_pretrained(tiny_ref.path, dtype=torch.float32, quantization_config=q))
    assert four["base_params"] == 4_239_360, "4-bit weights counted as the values they hold, not packed bytes"
    assert four["weights_bytes"] == fp.weight_bytes(s, True, 4) == 5_084_080
    assert fp.lora_params(s, 32, recipes.ALL_LINEAR) == 655_360


def test_the_share_is_read_in_words(tiny_ref):
    from ftplay import footprint as fp

    share = fp.lora_share({"trainable_params": 655_360, "base_params": 4_239_360}, tiny_ref.path,
                          recipes.EMBEDDED_RECIPE, recipes.SEED_RECIPE, others=["Qwen/Qwen2.5-7B-Instruct", fp.LLAMA_8B,
                                                                           "/no/such/model", ""])
    assert share["counted_equals_measured"] and share["share_pct"] == 15.46
    assert [r["model"] for r in share["table"]][::2] == ["this run's base", "Qwen/Qwen2.5-7B-Instruct", fp.LLAMA_8B]
    text = fp.read_share(share)
    assert "655,360 of this base's 4,239,360 parameters (15.46%)" in text and "exactly that" in text
    assert "the seed's r 16 on q_proj/v_proj/o_proj 11.0M (0.137%)" in text and "25.0% at this base's width 256" in text
    wrong = fp.lora_share({"trainable_params": 1, "base_params": 4_239_360}, tiny_ref.path, recipes.EMBEDDED_RECIPE,
                          recipes.SEED_RECIPE)
    assert not wrong["counted_equals_measured"] and "does not agree" in fp.read_share(wrong)


def test_the_quantization_measurement_is_read_in_words(tiny_ref):
    from ftplay import footprint as fp

    demo = {"ran": True, "device": "cpu", "weights_saving_pct": 70.0, "speed_ratio": 0.5, "steps": 8,
            "4bit": {"weights_mb": 5.084, "tokens_per_s": 1000.0, "peak_mb": None},
            "unquantized": {"weights_mb": 16.957, "dtype": "float32", "tokens_per_s": 2000.0, "peak_mb": None}}
    text = fp.read_quantization(demo, tiny_ref.path)
    assert "5.084 MB of weights against 16.957 MB in float32 (70.0% less)" in text
    assert "Counted in bf16, as on a GPU: 3.4 MB against 8.5 MB (59.7% less)." in text
    assert "19% of this base is its embedding matrix" in text
    assert "(0.5x, slower; 8 steps, a rough figure): each" in text
    assert "(on a CPU without a fused 4-bit kernel), so QLoRA buys memory with time." in text
    same = fp.read_quantization({**demo, "speed_ratio": 0.96}, tiny_ref.path)
    assert "(0.96x, about the same; 8 steps, a rough figure): on a model this small" in same
    assert "16.1 GB in bf16 (fits one 80 GB H100), 5.7 GB in nf4 (64.5% less" in text
    assert "141.1 GB in bf16 (does not fit one 80 GB H100), 39.5 GB in nf4 (72.0% less; fits" in text
    faster = fp.read_quantization({**demo, "speed_ratio": 1.2}, tiny_ref.path)
    assert "(1.2x, faster; 8 steps, a rough figure)." in faster and "matmul" not in faster
    bf16 = fp.read_quantization({**demo, "unquantized": {**demo["unquantized"], "dtype": "bfloat16"}}, tiny_ref.path)
    assert "in bfloat16 (70.0% less)." in bf16 and "Counted in bf16" not in bf16
    not_run = fp.read_quantization({"ran": False, "why": "no bitsandbytes"}, tiny_ref.path)
    assert not_run == "Not measured: no bitsandbytes."


# ---------------------------------------------------------------- the GPU model, the second adapter
def test_the_gpu_model_and_its_recipe():
    from ftplay.models import ModelRef

    assert recipes.gpu_model(ModelRef("embedded", "/c/tiny", "embedded", "x")) == "Qwen/Qwen2.5-7B-Instruct"
    assert recipes.gpu_model(ModelRef(f"tiny:{QWEN_ID}", "/c/s", "standin", "x")) == QWEN_ID
    assert recipes.gpu_model(ModelRef("org/m", "org/m", "hub", "main")) == "org/m"
    assert recipes.gpu_model(ModelRef("./m", "/abs/m", "local", "x")) == "/abs/m"
    cfg = recipes.recipe_for("embedded", {"seed": 5, "max_seq_len": 256, "max_steps": 10})
    assert recipes.gpu_recipe(cfg) == replace(recipes.SEED_RECIPE, seed=5, max_seq_len=256)


QWEN_ID = "Qwen/Qwen2.5-7B-Instruct"


def test_each_second_adapter_changes_one_knob():
    cfg = recipes.recipe_for("embedded", {"engine": "trl"})
    seen = {}
    for name in ("epochs", "rank", "targets"):
        b, text, changed = recipes.second_recipe(cfg, name)
        diff = {k for k in recipes.TrainConfig.__dataclass_fields__ if getattr(b, k) != getattr(cfg, k)}
        assert diff == set(changed), name
        assert b.engine == cfg.engine and b.seed == cfg.seed, "same engine and seed: one variable"
        seen[name] = (text, changed)
    assert seen["epochs"] == ("num_epochs 3.0 -> 1.0", {"num_epochs": [3.0, 1.0]})
    assert seen["rank"] == ("lora_r 32 -> 4, lora_alpha 64 -> 8", {"lora_r": [32, 4], "lora_alpha": [64, 8]})
    assert seen["targets"][1] == {"target_modules": [list(recipes.ALL_LINEAR), ["q_proj", "v_proj", "o_proj"]]}
    assert recipes.second_recipe(recipes.SEED_RECIPE, "targets")[2]["target_modules"][1] == list(recipes.ALL_LINEAR)
    assert recipes.second_recipe(replace(cfg, max_steps=10), "epochs")[2] == {"max_steps": [10, 3]}
    with pytest.raises(ConfigError, match="SECOND_ADAPTER='other' is not one of"):
        recipes.second_recipe(cfg, "other")


def test_the_engine_experiment_swaps_only_the_engine(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "unsloth" else None)
    b, text, changed = recipes.second_recipe(recipes.recipe_for("embedded", {"engine": "unsloth"}), "engine")
    assert (b.engine, text, b.seed) == ("trl", "engine unsloth -> trl", 3407)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError, match="needs both engines"):
        recipes.second_recipe(recipes.recipe_for("embedded", {"engine": "trl"}), "engine")


def test_two_adapters_are_read_side_by_side():
    def r(steps, n, loss):
        return train.TrainResult("a", "trl", False, [], {}, steps, loss, loss, 9.0, 0, 0.0, 0.0, 0.0, 0, None, "l",
                                 trainable_params=n)

    text = recipes.read_second(r(321, 655_360, 0.9), r(107, 655_360, 1.5), "num_epochs 3.0 -> 1.0")
    assert text.startswith("One change, num_epochs 3.0 -> 1.0: 107 steps against 321, 655,360 trained parameters")
    assert "eval loss 1.500 against 0.900 (higher)" in text
    assert "(about the same)" in recipes.read_second(r(1, 1, 1.0), r(1, 1, 1.01), "x")


@pytest.mark.slow
def test_4bit_and_unquantized_are_measured_on_the_same_steps(tiny_ref, tmp_path):
    convs = [prompts.messages(text, ["billing", "bug"], label) for text, label in
             [("charged twice", "billing"), ("app crashes", "bug"), ("refund my invoice", "billing"),
              ("button broken", "bug")] * 4]
    cfg = recipes.recipe_for("embedded", {"engine": "trl", "batch_size": 4})
    demo = train.compare_precisions(cfg, tiny_ref, convs, tmp_path, steps=3)
    four, full = demo["4bit"], demo["unquantized"]
    assert demo["ran"] and four["load_in_4bit"] and not full["load_in_4bit"] and four["steps"] == full["steps"] == 3
    assert (four["dtype"], full["dtype"], four["rest_dtype"]) == ("nf4", "float32", "float32")
    assert four["base_params"] == full["base_params"] == 4_239_360
    assert four["weights_mb"] == 5.084 and full["weights_mb"] == 16.957 and demo["weights_saving_pct"] == 70.0
    assert four["tokens_per_s"] > 0 and full["tokens_per_s"] > 0 and four["peak_mb"] is None, "no per-run peak on a CPU"


@pytest.mark.notebook
@pytest.mark.slow
def test_notebook_03_demonstrates_and_records_each_lesson(run_notebook, tmp_path):
    """03 on a run directory where 02 ran: LoRA's share measured and counted, 4-bit against
    unquantized weights, a second adapter with one knob changed, and the seed's recipe exported for
    the GPU model (Axolotl and Together) beside this run's; each read in words in the executed notebook."""
    import nbformat
    import yaml

    run_notebook("02_curate_data", tmp_path)
    tr = run_notebook("03_train_qlora", tmp_path, MAX_STEPS=30, LOAD_IN_4BIT=False, SECOND_ADAPTER="epochs")
    share = tr["lora_share"]
    assert tr["trainable_params"] == share["trainable_params"] == 655_360 and tr["base_params"] == 4_239_360
    assert tr["total_params"] == 4_239_360 + 655_360 and share["counted_equals_measured"]
    assert {r["model"] for r in share["table"]} == {"this run's base", "Qwen/Qwen2.5-7B-Instruct",
                                                   "meta-llama/Llama-3.1-8B-Instruct",
                                                   "meta-llama/Llama-3.1-70B-Instruct"}
    demo = tr["quantization_demo"]
    assert demo["ran"] and demo["4bit"]["weights_mb"] < demo["unquantized"]["weights_mb"]
    assert demo["4bit"]["steps"] == demo["unquantized"]["steps"] == train.DEMO_STEPS
    second = tr["second_adapter"]
    assert second["name"] == "epochs" and second["experiment"] == "max_steps 30 -> 10"
    assert second["changed"] == {"max_steps": [30, 10]} and second["steps"] == 10
    assert second["engine"] == tr["engine"] and second["seed"] == tr["config"]["seed"], "one variable changed"
    assert tr["task"] == "classify" and tr["mask"]["prompt_tokens_trained"] == 0
    assert (Path(second["adapter_dir"]) / "ftplay_adapter.json").exists()
    gpu = tr["gpu_export"]
    assert gpu["model"] == "Qwen/Qwen2.5-7B-Instruct" and gpu["recipe"]["lora_r"] == 16
    y = yaml.safe_load(open(gpu["axolotl_config"]))
    assert (y["base_model"], y["lora_r"], y["learning_rate"], y["lora_target_modules"], y["num_epochs"]) == \
        ("Qwen/Qwen2.5-7B-Instruct", 16, 2e-4, ["q_proj", "v_proj", "o_proj"], 3.0)
    assert "max_steps" not in y, "the seed's recipe, not this run's MAX_STEPS"
    this = yaml.safe_load(open(tr["axolotl_config"]))
    assert this["lora_r"] == 32 and this["max_steps"] == 30 and this["base_model"] == tr["base_model"]["path"]
    job = gpu["together"]["job"]
    assert (job["model"], job["learning_rate"], job["lora_trainable_modules"]) == \
        ("Qwen/Qwen2.5-7B-Instruct", 2e-4, "q_proj,v_proj,o_proj")
    executed = nbformat.read(str(tmp_path / "03_train_qlora.ipynb"), as_version=4)
    shown = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    for words in ("LoRA trains 655,360 of this base's 4,239,360 parameters", "The nf4 base holds",
                  "One change, max_steps 30 -> 10: 10 steps against 30", "GPU model for the exports below: Qwen",
                  "conversations train exactly their answer and its end of turn (median 2 tokens"):
        assert words in shown, words


def test_on_a_gpu_each_precision_gets_its_own_peak(monkeypatch, tmp_path):
    """The GPU branch of compare_precisions, run on a CPU with torch.cuda and train() stood in for:
    the peak is reset before each run and recorded per run; the speed is the median after step 1."""
    import torch

    calls, peaks = [], iter([900.0, 2100.0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    monkeypatch.setattr(recipes, "resolve_engine", lambda c: ("unsloth", c.load_in_4bit, "adamw_8bit", []))

    def fake_train(c, ref, rows, evals, out, resume=True):
        calls.append(("train", c.load_in_4bit, c.max_steps, len(rows)))
        log = tmp_path / f"{c.load_in_4bit}.jsonl"
        speeds = [10.0, 300.0, 100.0, 200.0] if c.load_in_4bit else [10.0, 400.0, 400.0, 500.0]
        log.write_text("".join(json.dumps({"step": i, "tokens_per_s": v}) + "\n" for i, v in enumerate(speeds)))
        return train.TrainResult("a", "unsloth", c.load_in_4bit, [], {"compute_dtype": "bfloat16"}, c.max_steps, 1.0,
                                 None, 2.0, 0, 0.0, 1.0, next(peaks), 0, None, str(log), base_params=10,
                                 weights_mb=3.0 if c.load_in_4bit else 8.0, weights_dtype="bfloat16")

    monkeypatch.setattr(train, "train", fake_train)
    demo = train.compare_precisions(recipes.recipe_for("embedded"), None, [{}] * 100, tmp_path, steps=4)
    assert calls == ["empty", "reset", ("train", True, 4, 32), "empty", "reset", ("train", False, 4, 32)]
    assert (demo["4bit"]["peak_mb"], demo["unquantized"]["peak_mb"]) == (900.0, 2100.0) and demo["device"] == "cuda"
    speeds = (demo["4bit"]["tokens_per_s"], demo["unquantized"]["tokens_per_s"], demo["speed_ratio"])
    assert speeds == (200.0, 400.0, 0.5)
    assert demo["weights_saving_pct"] == 62.5 and demo["unquantized"]["dtype"] == "bfloat16"


def test_without_bitsandbytes_there_is_no_4bit_run_to_compare(monkeypatch, tmp_path):
    monkeypatch.setattr(recipes, "resolve_engine", lambda c: ("trl", False, "adamw_torch", []))
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("nothing is trained"))
    assert train.compare_precisions(recipes.recipe_for("embedded"), None, [{}] * 10, tmp_path) == {
        "ran": False, "why": "bitsandbytes is not installed: no 4-bit base to compare"}


def test_a_long_answer_to_a_short_prompt_passes_the_mask_check_and_a_trained_prompt_does_not():
    """Bitext's replies run to 400 tokens after 10-token queries: most of such an example is trained, and
    rightly. A mask that trains the prompt is caught by its first token being trained."""
    from types import SimpleNamespace

    tok = SimpleNamespace(eos_token_id=2, eos_token="</s>", pad_token_id=0, bos_token_id=None, bos_token=None)
    long_answer = {"input_ids": [5, 6, 7] + [9] * 40 + [2], "labels": [-100] * 3 + [9] * 40 + [2]}
    masks.check_mask(tok, [long_answer])
    with pytest.raises(FtplayError, match="trained from its first token"):
        masks.check_mask(tok, [{"input_ids": [5, 6, 9, 2], "labels": [5, 6, 9, 2]}])


@pytest.mark.parametrize("hub_id", list(standins.FAMILIES))
def test_each_familys_template_trains_exactly_the_reply_and_its_end_of_turn(hub_id):
    """The reply task's long answers through the Llama 3.1, Qwen 2.5 and Mistral v0.3 templates (tokenizer only;
    the families test trains and serves the reply task on one family's stand-in, the triage task on all three)."""
    from ftplay import models

    tok = models.load_tokenizer(models.resolve(f"tiny:{hub_id}"))
    convs = _reply_convs()
    report = masks.mask_report(tok, convs, 1024)
    mask_counts = (report["whole_answer_trained"], report["ends_with_end_of_turn"], report["prompt_tokens_trained"])
    assert mask_counts == (2, 2, 0)
    rows, _ = masks.tokenize_chat(tok, convs, 1024)
    for row, conv in zip(rows, convs):
        trained = tok.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
        assert trained.strip().startswith(conv[-1]["content"]) and trained.strip() != conv[-1]["content"]
