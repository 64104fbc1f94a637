"""Axolotl export: exact YAML for the seed recipe, input errors, and Axolotl's own validator on it."""
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from ftplay import axolotl as ax
from ftplay import data, prompts, recipes
from ftplay.errors import ConfigError, FtplayError

# pip's words when the package registry cannot be reached: only then is the validator test skipped.
OFFLINE = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
                     r"Network is unreachable|Could not fetch URL|ConnectTimeout|Connection refused")


@pytest.fixture
def run(tmp_path):
    """A run directory as notebook 02 leaves it, and a local model folder (config.json is enough)."""
    for name in ("train", "heldout"):
        rows = [{"id": f"{name}-{i}", "messages": prompts.messages(text, ["billing", "bug"], label)}
                for i, (text, label) in enumerate([("card charged twice", "billing"), ("app crashes", "bug")])]
        data.write_jsonl(tmp_path / "data" / f"{name}.jsonl", rows)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    exp = ax.ExportConfig(base_model=str(model), train_path=str(tmp_path / "data" / "train.jsonl"),
                          heldout_path=str(tmp_path / "data" / "heldout.jsonl"))
    return tmp_path, exp


def _load(path):
    return yaml.safe_load(open(path))


def test_seed_recipe_exports_to_the_documented_axolotl_config(run):
    root, exp = run
    res = ax.export(recipes.SEED_RECIPE, exp, root / "axolotl")
    y = _load(res.files["config"])
    ds = {"path": str(root / "data" / "train.jsonl"), "ds_type": "json", "type": "chat_template",
          "field_messages": "messages", "message_property_mappings": {"role": "role", "content": "content"},
          "roles_to_train": ["assistant"], "train_on_eos": "turn"}
    out = root / "axolotl" / "outputs"
    assert y == {
        "base_model": exp.base_model, "load_in_4bit": True, "adapter": "qlora",
        "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "lora_target_modules": ["q_proj", "v_proj", "o_proj"],
        "chat_template": "tokenizer_default", "chat_template_kwargs": {"date_string": "26 Jul 2024"}, "datasets": [ds],
        "test_datasets": [{**ds, "path": str(root / "data" / "heldout.jsonl"), "split": "train"}],
        "val_set_size": 0.0, "dataset_prepared_path": str(out / "prepared"), "train_on_inputs": False,
        "sequence_len": 512, "sample_packing": False, "micro_batch_size": 4, "gradient_accumulation_steps": 1,
        "num_epochs": 3.0, "learning_rate": 2e-4, "optimizer": "adamw_bnb_8bit", "lr_scheduler": "linear",
        "warmup_ratio": 0.1, "weight_decay": 0.0, "seed": 3407, "bf16": "auto", "gradient_checkpointing": True,
        "logging_steps": 5, "evals_per_epoch": 1, "save_strategy": "no", "output_dir": str(out)}
    ds_yaml, fsdp = _load(res.files["config_deepspeed"]), _load(res.files["config_fsdp"])
    assert ds_yaml == {**y, "deepspeed": str(root / "axolotl" / "zero2.json")}
    assert fsdp["optimizer"] == "adamw_torch_8bit", "bitsandbytes 8-bit AdamW is rejected under FSDP2"
    assert fsdp["fsdp_version"] == 2 and fsdp["gradient_checkpointing"] is False
    assert fsdp["fsdp_config"]["transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    assert fsdp["fsdp_config"]["activation_checkpointing"] is True
    zero = json.loads(open(res.files["deepspeed_json"]).read())
    assert zero["zero_optimization"]["stage"] == 2 and "offload_optimizer" not in zero["zero_optimization"]
    assert zero["train_micro_batch_size_per_gpu"] == "auto" and zero["bf16"] == {"enabled": "auto"}
    cfg = str(root / "axolotl" / "config.yml")
    assert res.commands["train_1gpu"] == f"axolotl train {cfg}"
    assert res.commands["train_1gpu_accelerate"] == f"accelerate launch -m axolotl.cli.train {cfg}"
    assert res.commands["train_deepspeed_accelerate"] == (
        f"accelerate launch --num_processes 2 -m axolotl.cli.train {root / 'axolotl' / 'config_deepspeed.yml'}")
    assert res.commands["train_fsdp"].endswith("config_fsdp.yml --launcher accelerate -- --num_processes 2")
    md = open(res.files["commands"]).read()
    assert all(line in md for line in res.commands.values()) and "8 on 2" in md


def test_16bit_recipe_exports_plain_lora_and_its_overrides(run):
    root, exp = run
    cfg = recipes.recipe_for("embedded", {"load_in_4bit": False, "optimizer": "adamw_torch", "max_steps": 60,
                                        "save_steps": 20, "batch_size": 4, "grad_accum": 2})
    exp = ax.ExportConfig(**{**exp.__dict__, "heldout_path": "", "val_set_size": 0.1, "sequence_len": 256,
                             "micro_batch_size": 2, "zero_stage": 3, "num_gpus": 4})
    res = ax.export(cfg, exp, root / "ax16")
    y = _load(res.files["config"])
    assert (y["adapter"], y["load_in_4bit"], y["optimizer"]) == ("lora", False, "adamw_torch")
    assert y["lora_target_modules"] == list(recipes.ALL_LINEAR) and y["lora_r"] == 32 and y["learning_rate"] == 1e-3
    assert (y["max_steps"], y["save_steps"], y["save_total_limit"]) == (60, 20, 2) and "save_strategy" not in y
    assert (y["sequence_len"], y["micro_batch_size"], y["gradient_accumulation_steps"]) == (256, 2, 2)
    assert "test_datasets" not in y and (y["val_set_size"], y["evals_per_epoch"]) == (0.1, 1)
    y = _load(ax.export(cfg, ax.ExportConfig(**{**exp.__dict__, "val_set_size": 0.0}), root / "noeval").files["config"])
    assert y["val_set_size"] == 0.0 and "evals_per_epoch" not in y, "no eval set, no eval"
    assert _load(res.files["config_fsdp"])["optimizer"] == "adamw_torch", "only 8-bit optimizers are swapped"
    assert res.files["deepspeed_json"].endswith("zero3.json")
    zero = json.loads(open(res.files["deepspeed_json"]).read())["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert "--num_processes 4" in res.commands["train_deepspeed"]


def test_export_errors_name_every_parameter_and_write_nothing(run, monkeypatch):
    root, _ = run
    with pytest.raises(ConfigError) as e:
        ax.ExportConfig(base_model=" ", train_path=str(root / "nope.jsonl"), heldout_path=str(root / "gone.jsonl"),
                        val_set_size=0.2, sequence_len=8, micro_batch_size=0, num_gpus=1, zero_stage=1)
    assert len(e.value.problems) == 8
    for name in ("BASE_MODEL", "TRAIN_PATH", "HELDOUT_PATH=", "VAL_SET_SIZE=0.2 and HELDOUT_PATH", "SEQUENCE_LEN",
                 "MICRO_BATCH_SIZE=0", "NUM_GPUS=1", "ZERO_STAGE=1"):
        assert name in str(e.value)
    _, exp = run
    with pytest.raises(ConfigError, match=r"VAL_SET_SIZE=1.0 must be in \[0, 1\)"):
        ax.ExportConfig(**{**exp.__dict__, "heldout_path": "", "val_set_size": 1.0})
    monkeypatch.delitem(ax.OPTIMIZERS, "adamw_8bit")
    with pytest.raises(ConfigError, match="OPTIMIZER='adamw_8bit' has no Axolotl mapping"):
        ax.export(recipes.SEED_RECIPE, exp, root / "never")
    assert not (root / "never").exists()


def test_decoder_layer_class_only_from_a_local_causal_lm(run, tmp_path):
    _, exp = run
    assert ax.decoder_layer_class(exp.base_model) == "Qwen2DecoderLayer"
    assert ax.decoder_layer_class("Qwen/Qwen2.5-7B-Instruct") == "Qwen2DecoderLayer"   # a stand-in family's
    assert ax.decoder_layer_class("meta-llama/Llama-3.1-8B-Instruct") == "LlamaDecoderLayer"
    assert ax.decoder_layer_class("org/unknown-model") is None
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text('{"architectures": ["BertModel"]}')
    assert ax.decoder_layer_class(tmp_path / "enc") is None


# ---------------------------------------------------------------- Axolotl's own validator
@pytest.fixture(scope="session")
def schema_env():
    """Axolotl (pinned in requirements/axolotl-schema.txt) over this venv; built once per cache."""
    t0 = time.time()
    try:
        site = ax.ensure_schema_env()
    except FtplayError as e:
        if OFFLINE.search(str(e)):
            pytest.skip(f"package registry unreachable, cannot install Axolotl's validator: {e}")
        raise
    return site, round(time.time() - t0, 1)


def _write(path, d):
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.mark.slow
def test_axolotl_validator_accepts_the_export_and_rejects_broken_configs(run, schema_env):
    root, exp = run
    site, install_s = schema_env
    res = ax.export(recipes.SEED_RECIPE, exp, root / "axolotl")
    good = _load(res.files["config"])
    fsdp = _load(res.files["config_fsdp"])
    broken = {  # one mistake each, and the words Axolotl rejects it with
        "qlora_without_4bit": ({**good, "load_in_4bit": False}, "Require cfg.load_in_4bit to be True for qlora"),
        "batch_not_int": ({**good, "micro_batch_size": "eight"}, "micro_batch_size"),
        "bad_eos_choice": ({**good, "datasets": [{**good["datasets"][0], "train_on_eos": "sometimes"}]},
                           "train_on_eos"),
        "fsdp_bnb_8bit": ({**fsdp, "optimizer": "adamw_8bit"}, "FSDP2 not compatible with adamw_8bit"),
        "fsdp_and_deepspeed": ({**fsdp, "optimizer": "adamw_torch", "deepspeed": res.files["deepspeed_json"]},
                               "deepspeed and fsdp cannot be used together"),
    }
    typo = _write(root / "typo.yml", {**{k: v for k, v in good.items() if k != "lora_dropout"}, "lora_droput": 0.05})
    lora16 = recipes.recipe_for("embedded", {"load_in_4bit": False, "optimizer": "adamw_torch", "save_steps": 20})
    plain = ax.export(lora16, ax.ExportConfig(**{**exp.__dict__, "heldout_path": "", "val_set_size": 0.1}),
                      root / "ax16").files["config"]
    items = [(res.files["config"], 1), (res.files["config_deepspeed"], 2), (res.files["config_fsdp"], 2),
             (plain, 1), (typo, 1)]
    items += [(_write(root / f"{name}.yml", d), 2) for name, (d, _) in broken.items()]
    t0 = time.time()
    out = ax.validate(items, site)
    validate_s = time.time() - t0
    by = {str(Path(r["path"]).relative_to(root)): r for r in out}
    for name in ("axolotl/config.yml", "axolotl/config_deepspeed.yml", "axolotl/config_fsdp.yml", "ax16/config.yml"):
        assert by[name]["ok"], f"Axolotl {ax.AXOLOTL_VERSION} rejects {name}: {by[name]['error']}"
        assert by[name]["unknown_keys"] == [], f"{name}: keys Axolotl would ignore: {by[name]['unknown_keys']}"
    assert by["ax16/config.yml"]["resolved"]["adapter"] == "lora"
    r = by["axolotl/config.yml"]["resolved"]
    assert (r["adapter"], r["optimizer"], r["train_on_inputs"]) == ("qlora", "adamw_bnb_8bit", False)
    dataset = r["datasets"][0]
    assert dataset["chat_template"] == "tokenizer_default" and dataset["roles_to_train"] == ["assistant"]
    f = by["axolotl/config_fsdp.yml"]["resolved"]["fsdp_config"]
    assert f["transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer" and f["fsdp_version"] == 2
    assert by["axolotl/config_deepspeed.yml"]["resolved"]["deepspeed"] == res.files["deepspeed_json"]
    assert by["typo.yml"]["ok"] and by["typo.yml"]["unknown_keys"] == ["lora_droput"], \
        "a misspelt key passes the schema silently: only the unknown-key check catches it"
    for name, (_, words) in broken.items():
        assert not by[f"{name}.yml"]["ok"], f"Axolotl accepted the broken config {name}"
        assert words in by[f"{name}.yml"]["error"], by[f"{name}.yml"]["error"]
    assert validate_s < 150, f"validation took {validate_s:.0f} s (install {install_s} s)"


# ---------------------------------------------------------------- the seed's model families
LLAMA, QWEN, MISTRAL = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                        "mistralai/Mistral-7B-Instruct-v0.3")
FAMILIES = (LLAMA, QWEN, MISTRAL)


@pytest.fixture(scope="module")
def standins():
    """{hub id: ModelRef} of the three stand-ins (built once into FTPLAY_CACHE, offline)."""
    from ftplay import models

    return {h: models.resolve(f"tiny:{h}") for h in FAMILIES}


# The seed post's Axolotl example (/work/shared/seed/playbook-post.txt, "Axolotl config"), value by value.
SEED_EXAMPLE = {"base_model": LLAMA, "load_in_4bit": True, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                "lora_target_modules": ["q_proj", "v_proj", "o_proj"], "micro_batch_size": 4, "num_epochs": 3,
                "learning_rate": 2e-4, "optimizer": "adamw_bnb_8bit", "warmup_ratio": 0.1}


def test_seed_model_and_recipe_carry_every_value_of_the_seeds_axolotl_example(run):
    root, exp = run
    exp = ax.ExportConfig(**{**exp.__dict__, "base_model": LLAMA})
    y = _load(ax.export(recipes.SEED_RECIPE, exp, root / "seed").files["config"])
    for key, want in SEED_EXAMPLE.items():
        assert y[key] == want, f"{key}: {y[key]!r}, the seed's example has {want!r}"
    assert y["datasets"][0]["type"] == "chat_template" and y["chat_template"] == "tokenizer_default"
    # The seed writes `adapter: lora` beside `load_in_4bit: true  # QLoRA`; in Axolotl 0.21 only
    # `qlora` loads the base in nf4 (loaders/model.py), so the export writes what the seed means.
    assert y["adapter"] == "qlora"
    assert _load(ax.export(recipes.SEED_RECIPE, exp, root / "seed").files["config_fsdp"])["fsdp_config"][
        "transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"


@pytest.mark.parametrize("hub_id", FAMILIES)
def test_a_standin_exports_its_hub_id_and_the_served_prompt(run, standins, hub_id):
    root, exp = run
    ref = standins[hub_id]
    exp = ax.ExportConfig(**{**exp.__dict__, "base_model": ref.path})
    res = ax.export(recipes.SEED_RECIPE, exp, root / "ax")
    y = _load(res.files["config"])
    assert y["base_model"] == hub_id, "the real run happens on a GPU box: the hub id, not this cache path"
    assert y["chat_template"] == "tokenizer_default" and res.template.local_path == ref.path
    fold = hub_id == MISTRAL
    assert res.template.fold_system is fold and (hub_id in ax.SYSTEM_DROPPED) is fold
    assert ax.template_for(hub_id).fold_system is fold, "the table for hub ids agrees with the rendering"
    assert ax.template_for(f"tiny:{hub_id}").base_model == hub_id
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref.path)
    original = [json.loads(line) for line in open(exp.train_path)]
    sent = [json.loads(line) for line in open(y["datasets"][0]["path"])]
    held = [json.loads(line) for line in open(y["test_datasets"][0]["path"])]
    assert (y["datasets"][0]["path"] != exp.train_path) is fold and len(held) == 2
    for row, out in zip(original, sent):
        assert out["id"] == row["id"]
        rendered = prompts.encode(tok, prompts.render(tok, out["messages"]))
        assert rendered == prompts.training_example(tok, row["messages"])[0], \
            "what Axolotl renders is the serving prompt + answer ftplay trains"
        if fold:
            assert [m["role"] for m in out["messages"]] == ["user", "assistant"]
            folded = row["messages"][0]["content"] + "\n\n" + row["messages"][1]["content"]
            assert out["messages"][0]["content"] == folded
            served = prompts.prompt_ids(tok, row["messages"][:-1])
            assert rendered[:len(served)] == served
            # the original row as Axolotl would render it: the system prompt is gone
            assert len(prompts.encode(tok, prompts.render(tok, row["messages"]))) < len(served)
        else:
            assert out == row


def test_the_embedded_model_keeps_its_local_path(run, tiny_ref):
    root, exp = run
    y = _load(ax.export(recipes.EMBEDDED_RECIPE, ax.ExportConfig(**{**exp.__dict__, "base_model": tiny_ref.path}),
                        root / "emb").files["config"])
    assert y["base_model"] == tiny_ref.path and y["datasets"][0]["path"] == exp.train_path


def test_fold_system_only_touches_a_leading_system_turn():
    msgs = prompts.messages("t", ["a"], "a")
    assert ax.fold_system(msgs) == [{"role": "user", "content": msgs[0]["content"] + "\n\nt"}, msgs[2]]
    assert ax.fold_system(msgs[1:]) == msgs[1:]


@pytest.mark.slow
def test_axolotl_trains_exactly_ftplays_tokens_per_family(run, standins, schema_env):
    """Axolotl's own chat_template strategy on each family's export: the same input ids and the same
    trained tokens (answer + end of turn) as prompts.training_example, and the configs validate."""
    root, exp = run
    site, _ = schema_env
    from transformers import AutoTokenizer

    configs = []
    for hub_id in FAMILIES:
        ref = standins[hub_id]
        res = ax.export(recipes.SEED_RECIPE, ax.ExportConfig(**{**exp.__dict__, "base_model": ref.path}),
                        root / hub_id.split("/")[0])
        configs += [(res.files["config"], 1), (res.files["config_fsdp"], 2)]
        tok = AutoTokenizer.from_pretrained(ref.path)
        rows = [json.loads(line) for line in open(exp.train_path)]
        got = ax.tokenized(res.files["config"], ref.path, site, rows=2)
        for row, g in zip(rows, got):
            ids, mask = prompts.training_example(tok, row["messages"])
            assert g["input_ids"] == ids, f"{hub_id}: Axolotl trains another prompt than ftplay serves"
            assert [int(label != -100) for label in g["labels"]] == mask, f"{hub_id}: other trained tokens"
    for r in ax.validate(configs, site):
        assert r["ok"] and r["unknown_keys"] == [], (r["path"], r["error"], r["unknown_keys"])


def test_the_seeds_recipe_for_the_gpu_model_beside_this_runs(run, tiny_ref):
    """03 exports this run's recipe on its own base and the seed's recipe on the hub model the embedded
    model stands in for: the second is the seed's Axolotl example value by value, and the two differ
    exactly in the recipe's knobs, the base and their folders."""
    root, exp = run
    this = ax.export(recipes.EMBEDDED_RECIPE, ax.ExportConfig(**{**exp.__dict__, "base_model": tiny_ref.path}),
                     root / "this")
    gpu_cfg = recipes.gpu_recipe(recipes.EMBEDDED_RECIPE)
    gpu = ax.export(gpu_cfg, ax.ExportConfig(**{**exp.__dict__, "base_model": recipes.EMBEDDED_STANDS_IN_FOR}),
                    root / "gpu")
    y = _load(gpu.files["config"])
    for key, want in {**SEED_EXAMPLE, "base_model": QWEN}.items():
        assert y[key] == want, f"{key}: {y[key]!r}, the seed's recipe has {want!r}"
    assert y["adapter"] == "qlora" and _load(gpu.files["config_fsdp"])["fsdp_config"][
        "transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    diff = ax.differences({"this run": this.files["config"], "gpu": gpu.files["config"]})

    def out(d):
        return str(root / d / "outputs")

    assert diff == {"base_model": [tiny_ref.path, QWEN], "lora_r": [32, 16], "lora_alpha": [64, 32],
                    "lora_dropout": [0.0, 0.05],
                    "lora_target_modules": [list(recipes.ALL_LINEAR), ["q_proj", "v_proj", "o_proj"]],
                    "dataset_prepared_path": [out("this") + "/prepared", out("gpu") + "/prepared"],
                    "micro_batch_size": [8, 4], "learning_rate": [1e-3, 2e-4], "output_dir": [out("this"), out("gpu")]}
