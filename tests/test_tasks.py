"""The task interface (ftplay/tasks/): the registry, and a third task defined here alone, run through the
package calls notebooks 00, 03 and 04 make and through the gate, as a new task would be."""
import re

import numpy as np
import pytest

from ftplay import evaluate, gate, prompts, records, stages, tasks
from ftplay.config import ScoringConfig
from ftplay.errors import ConfigError
from ftplay.tasks.base import Task


def test_the_registry_names_every_task_and_refuses_an_unknown_one():
    assert tasks.names()[:2] == ("classify", "reply")
    assert tasks.get("classify").name == "classify" and tasks.get("reply", reply_format="bitext").fmt.name == "bitext"
    with pytest.raises(ConfigError, match="TASK='triage' is not a task of the playbook; set TASK to one of"):
        tasks.get("triage")
    with pytest.raises(TypeError):
        tasks.register(dict)


def test_scoring_config_collects_every_problem():
    with pytest.raises(ConfigError) as e:
        ScoringConfig(method="greedy", batch_size=0, n_boot=10**9)
    assert len(e.value.problems) == 3 and "SCORING_METHOD='greedy'" in str(e.value) and "N_BOOT=" in str(e.value)
    assert ScoringConfig().record() == {"scoring_method": "constrained"}


def test_a_record_is_refused_when_its_fields_are_not_its_schemas(tmp_path):
    with pytest.raises(ValueError, match="missing field"):
        records.BASELINE.write(tmp_path, "classify", n=1)
    with pytest.raises(ValueError, match="clash"):
        records.EVALUATE.write(tmp_path, "classify", heldout={}, decision={}, slices={}, leakage_recheck={},
                               adapter_dir="a", baselines=[], lessons={}, task_fields={"decision": 1})
    assert not list(tmp_path.iterdir()), "nothing written"


def test_02s_schema_holds_every_field_the_data_card_can_carry():
    """Every key data.py writes into the data card is a field of 02's schema, or a run that sets it (a given
    held-out file, MAX_TRAIN_PER_LABEL, the reply task) would fail at 02's last cell."""
    from pathlib import Path

    src = (Path(records.__file__).parent / "data.py").read_text()
    keys = set(re.findall(r'card\.report\["([a-z_0-9]+)"\]', src)) | set(re.findall(r'report\.update\(([a-z_]+)=', src))
    keys |= set(re.findall(r'\("([a-z_]+_tokens)", \d\)', src))   # the token spreads, written in a loop
    assert {"leakage_curated", "capped", "output_tokens"} <= keys
    assert keys - set(records.CURATE.required + records.CURATE.optional) == set()


def test_a_record_of_another_schema_version_is_refused(tmp_path):
    from ftplay.errors import FtplayError

    (tmp_path / "00_baseline_prompting.json").write_text('{"schema": 1, "n": 3}')
    with pytest.raises(FtplayError, match="schema=1: it was written by another version of ftplay"):
        records.read(tmp_path, stages.BASELINE)


# ---------------------------------------------------------------- a third task, in this file only
ORDER = re.compile(r"\b\d{4}\b")


class FirstNumber:
    """The cheap reference of the toy task: the first four-digit number in the ticket."""
    name = "first_number"

    def extract(self, texts):
        return [(ORDER.search(t) or [""])[0] if ORDER.search(t) else "" for t in texts]


class ModelExtractor:
    """A local model asked for the order number: greedy generation of a few tokens."""

    def __init__(self, model, tokenizer, system_prompt, name):
        self.model, self.tok, self.system_prompt, self.name = model, tokenizer, system_prompt, name

    def extract(self, texts):
        ids = [prompts.prompt_ids(self.tok, [{"role": "system", "content": self.system_prompt},
                                             {"role": "user", "content": t}]) for t in texts]
        return [o.strip() for o in evaluate.generate(self.model, self.tok, ids, 6, 8, self.name)]


