"""The task interface: what a task's systems are, how they are scored and compared, what its gate checks.

A task is one class (one module under ftplay/tasks/, registered by name): notebooks 00 and 02-04 ask the registry for
`TASK` and call the task's methods, so they never branch on which task it is. In the manner of
lm-evaluation-harness's `Task` (which 05 drives against the served adapters): a task knows how to ask a system
for its outputs on rows, how to score them (`score`, per split, with 95% intervals), how to compare two systems
on the same rows (`paired`), which metric ranks systems (`primary`) and what its gate checks beyond the shared
ones. What every task shares lives here: scoring every system on every split, reading 00's baselines, the
paired comparisons against every alternative, the gate's held-out/production checks and the verdict.
"""
import logging
import time
from pathlib import Path

from .. import datachat, gate, recipes, records, stages, tokencount, train
from ..config import ScoringConfig

log = logging.getLogger(__name__)
ENDPOINT_WORDS = "the endpoint ENDPOINT_URL scored"   # what 00 scored as the replaced model, before it was named


class Task:
    """One fine-tuning task. Subclasses set the class attributes and implement the methods marked `per task`;
    an instance is bound to a run's labels, system prompt and tokenizer."""
    name = ""              # TASK's value, and the `task` field of every record
    description = ""       # one line: what the fine-tune does
    adapter_name = ""      # the name 05 serves the task's adapter under
    reference = ""         # the cheap non-LLM system 00 scores, and 04 scores on production
    endpoint_system = ""   # 00's name for the model the fine-tune would replace (gate.ENDPOINT_PREFIX...)
    units = ""             # what the per-unit floor of the gate is over: "classes" (labels), "parts" (a format's)
    unit_word = ""         # the units in a sentence: "labels", "format parts"
    knobs = gate.KNOBS     # what to tune when the fine-tune does not beat the base
    routable = False       # whether its outputs carry a confidence to route on (04's selective curve)
    drop_what = ""         # the production-drop check's wording: "<metric> drops"
    unlike = ""            # "the training <unlike> not look like production"
    answer = "label"       # what a row's answer is: "label" (one of the labels) or "output" (a text, e.g. a reply)

    def __init__(self, scoring=None, **options):
        """`scoring`: config.ScoringConfig; `options`: the notebook parameters a task reads (REPLY_FORMAT as
        reply_format, ...); a task ignores those it does not use."""
        self.scoring = scoring or ScoringConfig()
        self.labels, self.system_prompt, self.tokenizer = [], None, None
        self.note = ""   # one line a notebook prints once the task is bound (what it resolved), or ""

    def bind(self, labels, system_prompt, tokenizer=None, **_):
        """The run's labels, system prompt and tokenizer (known after 02's curation); returns the task."""
        self.labels, self.system_prompt, self.tokenizer = list(labels), system_prompt, tokenizer
        return self

    @property
    def reply_format(self):
        """The format the task's answers are written in (a name in ftplay/formats.py), or None."""
        return None

    @property
    def example_files(self):
        """{shape: path} of the sample rows 02 shows in every accepted input shape."""
        from ..data import EXAMPLES

        return EXAMPLES[self.name]

    def system_prompt_for(self, system_prompt=""):
        """The system prompt the task trains and serves with: SYSTEM_PROMPT when given, else the task's default."""
        return datachat.system_prompt_for(self.name, system_prompt, self.reply_format or "house")

    def conversation(self, row):
        """A row as the chat it trains as: the bound system prompt, the ticket, the answer."""
        return datachat.conversation(row, self.labels, self.system_prompt, self.reply_format or "house")

    def conversations(self, rows):
        return [self.conversation(r) for r in rows]

    def trains_on(self):
        """What one training answer is, in words, for 03's summary line."""
        return f"{len(self.labels)} labels"

    def recipe(self, model_kind, overrides=None):
        """03's training recipe for this task on a base of `model_kind` (recipes.recipe_for)."""
        return recipes.recipe_for(model_kind, overrides, task=self.name)

    def write_adapter_meta(self, adapter_dir, ref):
        """ftplay_adapter.json beside an adapter trained for this task (train.write_adapter_meta)."""
        return train.write_adapter_meta(adapter_dir, ref, self.labels, self.system_prompt, self.name, self.reply_format)

    def raw_output_field(self, config):
        """The column of the raw export holding the answer text (02's `config`), or None for a label task."""
        return None

    def read_reference(self, metrics):
        """One sentence on the cheap reference's scores and speed."""
        raise NotImplementedError

    # ------------------------------------------------------------ per task
    @property
    def primary(self):
        """The metric that ranks systems (00's best prompting system, the gate's alternatives)."""
        raise NotImplementedError

    @property
    def drop_metric(self):
        """The metric whose drop from held-out to production the gate limits (MAX_DROP)."""
        return self.primary

    def show(self, value):
        """`value` of drop_metric as the gate's text writes it."""
        return f"{value:.3f}"

    def reference_system(self, train_rows):
        """The cheap non-LLM system fitted on `train_rows` (its `name` is `reference`)."""
        raise NotImplementedError

    def prompted(self, model, train_rows, n_shots, seed):
        """{name: system} of the base model prompted: zero-shot, few-shot with fixed and retrieved examples, and
        whatever else the task measures of prompting."""
        raise NotImplementedError

    def shots(self, train_rows, mode, n_shots, seed):
        """A few-shot example picker (evaluate.ShotPicker) over `train_rows`."""
        raise NotImplementedError

    def endpoint(self, client, model, shots):
        """A system asking an OpenAI-compatible endpoint (the model the fine-tune would replace)."""
        raise NotImplementedError

    def system(self, model, name):
        """The system a local model (base, or base + adapter) is as this task's answerer in 04."""
        raise NotImplementedError

    def outputs(self, system, rows):
        """What `system` answers for each of `rows`."""
        raise NotImplementedError

    def score(self, rows, outputs, seed=0):
        """Metrics of `outputs` (one per row) against the rows' references, each with its 95% interval."""
        raise NotImplementedError

    def paired(self, rows, a, b, seed=0):
        """System A's outputs against system B's on the same rows: differences with paired intervals, McNemar."""
        raise NotImplementedError

    def save(self, path, rows, outputs):
        """Write one JSON line per row (id, reference, the system's output)."""
        raise NotImplementedError

    def load(self, path):
        """Outputs saved by `save`, as (ids, outputs)."""
        raise NotImplementedError

    def summary_columns(self, m):
        """The summary table's columns for one system's metrics `m` (its n aside)."""
        raise NotImplementedError

    def read_split(self, split, systems):
        """One sentence on the systems of one split (`systems`: {name: metrics}) under summary_table."""
        raise NotImplementedError

    def read_summary(self, results):
        """One sentence per split under summary_table."""
        return "\n".join(self.read_split(split, systems) for split, systems in results.items() if systems)

    def read_prompting(self, results):
        """One sentence on what prompting gave in 00 (`results`: {system: metrics} on held-out)."""
        raise NotImplementedError

    def examples(self, rows, outputs, seed=0):
        """A few rows side by side with each system's output, for a table."""
        raise NotImplementedError

    def baseline_fields(self, results, outputs, rows):
        """00's record fields of this task: the best prompting system and the reference, by `primary`."""
        raise NotImplementedError

    def comparison_rows(self, paired):
        """04's paired comparisons as table rows."""
        raise NotImplementedError

    def read_comparisons(self, paired):
        """One sentence per split reading the paired comparisons."""
        raise NotImplementedError

    def beats_base(self, split, d, alpha):
        """The gate's checks of the fine-tune against the base on `split` (a list)."""
        raise NotImplementedError

    def alternatives(self, split, paired):
        """The gate's check against every other system on `split`: (check, the better system or None)."""
        raise NotImplementedError

    def unit_table(self, results):
        """The fine-tune's and the base's score per unit (label, or format part), the worst first."""
        raise NotImplementedError

    def unit_floor(self, table, cfg):
        """The gate's check that every unit clears its floor."""
        raise NotImplementedError

    def under_floor(self, table, cfg):
        """The rows of unit_table under their floor, held-out or production."""
        raise NotImplementedError

    def read_worst(self, top):
        """One sentence on the worst unit (the first row of unit_table)."""
        raise NotImplementedError

    def read_floor(self, low, n, cfg):
        """One sentence on the units under their floor (`low`, of `n`), or on all of them clearing it."""
        raise NotImplementedError

    def read_units(self, table, cfg):
        """Two sentences reading unit_table: its worst unit, then the floor."""
        if not table:
            return f"No {self.unit_word} scored."
        return self.read_worst(table[0]) + self.read_floor(self.under_floor(table, cfg), len(table), cfg)

    def gate_config(self, cfg):
        """The gate parameters this task's decision uses, as recorded."""
        raise NotImplementedError

    def figures(self, results, others=None, rows=None):
        """04's figures of the fine-tune's answers: {file name under plots/: matplotlib figure}. `others` are 00's
        systems on the held-out `rows` (`baselines`), for figures that put the fine-tune beside them."""
        return {}

    def slices(self, splits, outputs, train_rows, min_rows):
        """04's slices of the rows, per split: (the record's `slices`, one sentence, a table)."""
        raise NotImplementedError

    def selective_curve(self, rows, outputs):
        """Accuracy kept against the share escalated, or (None, why) where the outputs carry no confidence."""
        return None, (f"not measured for the {self.name} task: its outputs carry no confidence to route on")

    def leakage_demo(self, raw, train_rows, heldout, production, near, seed=0):
        """Mistake 2 measured with the cheap reference: (the demonstration, one sentence)."""
        raise NotImplementedError

    def leakage_groups(self, demo):
        """The leakage demonstration's groups as a table."""
        return demo["groups"]

    def edge_cases(self, train_rows, splits, outputs, system, pattern):
        """Mistake 4 measured: (the demonstration or None, one sentence)."""
        return None, f"not run for the {self.name} task"

    def base_update(self, ref, new_ref, adapter, train_cfg, train_rows, heldout, outputs, out_dir):
        """Mistake 5 measured: (the demonstration or None, one sentence)."""
        return None, f"not run for the {self.name} task"

    def learning_curve(self, train_rows, raw_rows, heldout, finetune=None, out_dir=None, points=4, seed=0):
        """How many examples are enough: (04's record of the curves or None, sentences)."""
        return None, f"not measured for the {self.name} task"

    def floor_checks(self, paired, cfg):
        """The gate's checks that the fine-tune beats the task's floor systems (none by default)."""
        return []

    def record_fields(self):
        """The fields 00's and 04's records carry for this task beside the shared ones."""
        return {}

    # ------------------------------------------------------------ shared
    def check_curated(self, card):
        """Stop, with the fix, when 02 curated another task's rows into the run (its record `card`) than the one
        this task's adapter was trained for."""
        from ..errors import ConfigError

        curated = card.get("task") or stages.CLASSIFY
        if curated != self.name:
            raise ConfigError(f"the adapter was trained for the {self.name!r} task but 02 curated {curated!r} rows "
                              f"into {getattr(card, 'path', 'this run')}: point ADAPTER_DIR at a {curated} adapter, "
                              f"or RUN_DIR at the run of the {self.name} task")

    def summary_table(self, results):
        """{split: {system: metrics}} as a pandas DataFrame, one row per (split, system): n and the task's columns."""
        import pandas as pd

        rows = [{"split": split, "system": name, "n": m["n"], **self.summary_columns(m)}
                for split, systems in results.items() for name, m in systems.items()]
        return pd.DataFrame(rows).set_index(["split", "system"]) if rows else pd.DataFrame()

    def run(self, system, rows, seed=0):
        """Every row's output from `system`, scored and timed: (metrics, outputs)."""
        t0 = time.time()
        outputs = self.outputs(system, rows)
        secs = time.time() - t0
        m = self.score(rows, outputs, seed)
        m["seconds"] = round(secs, 2)
        m["rows_per_s"] = round(len(rows) / secs, 2) if secs else None
        return m, outputs

    def priced_tokens(self, systems, rows, outputs, counter):
        """{name: tokens per request} for each system of `systems` that prompts a model (it has `messages`) and
        answered `rows` (`outputs[name]`): the prompt it sent and the answers it gave, counted by `counter`
        (tokencount.Counter), so 06 prices each option with the prompt it was scored with."""
        out = {name: counter.count([s.messages(r["text"]) for r in rows],
                                   [tokencount.answer_text(o) for o in outputs[name]])
               for name, s in systems.items() if hasattr(s, "messages") and name in outputs}
        # the held-out rows' own answers (as trained): how long a model that does the job answers
        out[tokencount.HELDOUT_ANSWERS] = counter.count_answers([self.conversation(r)[-1]["content"] for r in rows])
        return out

    def hosted_request(self, priced, best, scored_as=""):
        """What 06 prices a request to the hosted model at, from `priced_tokens`: the endpoint's prompt and answers
        when the replaced model was scored (`scored_as` names it: your provider at ENDPOINT_URL or the stand-in for
        it, hosted_standin.Replaced.scored_as), else `best`'s prompt (00's best prompting system) with the held-out
        rows' own answer length (the prompted base is not the hosted model: its answers say nothing of the hosted
        model's)."""
        scored = self.endpoint_system in priced
        name = self.endpoint_system if scored else best
        c = priced[name]
        answers = c if scored else priced[tokencount.HELDOUT_ANSWERS]
        return {"system": name, "endpoint": scored, "prompt_tokens": c["prompt_tokens"],
                "answer_tokens": answers["answer_tokens"], "n": c["n"], "tokenizer": c["tokenizer"],
                "exact": c["exact"], "why": c["why"], "scored_as": (scored_as or ENDPOINT_WORDS) if scored else ""}

    def priced_table(self, priced, results, hosted):
        """(rows, reading) of `priced_tokens`: each prompted system's tokens per request beside its primary metric,
        and `hosted` (`hosted_request`), the request 06 prices the hosted model at."""
        rows = [{"system": name, self.primary: round(results[name].get(self.primary) or 0.0, 3),
                 "prompt tokens": round(c["prompt_tokens"], 1), "answer tokens": round(c["answer_tokens"], 1)}
                for name, c in priced.items() if name in results and "prompt_tokens" in c]
        if not rows:
            return rows, "no prompted system answered: nothing to count"
        h, cheap = hosted, min(rows, key=lambda r: r["prompt tokens"])
        which = (h.get("scored_as") or ENDPOINT_WORDS) if h["endpoint"] else "00's best prompting system"
        answers = (f"its {h['answer_tokens']:,.1f} answer tokens" if h["endpoint"] else
                   f"{h['answer_tokens']:,.1f} answer tokens, the held-out rows' own answers (the prompted base is not "
                   "the hosted model: its answers say nothing of how long the hosted model's are)")
        times = (f" ({h['prompt_tokens'] / cheap['prompt tokens']:.1f}x {cheap['system']}'s "
                 f"{cheap['prompt tokens']:,.0f})" if cheap["system"] != h["system"] and cheap["prompt tokens"] else "")
        reading = (f"Counted with {h['tokenizer']}'s tokenizer and chat template over {h['n']} held-out rows. 06 "
                   f"prices the hosted model with {h['system']}'s prompt ({which}): {h['prompt_tokens']:,.0f} prompt "
                   f"tokens a request{times}, and {answers}")
        return rows, reading + "."

    def score_systems(self, systems, splits, out_dir=None, prefix="04"):
        """Every system of `systems` ({name: system}) on every non-empty split of `splits` ({split: rows}):
        ({split: {name: metrics}}, {(split, name): outputs}). With `out_dir`, each one's outputs go to
        <out_dir>/<prefix>_<split>_<name>.jsonl."""
        results, outputs = {}, {}
        for split, rows in splits.items():
            if not rows:
                continue
            for name, system in systems.items():
                m, o = self.run(system, rows)
                results.setdefault(split, {})[name], outputs[(split, name)] = m, o
                if out_dir is not None:
                    self.save(Path(out_dir) / f"{prefix}_{split}_{name}.jsonl", rows, o)
        return results, outputs

    def references(self, train_rows):
        """{name: system} of the cheap non-LLM systems fitted on `train_rows` that 00 scores and 04 scores on
        production: the reference, and whatever floor the task sets beside it."""
        ref = self.reference_system(train_rows)
        return {ref.name: ref}

    def add_references(self, results, outputs, split, rows, train_rows, out_dir=None, prefix="04"):
        """The cheap references fitted on `train_rows`, scored on `split` (04: production) beside the models."""
        if not rows:
            return
        for name, system in self.references(train_rows).items():
            results.setdefault(split, {})[name], outputs[(split, name)] = self.run(system, rows)
            if out_dir is not None:
                self.save(Path(out_dir) / f"{prefix}_{split}_{name}.jsonl", rows, outputs[(split, name)])

    def baselines(self, run_dir, heldout):
        """Every system 00 scored, with its outputs on the rows of `heldout` that 00 scored (00 and 04 may each
        score a MAX_ROWS sample): {name: {"name", "ids", "preds"}}; {} when 00 has not run here. Systems
        sharing no row with `heldout` are left out."""
        rec = records.read_or_empty(run_dir, stages.BASELINE)
        here, out = {r["id"] for r in heldout}, {}
        for name in rec.at("systems", default={}):
            path = Path(run_dir) / "predictions" / f"00_{name}.jsonl"
            if not path.exists():
                continue
            ids, preds = self.load(path)
            both = [(i, p) for i, p in zip(ids, preds) if i in here]
            if len(both) < len(ids):
                log.warning("00 scored %d rows, %d of them among these held-out rows: comparing with %s on those",
                            len(ids), len(both), name)
            if both:
                out[name] = {"name": name, "ids": [i for i, _ in both], "preds": [p for _, p in both]}
        return out

    def paired_on_rows(self, rows, outputs, baseline):
        """`paired` of `outputs` (one per row of `rows`) against a baseline that scored some of these rows
        ({"ids", "preds"}, as `baselines` returns each), on the rows it scored."""
        at = {r["id"]: i for i, r in enumerate(rows)}
        idx = [at[i] for i in baseline["ids"]]
        return self.paired([rows[i] for i in idx], [outputs[i] for i in idx], baseline["preds"])

    def compare(self, splits, outputs, others):
        """04's paired comparisons: on every split of `splits` ({split: rows}), the fine-tune against every other
        system scored there (`outputs`: {(split, name): outputs}; 03's experiment `finetuned_b` aside), and on
        held-out against every system 00 scored (`others`, from `baselines`) on the rows it scored:
        {split: {"finetuned_vs_<name>": paired}}."""
        out = {}
        for split, rows in splits.items():
            if not rows or (split, "finetuned") not in outputs:
                continue
            ft = outputs[(split, "finetuned")]
            out[split] = {f"finetuned_vs_{name}": self.paired(rows, ft, o)
                          for (s, name), o in outputs.items()
                          if s == split and name not in ("finetuned", "finetuned_b")}
            if split == "heldout":
                out[split].update({f"finetuned_vs_{name}": self.paired_on_rows(rows, ft, b)
                                   for name, b in others.items()})
        return out

    def decide(self, results, paired, cfg=gate.GateConfig(), leakage=None, teacher=None):
        """04's verdict from its own numbers: the checks every task shares (gate.held_and_production), the
        task's per-unit floor and the leakage re-check. Returns {"ship", "verdict": ship | stop | not proven,
        "checks", "reasons", "better", <units>: the unit table, "config"}. `teacher`: 04's teacher_check, read as
        the replaced model's comparison when 00 scored none."""
        checks, better = gate.held_and_production(results, paired, cfg, self, teacher)
        table = self.unit_table(results)
        checks.append(self.unit_floor(table, cfg))
        checks += self.floor_checks(paired, cfg)
        if leakage is not None:
            checks.append(gate.leakage_check(leakage))
        return {**gate.verdict_of(checks), "better": better, self.units: table, "config": self.gate_config(cfg)}

