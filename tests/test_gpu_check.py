"""benchmarks/gpu_check: its plan on CPU (the exact Unsloth and TRL arguments), its scripts and wheel pins."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pins(path):
    out = {}
    for line in (ROOT / path).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[2]
    return out


def test_carried_wheels_are_the_locked_versions():
    wheels, lock = _pins("benchmarks/gpu_wheels.txt"), _pins("requirements/train.lock")
    assert {"unsloth", "unsloth-zoo", "bitsandbytes", "trl", "peft", "datasets"} <= set(wheels)
    assert {k: v for k, v in wheels.items() if lock.get(k) != v} == {}, "gpu_wheels.txt drifted from train.lock"


def test_scripts_parse_and_install_offline_from_the_carried_folder():
    for name in ("gpu_check.sh", "gpu_wheels.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / name)], check=True)
    check = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    assert "--no-index" in check and "--find-links" in check and "-r benchmarks/gpu_wheels.txt" in check
    assert "HF_HUB_OFFLINE=1" in check, "the box has no network: nothing may try the hub"
    wheels = (ROOT / "benchmarks" / "gpu_wheels.sh").read_text()
    assert "--only-binary=:all:" in wheels and "--python-version" in wheels and "--no-deps" in wheels


def test_the_box_builds_the_standins_from_carried_wheels_and_serves_with_vllm():
    wheels = _pins("benchmarks/gpu_wheels.txt")
    from ftplay import standins

    for fam in standins.FAMILIES.values():   # what each stand-in's tokenizer is built from
        name = re.sub(r"[-_.]+", "-", fam.tokenizer_source[0].split("==")[0]).lower()
        assert wheels.get(name) == fam.tokenizer_source[0].split("==")[1], name
    assert {"tiktoken", "sentencepiece", "protobuf"} <= set(wheels)
    check = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    assert "FTPLAY_CACHE" in check and "MODEL=${MODEL:-all}" in check
    wheels_sh = (ROOT / "benchmarks" / "gpu_wheels.sh").read_text()
    assert "build-model --like" in wheels_sh and "FTPLAY_CACHE=.gpu/cache" in wheels_sh
    script = (ROOT / "benchmarks" / "gpu_check.py").read_text()
    assert '"not_run": "vllm not installed"' in script and "serve.gpu_command" in script
    assert "train.unsloth_patched()" in script


@pytest.mark.slow
def test_dry_run_shows_the_exact_unsloth_trl_and_vllm_arguments_per_family():
    pytest.importorskip("bitsandbytes", reason="without bitsandbytes the 4-bit plan falls back to 16-bit")
    from ftplay import models, standins

    specs = ["embedded", *(f"tiny:{h}" for h in standins.FAMILIES)]
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--steps", "7",
                        "--rows", "24", "--batch-size", "4"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["dry_run"] and out["rows"] == 24 and list(out["models"]) == specs, "default: all four models"
    for spec in specs:
        m = out["models"][spec]
        ref = models.resolve(spec) if spec != "embedded" or not (ROOT / ".gpu" / "model").exists() else None
        if ref is not None:
            assert m["path"] == ref.path
        assert m["family"] == (None if spec == "embedded" else standins.family_of(spec).family)
        assert m["unsloth_patched"] is None, "CPU: Unsloth is not imported first (its CPU path is the stock one)"
        assert set(m["plan"]) == {"4bit", "16bit"}
        for mode, four in (("4bit", True), ("16bit", False)):
            p = m["plan"][mode]
            assert (p["engine"], p["load_in_4bit"], p["optimizer"]) == ("unsloth", four, "adamw_8bit")
            assert p["from_pretrained"] == {"model_name": m["path"], "max_seq_length": 512, "dtype": None,
                                            "load_in_4bit": four, "full_finetuning": False}
            assert p["get_peft_model"] == {"r": 32, "lora_alpha": 64, "lora_dropout": 0.0,
                                           "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                              "up_proj", "down_proj"],
                                           "bias": "none", "random_state": 3407,
                                           "use_gradient_checkpointing": "unsloth"}
            s = p["sft_config"]
            assert (s["max_steps"], s["per_device_train_batch_size"], s["optim"], s["bf16"], s["fp16"]) == \
                (7, 4, "adamw_8bit", True, False)
            assert (s["gradient_checkpointing"], s["save_strategy"], s["eval_strategy"]) == (True, "no", "no")
            assert "output_dir" not in s
        v = m["vllm"]
        assert v[:3] == ["vllm", "serve", m["path"]] and v[v.index("--dtype") + 1] == "auto"
        assert v[v.index("--lora-modules") + 1:v.index("--lora-modules") + 3] == \
            ["a4bit=<adapters>/4bit", "a16bit=<adapters>/16bit"]
        assert v[v.index("--max-lora-rank") + 1] == "32" and "--tensor-parallel-size" not in v
