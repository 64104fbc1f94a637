"""The playbook's stages named once: notebook stems in run order, each one's record file and what it reads."""
from dataclasses import dataclass

BASELINE = "00_baseline_prompting"
DECIDE = "01_decide_approach"
CURATE = "02_curate_data"
TRAIN = "03_train_qlora"
EVALUATE = "04_evaluate"
SERVE = "05_serve_vllm"
COSTS = "06_compare_costs"


@dataclass(frozen=True)
class Stage:
    """One notebook of the playbook: its stem, and the stages whose records or outputs it reads."""
    stem: str
    reads: tuple = ()
    needs: tuple = ()   # of `reads`, the stages it cannot run without (the rest it uses when present)

    @property
    def number(self):
        return self.stem[:2]

    @property
    def record(self):
        """The file it writes into the run directory (`rundir.record`)."""
        return f"{self.stem}.json"


STAGES = {s.stem: s for s in (
    Stage(BASELINE),
    Stage(DECIDE, (BASELINE,)),                    # 00's measured baselines, when 00 ran before
    Stage(CURATE),
    Stage(TRAIN, (CURATE,), (CURATE,)),            # the curated split, labels, system prompt
    Stage(EVALUATE, (BASELINE, CURATE, TRAIN), (CURATE, TRAIN)),  # the split, the adapter, 00's best prompt
    Stage(SERVE, (CURATE, TRAIN), (TRAIN,)),       # the adapters (held-out texts, else the samples)
    Stage(COSTS, (BASELINE, CURATE, TRAIN, EVALUATE, SERVE)),  # classifier speed, sizes, times, routing, throughput
)}
STEMS = tuple(STAGES)   # numeric order: how reports list them
# The files are numbered in the order they run: 01 decides from what 00 measured, 06 prices what 05 measures
# (serving throughput). ORDER says it again where run order is what is meant.
ORDER = (BASELINE, DECIDE, CURATE, TRAIN, EVALUATE, SERVE, COSTS)
TRAINING = (CURATE, TRAIN, EVALUATE)   # the stages that want a GPU (modal_app runs them there)

# The tasks a playbook run can fine-tune for (notebook parameter TASK). The first task of a run writes
# into the run directory itself, each further one into <run dir>/<task>/ (`task_dir`); 00 and 02-04 run once
# per task, 01 (the decision), 05 (one server for every task's adapter) and 06 (each task priced) once.
CLASSIFY, REPLY = "classify", "reply"
TASKS = {CLASSIFY: "ticket triage: one category per ticket (a narrow, high-volume task)",
         REPLY: "a support reply in the house format (a format prompting alone does not hold)"}
DEFAULT_TASKS = (CLASSIFY, REPLY)   # the default playbook runs both
PER_TASK = (BASELINE, CURATE, TRAIN, EVALUATE)
ADAPTER_NAMES = {CLASSIFY: "triage", REPLY: "reply"}   # the served name of each task's adapter


def task_dir(run_dir, task, first=CLASSIFY):
    """Where `task`'s records go: the run directory for the run's first task, else <run_dir>/<task>."""
    from pathlib import Path

    return Path(run_dir) if task == first else Path(run_dir) / task


def record_name(stem):
    """`<stem>.json`, the record a stage writes; ValueError naming the stages for an unknown stem."""
    if stem not in STAGES:
        raise ValueError(f"{stem!r} is not a stage of the playbook; stages: {', '.join(STEMS)}")
    return STAGES[stem].record


# Seconds each notebook of the default playbook may take on the teaching machine (2 CPU cores, warm
# caches); the summary prints them beside the times and benchmarks/playbook_time.py checks the total.
# Further tasks' notebooks are named <task>/<stem>, as the runner's summary names them.
BUDGET_TOTAL_S = 480
# 00 serves and scores the stand-in for the hosted model (about 30 s of its 54 here); reply/00 ran in 28-43 s
BUDGET_S = {BASELINE: 55, DECIDE: 5, CURATE: 12, TRAIN: 70, EVALUATE: 70,
            f"{REPLY}/{BASELINE}": 45, f"{REPLY}/{CURATE}": 10, f"{REPLY}/{TRAIN}": 75, f"{REPLY}/{EVALUATE}": 55,
            SERVE: 80, COSTS: 3}


def budget(name):
    """The default playbook's budget in seconds for notebook `name` (a stem or <task>/<stem>), or None."""
    return BUDGET_S.get(name)
