"""Training: config validation, the loss-mask guard, and real training steps on both engines."""
import json
import math

import pytest

from ftplay import prompts, train
from ftplay.errors import ConfigError, FtplayError


def test_config_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        train.TrainConfig(engine="magic", lora_r=0, learning_rate=5, target_modules=("lm_head",), optimizer="sgd")
    msg = str(e.value)
    for name in ("ENGINE", "LORA_R", "LEARNING_RATE", "TARGET_MODULES", "OPTIMIZER"):
        assert name in msg
    assert e.value.problems and len(e.value.problems) == 5


def test_wrong_types_are_config_errors_naming_each_parameter():
    with pytest.raises(ConfigError) as e:
        train.TrainConfig(lora_r="16")
    assert e.value.problems == ["LORA_R='16' (str) must be an int; set it in the parameters cell like LORA_R=16"]
    with pytest.raises(ConfigError) as e:
        train.TrainConfig(num_epochs="3", load_in_4bit=1, lora_dropout=None, target_modules="q_proj", max_steps=2.0)
    assert [p.split("=")[0] for p in e.value.problems] == ["LOAD_IN_4BIT", "LORA_DROPOUT", "TARGET_MODULES", "EPOCHS",
                                                           "MAX_STEPS"]
    assert "must be a list of names" in e.value.problems[2]
    cfg = train.TrainConfig(num_epochs=3, target_modules=["q_proj"])  # an int is a number, a list a tuple
    assert cfg.num_epochs == 3 and cfg.target_modules == ("q_proj",)


def test_seed_recipe_is_the_documented_default():
    c = train.SEED_RECIPE
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.learning_rate, c.num_epochs, c.warmup_ratio) == \
        (16, 32, 0.05, 2e-4, 3.0, 0.1)
    assert c.target_modules == ("q_proj", "v_proj", "o_proj") and c.optimizer == "adamw_8bit" and c.load_in_4bit
    assert train.recipe_for("hub").lora_r == 16
    emb = train.recipe_for("embedded", {"learning_rate": None, "num_epochs": 1})
    assert emb.target_modules == train.ALL_LINEAR and emb.num_epochs == 1


def _conv(label="billing"):
    return prompts.messages("my card was charged twice", ["billing", "bug"], label)


def test_mask_guard_names_masked_eos(tiny_tok):
    ids = tiny_tok.apply_chat_template(_conv(), tokenize=True, return_dict=False)
    eos = tiny_tok.eos_token_id
    labels = [t if i > len(ids) - 4 and t != eos else -100 for i, t in enumerate(ids)]
    with pytest.raises(FtplayError, match="never trained"):
        train.check_mask(tiny_tok, [{"input_ids": ids, "labels": labels}])
    with pytest.raises(FtplayError, match="prompt tokens are in the loss"):
        train.check_mask(tiny_tok, [{"input_ids": ids, "labels": list(ids)}])


def test_tokenize_chat_trains_only_the_answer(tiny_tok):
    rows, truncated = train.tokenize_chat(tiny_tok, [_conv("bug")], 512)
    trained = [tiny_tok.decode([t]) for t, l in zip(rows[0]["input_ids"], rows[0]["labels"]) if l != -100]
    assert trained == ["bug", "<|im_end|>"] and truncated == 0
    long = prompts.messages("word " * 200, ["billing", "bug"], "bug")
    rows, truncated = train.tokenize_chat(tiny_tok, [_conv("bug"), long], 60)
    assert truncated == 1 and len(rows) == 1, "an example cut before its answer is dropped, not trained empty"
    with pytest.raises(FtplayError, match="MAX_SEQ_LEN=16"):
        train.tokenize_chat(tiny_tok, [_conv("bug")], 16)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["trl", "unsloth"])
def test_real_training_steps_produce_a_vllm_loadable_adapter(engine, tiny_ref, tmp_path):
    convs = [prompts.messages(t, ["billing", "bug"], l) for t, l in
             [("charged twice", "billing"), ("app crashes", "bug"), ("refund my invoice", "billing"),
              ("button broken", "bug")] * 4]
    cfg = train.recipe_for("embedded", {"engine": engine, "max_steps": 4, "batch_size": 4, "logging_steps": 1,
                                        "load_in_4bit": engine == "unsloth"})
    res = train.train(cfg, tiny_ref, convs, convs[:4], tmp_path)
    assert res.engine == engine and res.steps == 4
    if engine == "unsloth":
        assert train.resolve_engine(cfg)[2] == "adamw_torch_fused", "the optimizer actually used is reported"
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
    rows, _ = train.tokenize_chat(tiny_tok, [_conv("billing"), prompts.messages("it crashes on start, again and "
                                                                                "again", ["billing", "bug"], "bug")], 512)
    n = max(len(r["input_ids"]) for r in rows)
    pad = lambda xs, v: [x + [v] * (n - len(x)) for x in xs]  # noqa: E731
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
    has = lambda name: object()   # noqa: E731  (find_spec: installed)
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
    first_import = lambda src: next(l for l in src.splitlines() if l.startswith(("from ftplay", "import ftplay")))  # noqa: E731
    cell = next(c for c in json.loads((ROOT / "notebooks" / "03_train_qlora.ipynb").read_text())["cells"]
                if c["cell_type"] == "code")
    assert first_import("".join(cell["source"])).startswith("from ftplay import train")
    script = (ROOT / "benchmarks" / "gpu_check.py").read_text()
    assert first_import(script).startswith("from ftplay import train")
    assert script.index("from ftplay import train") < min(script.index(w) for w in ("import trl", "import transformers",
                                                                                     "from transformers") if w in script)