class OrderTask(Task):
    """Extract the order number a ticket mentions: exact match, per label, on the shared gate."""
    name, description, adapter_name = "order", "extract the order number of a ticket", "order"
    reference, endpoint_system, answer, units = "first_number", "endpoint", "output", "labels"
    drop_what, unlike = "exact matches drop", "tickets do"

    @property
    def primary(self):
        return "exact"

    def reference_system(self, train_rows):
        return FirstNumber()

    def prompted(self, model, train_rows, n_shots, seed):
        return {"zero_shot": ModelExtractor(model, self.tokenizer, self.system_prompt, "zero_shot")}

    def system(self, model, name):
        return ModelExtractor(model, self.tokenizer, self.system_prompt, name)

    def outputs(self, system, rows):
        return system.extract([r["text"] for r in rows])

    def score(self, rows, outputs, seed=0):
        right = np.array([o == r["output"] for o, r in zip(outputs, rows)], dtype=float)
        idx = evaluate._resample(len(rows), self.scoring.n_boot, seed)
        return {"n": len(rows), "exact": float(right.mean()), "exact_ci": evaluate._interval(right[idx].mean(1)),
                "per_label": {lab: float(np.mean([o == r["output"] for o, r in zip(outputs, rows)
                                                  if r["label"] == lab])) for lab in self.labels}}

    def paired(self, rows, a, b, seed=0):
        ra = np.array([o == r["output"] for o, r in zip(a, rows)])
        rb = np.array([o == r["output"] for o, r in zip(b, rows)])
        idx = evaluate._resample(len(rows), self.scoring.n_boot, seed)
        p, only_a, only_b = evaluate.mcnemar(ra, rb)
        return {"n": len(rows), "a_exact": float(ra.mean()), "b_exact": float(rb.mean()),
                "exact_diff": float(ra.mean() - rb.mean()),
                "exact_diff_ci": evaluate._interval(ra[idx].mean(1) - rb[idx].mean(1)), "mcnemar_p": p}

    def save(self, path, rows, outputs):
        from ftplay import replies

        replies.save_outputs(path, rows, outputs)

    def load(self, path):
        from ftplay import replies

        return replies.load_outputs(path)

    def baseline_fields(self, results, outputs, rows):
        best = max((k for k in results if k != self.reference), key=lambda k: results[k]["exact"])
        return {"best": {"name": best, "exact": results[best]["exact"]},
                "reference": {"name": self.reference, "exact": results[self.reference]["exact"]}}, {}

    def beats_base(self, split, d, alpha):
        ok = d["exact_diff_ci"][0] > 0 and d["mcnemar_p"] < alpha
        return [gate.check(f"beats_base_{split}", gate.PASS if ok else gate.BLOCK,
                           f"{split}: exact match {d['exact_diff']:+.3f} against the base",
                           f"{split}.paired.finetuned_vs_base")]

    def alternatives(self, split, paired):
        alts = gate.alternatives_of(paired)
        if not alts:
            return gate.no_alternatives(split), None
        worse = {n: d for n, d in alts.items() if d["exact_diff_ci"][1] < 0}
        if worse:
            name = max(worse, key=lambda n: worse[n]["b_exact"])
            return (gate.check(f"alternatives_{split}", gate.BLOCK, f"{split}: {name} is better",
                               f"{split}.paired.finetuned_vs_{name}"), {"name": name, "split": split})
        return gate.check(f"alternatives_{split}", gate.PASS, f"{split}: nothing is better", f"{split}.paired"), None

    def unit_table(self, results):
        ft = results["heldout"]["finetuned"]["per_label"]
        return sorted(({"label": k, "heldout_exact": v} for k, v in ft.items()), key=lambda r: r["heldout_exact"])

    def unit_floor(self, table, cfg):
        low = [r["label"] for r in table if r["heldout_exact"] < cfg.min_class_f1]
        return gate.check("label_floor", gate.BLOCK if low else gate.PASS, f"labels under the floor: {low}",
                          "heldout.systems.finetuned.per_label")

    def gate_config(self, cfg):
        return {"alpha": cfg.alpha, "min_class_f1": cfg.min_class_f1}

    def record_fields(self, **_):
        return {"primary": self.primary}

    def conversation(self, row):
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": row["text"]},
                {"role": "assistant", "content": row["output"]}]

    def summary_columns(self, m):
        return {"exact [95% CI]": f"{m['exact']:.2f} [{m['exact_ci'][0]:.2f}, {m['exact_ci'][1]:.2f}]"}


