"""The playbook's stages named once: notebook stems in run order, each one's record file and what it reads."""
from dataclasses import dataclass

DECIDE = "00_decide_approach"
BASELINE = "01_baseline_prompting"
CURATE = "02_curate_data"
TRAIN = "03_train_qlora"
EVALUATE = "04_evaluate"
COSTS = "05_compare_costs"
SERVE = "06_serve_vllm"


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
    Stage(DECIDE, (BASELINE,)),                    # 01's measured baselines, when 01 ran before
    Stage(BASELINE),
    Stage(CURATE),
    Stage(TRAIN, (CURATE,), (CURATE,)),            # the curated split, labels, system prompt
    Stage(EVALUATE, (BASELINE, CURATE, TRAIN), (CURATE, TRAIN)),  # the split, the adapter, 01's best prompt
    Stage(COSTS, (BASELINE, CURATE, TRAIN, EVALUATE, SERVE)),  # classifier speed, sizes, times, routing, throughput
    Stage(SERVE, (CURATE, TRAIN), (TRAIN,)),       # the adapters (held-out texts, else the samples)
)}
STEMS = tuple(STAGES)   # numeric order: how reports list them
# 00 decides from what 01 measured, so 01 runs first; 05 prices what 06 measures (serving throughput),
# so it runs after 06.
ORDER = (BASELINE, DECIDE, CURATE, TRAIN, EVALUATE, SERVE, COSTS)
TRAINING = (CURATE, TRAIN, EVALUATE)   # the stages that want a GPU (modal_app runs them there)


def record_name(stem):
    """`<stem>.json`, the record a stage writes; ValueError naming the stages for an unknown stem."""
    if stem not in STAGES:
        raise ValueError(f"{stem!r} is not a stage of the playbook; stages: {', '.join(STEMS)}")
    return STAGES[stem].record