def rows_of(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        number, label = f"{rng.integers(1000, 9999)}", ["shipping", "billing"][i % 2]
        text = (f"hello, my order {number} never arrived" if label == "shipping" else
                f"order {number} was charged twice on my card")
        out.append({"id": f"{seed}-{i}", "text": text, "label": label, "output": number})
    return out


@pytest.fixture
def order_task():
    tasks.register(OrderTask)
    yield tasks.get("order", scoring=ScoringConfig(batch_size=8, n_boot=50))
    tasks.REGISTRY.pop("order")


def test_a_third_task_runs_through_00_03_04_and_the_gate(order_task, tiny_ref, tmp_path):
    """Registered here, the toy task goes the way the notebooks take every task: 00 scores the reference and
    the base prompted and records them, 03 trains an adapter on the task's conversations (real steps), 04 scores
    base and fine-tune, compares them with 00's systems, decides and records; no package module names it."""
    from ftplay import models, train

    train_rows, heldout = rows_of(24, 1), rows_of(12, 2)
    tok = models.load_tokenizer(tiny_ref)
    task = order_task.bind(["shipping", "billing"], "Answer with the order number only.", tok)

    # 00: the cheap reference and the base prompted, on the held-out rows; saved and recorded
    results, outputs = {}, {}
    ref_system = task.reference_system(train_rows)
    results[ref_system.name], outputs[ref_system.name] = task.run(ref_system, heldout)
    base = models.load_model(tiny_ref)
    for name, system in task.prompted(base, train_rows, 2, 0).items():
        results[name], outputs[name] = task.run(system, heldout)
    assert results["first_number"]["exact"] == 1.0 and 0 <= results["zero_shot"]["exact"] <= 1
    for name, o in outputs.items():
        task.save(tmp_path / "predictions" / f"00_{name}.jsonl", heldout, o)
    fields, _ = task.baseline_fields(results, outputs, heldout)
    records.BASELINE.write(tmp_path, task, None, n=len(heldout), labels=task.labels, systems=results,
                           best=fields["best"], reference=fields["reference"], rows_in=36, rows_out=36,
                           heldout_fingerprint="-", task_fields=task.record_fields())
    assert records.read(tmp_path, stages.BASELINE)["task"] == "order"

    # 03: a real adapter on the task's own conversations
    cfg = task.recipe("embedded", {"max_steps": 2, "batch_size": 4})
    result = train.train(cfg, tiny_ref, task.conversations(train_rows), None, tmp_path / "train")
    assert result.steps == 2
    meta = task.write_adapter_meta(result.adapter_dir, tiny_ref)
    assert tasks.of_adapter(meta).name == "order"

    # 04: base and fine-tune on held-out, 00's systems paired on the same rows, the gate, the record
    systems = {"base": task.system(base, "base"),
               "finetuned": task.system(models.load_model(tiny_ref, result.adapter_dir), "finetuned")}
    splits = {"heldout": heldout, "production": []}
    results, outputs = task.score_systems(systems, splits, out_dir=tmp_path / "predictions")
    paired = task.compare(splits, outputs, task.baselines(tmp_path, heldout))
    assert set(paired["heldout"]) == {"finetuned_vs_base", "finetuned_vs_first_number", "finetuned_vs_zero_shot"}
    decision = task.decide(results, paired, gate.GateConfig(), leakage={"exact": 0, "near": 0})
    assert decision["verdict"] == "stop"   # two steps do not beat a regex that is always right
    names = {c["name"]: c["status"] for c in decision["checks"]}
    assert names["alternatives_heldout"] == "block" and names["production"] == "not proven"
    assert list(task.summary_table(results).columns) == ["n", "exact [95% CI]"]
    assert decision["better"]["name"] == "first_number" and decision["labels"][0]["label"] in task.labels
    records.EVALUATE.write(tmp_path, task, gate.GateConfig(), **records.by_split(splits, results, paired),
                           decision=decision, slices={}, leakage_recheck={}, adapter_dir=str(result.adapter_dir),
                           baselines=["first_number", "zero_shot"], lessons={},
                           task_fields=task.record_fields())
    rec = records.read(tmp_path, stages.EVALUATE)
    assert rec["task"] == "order" and rec["primary"] == "exact" and rec["schema"] == records.VERSION


def test_the_worst_label_is_the_one_at_zero_on_both_splits():
    """Issue 28: `other` (F1 0.15 held-out, 0.00 production) ranked worst before `security` (0.00 on both, never
    predicted) because ties at 0.00 fell back to the alphabet. The lower F1 of the two splits ranks first, the
    higher next."""
    def split(f1s):
        per = {lab: {"f1-score": f, "support": 10.0} for lab, f in f1s.items()}
        return {"finetuned": {"per_class": per, "confusion": {"labels": sorted(f1s)}},
                "base": {"per_class": per}}

    results = {"heldout": split({"billing": 0.8, "other": 0.15, "security": 0.0}),
               "production": split({"billing": 0.7, "other": 0.0, "security": 0.0})}
    task = tasks.get("classify")
    table = task.unit_table(results)
    assert [r["label"] for r in table] == ["security", "other", "billing"]
    assert task.read_worst(table[0]).startswith("The worst label is security: F1 0.00 held-out, 0.00 production")


def test_the_leak_lesson_reads_a_gap_against_its_intervals():
    """Issue 28: 04 called +0.03 (held-out over production) the leak's effect where the two intervals overlap."""
    def demo(held, held_ci, prod, prod_ci):
        g = {"n": 10, "accuracy": 0.9}
        return {"rows": 100, "groups": {"twin_same_label": g, "twin_other_label": {"n": 0, "accuracy": None},
                                        "no_twin": {"n": 90, "accuracy": 0.8}},
                "row_split": {"heldout": {"accuracy": held, "accuracy_ci": held_ci},
                              "production": {"accuracy": prod, "accuracy_ci": prod_ci}},
                "grouped_split": {"heldout": {"accuracy": 0.8}, "production": {"accuracy": 0.78}}}

    read = tasks.get("classify").read_leakage
    assert "inside both 95% intervals" in read(demo(0.84, [0.79, 0.89], 0.81, [0.76, 0.86]))
    assert "promises +0.20 more than production delivers, beyond both intervals" in \
        read(demo(0.95, [0.92, 0.98], 0.75, [0.69, 0.81]))
