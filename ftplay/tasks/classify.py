"""Ticket triage (`classify`): one label per ticket, scored by accuracy and macro-F1; its gate checks every label."""
import numpy as np

from .. import curve, evaluate, gate, lessons, numbers, quality, stages
from .base import Task


def _ci(d):
    return numbers.interval(d["macro_f1_diff"], d["macro_f1_diff_ci"], "+.3f", prose=True)


def _fmt(x):
    return "-" if x is None else f"{x:.2f}"


class ClassifyTask(Task):
    name = stages.CLASSIFY
    description = stages.TASKS[name]
    adapter_name = stages.ADAPTER_NAMES[name]
    reference = "tfidf_logreg"
    endpoint_system = "endpoint_structured"
    answer = "label"
    units = "classes"
    unit_word = "labels"
    routable = True
    drop_what, unlike = "macro-F1 drops", "data does"

    @property
    def primary(self):
        return "macro_f1"

    def bind(self, labels, system_prompt, tokenizer=None, **_):
        super().bind(labels, system_prompt, tokenizer)
        s = self.scoring
        self.note = (f"{len(self.labels)} labels, scored by {s.method} label scoring (SCORING_METHOD), "
                     f"{s.batch_size} prompts a pass")
        return self

    # ------------------------------------------------------------ systems
    def reference_system(self, train_rows):
        return evaluate.TfidfClassifier(train_rows)

    def shots(self, train_rows, mode, n_shots, seed):
        return evaluate.ShotPicker(train_rows, self.labels, mode, n_shots, seed)

    def prompted(self, model, train_rows, n_shots, seed):
        """Zero-shot and few-shot (fixed, retrieved) by label scoring (structured: every answer a label), and
        zero-shot free text parsed into a label (what happens without the constraint)."""
        s = self.scoring
        out = {name: evaluate.LabelScorer(model, self.tokenizer, self.labels, self.system_prompt, picker, s.batch_size,
                                          name, margin=s.margin, method=s.method)
               for name, picker in (("zero_shot", None),
                                    ("few_shot_fixed", self.shots(train_rows, "fixed", n_shots, seed)),
                                    ("few_shot_retrieved", self.shots(train_rows, "retrieved", n_shots, seed)))}
        out["free_text_zero_shot"] = evaluate.Generator(model, self.tokenizer, self.labels, self.system_prompt, None,
                                                        s.batch_size, name="free_text_zero_shot")
        return out

    def endpoint(self, client, model, shots):
        return evaluate.EndpointPredictor(client, model, self.labels, self.system_prompt, shots,
                                          name=self.endpoint_system)

    def system(self, model, name):
        s = self.scoring
        return evaluate.LabelScorer(model, self.tokenizer, self.labels, self.system_prompt, batch_size=s.batch_size,
                                    name=f"scoring {name}", margin=s.margin, method=s.method)

    def outputs(self, system, rows):
        return system.predict([r["text"] for r in rows])

    # ------------------------------------------------------------ metrics
    def score(self, rows, outputs, seed=0):
        return evaluate.score([r["label"] for r in rows], outputs, self.labels, self.scoring.n_boot, seed)

    def paired(self, rows, a, b, seed=0):
        return evaluate.paired_difference([r["label"] for r in rows], a, b, self.labels, self.scoring.n_boot, seed)

    def save(self, path, rows, outputs):
        evaluate.save_predictions(path, rows, outputs)

    def load(self, path):
        return evaluate.load_predictions(path)

    # ------------------------------------------------------------ tables and readings
    def summary_columns(self, m):
        """accuracy and macro-F1 with their 95% intervals, rounded to the decimals the intervals support, and the
        valid rate."""
        a, f = m["accuracy_ci"], m["macro_f1_ci"]
        spec = f".{numbers.ci_decimals(a, f)}f"
        return {"accuracy [95% CI]": numbers.interval(m["accuracy"], a, spec),
                "macro-F1 [95% CI]": numbers.interval(m["macro_f1"], f, spec),
                "valid answers": f"{m['valid_rate']:.0%}"}

    def read_split(self, split, systems):
        """The best system by macro-F1 and what the interval width means for telling systems apart here."""
        best = max(systems, key=lambda k: systems[k]["macro_f1"])
        m = systems[best]
        lo, hi = m["macro_f1_ci"]
        return (f"{split} ({m['n']} rows), among this table's systems: {best} scores highest, "
                f"macro-F1 {m['macro_f1']:.2f} (95% CI {lo:.2f} to {hi:.2f}); with intervals about {hi - lo:.2f} "
                "wide, systems closer than that are not told apart here (the paired comparisons below say which "
                "differences are real, against every system 00 scored on these rows too).")

    def read_prompting(self, results):
        return (f"{len(self.labels)} labels: a uniform guess is right {1 / len(self.labels):.0%} of the time; the base "
                f"model zero-shot {results['zero_shot']['accuracy']:.0%}, few-shot "
                f"{results['few_shot_fixed']['accuracy']:.0%}, TF-IDF {results[self.reference]['accuracy']:.0%}.")

    def examples(self, rows, outputs, seed=0):
        return evaluate.answer_examples(rows, outputs, n=4, seed=seed)

    def baseline_fields(self, results, outputs, rows):
        """00's record: the best LLM system by macro-F1, and the TF-IDF reference with its speed and its
        confidence curve (the cheapest routing there is). Returns (fields, what 00 shows of them)."""
        llm = {k: v for k, v in results.items() if k != self.reference}
        best = max(llm, key=lambda k: llm[k]["macro_f1"])
        ref = results[self.reference]
        curve = evaluate.selective_curve([r["label"] for r in rows], outputs[self.reference])
        fields = {"scoring_method": self.scoring.method,
                  "best": {"name": best, "macro_f1": results[best]["macro_f1"],
                           "macro_f1_ci": results[best].get("macro_f1_ci"), "accuracy": results[best]["accuracy"]},
                  "reference": {"name": self.reference, "macro_f1": ref["macro_f1"],
                                "macro_f1_ci": ref.get("macro_f1_ci"), "accuracy": ref["accuracy"],
                                "rows_per_s": ref["rows_per_s"], "seconds": ref["seconds"], "selective_curve": curve}}
        shown = {"best_prompting": best, "macro_f1": round(results[best]["macro_f1"], 3),
                 "tfidf_macro_f1": round(ref["macro_f1"], 3)}
        return fields, shown

    def read_reference(self, m):
        return (f"TF-IDF: macro-F1 {m['macro_f1']:.3f}, {m['rows_per_s'] or 0:,.0f} tickets/s on one process")

    def comparison_rows(self, paired):
        """The paired comparisons as table rows: split, the other system, rows, both macro-F1s, the
        difference (fine-tune minus other) with its interval, McNemar's p."""
        return [{"split": split, "fine-tune vs": key[len("finetuned_vs_"):], "rows": d["n"],
                 "fine-tune F1": round(d["a_macro_f1"], 3), "other F1": round(d["b_macro_f1"], 3),
                 "difference": round(d["macro_f1_diff"], 3),
                 "95% CI": f"[{d['macro_f1_diff_ci'][0]:+.3f}, {d['macro_f1_diff_ci'][1]:+.3f}]",
                 "McNemar p": f"{d['mcnemar_p']:.2g}"}
                for split, by in paired.items() for key, d in by.items()]

    def read_comparisons(self, paired):
        """One sentence per split reading the paired comparisons: what the fine-tune beats, what it
        only matches, and what beats it, each beyond or within its 95% interval."""
        out = []
        for split, by in paired.items():
            won, tied, lost = [], [], []
            for key, d in by.items():
                lo, hi = d["macro_f1_diff_ci"]
                (won if lo > 0 else lost if hi < 0 else tied).append(
                    f"{key[len('finetuned_vs_'):]} ({d['macro_f1_diff']:+.3f})")
            where = split.replace("heldout", "held-out")
            text = f"On {where} rows the fine-tune beats " + (", ".join(won) or "nothing")
            if tied:
                text += f"; it cannot be told apart from {', '.join(tied)}"
            text += f"; {', '.join(lost)} beat{'s' if len(lost) == 1 else ''} it." if lost else "; nothing beats it."
            out.append(text)
        return " ".join(out)

    # ------------------------------------------------------------ the gate
    def beats_base(self, split, d, alpha):
        """The fine-tune against the base model on `split`, paired: a difference, not a sign."""
        field = f"{split}.paired.finetuned_vs_base"
        if gate.significant(d, alpha):
            return [gate.check(f"beats_base_{split}", gate.PASS, f"{split}: fine-tuned beats base by {_ci(d)} "
                               f"macro-F1, McNemar p={d['mcnemar_p']:.2g} < {alpha:g}", field)]
        return [gate.check(f"beats_base_{split}", gate.BLOCK,
                           f"{split}: fine-tuned does not beat base: macro-F1 {_ci(d)}, McNemar p={d['mcnemar_p']:.2g} "
                           f"(a difference needs the interval above zero and p < ALPHA={alpha:g}); tune training "
                           f"before anything else: {'; '.join(self.knobs)}", field)]

    def alternatives(self, split, paired):
        """The fine-tune against every other system scored on the same rows of `split` (00's prompts,
        the classical reference, the replaced model): blocks when one is better beyond its interval."""
        alts = gate.alternatives_of(paired)
        if not alts:
            return gate.no_alternatives(split), None
        name, d = max(alts.items(), key=lambda kv: kv[1]["b_macro_f1"])
        field = f"{split}.paired.finetuned_vs_{name}"
        worse = {n: x for n, x in alts.items() if x["macro_f1_diff_ci"][1] < 0}
        if worse:
            name, d = max(worse.items(), key=lambda kv: kv[1]["b_macro_f1"])
            better = {"name": name, "split": split, "macro_f1": d["b_macro_f1"], "finetuned_macro_f1": d["a_macro_f1"],
                      "n": d["n"], "macro_f1_diff": d["macro_f1_diff"], "macro_f1_diff_ci": d["macro_f1_diff_ci"]}
            return gate.check(f"alternatives_{split}", gate.BLOCK,
                              f"{split}: {name} is better: macro-F1 {d['b_macro_f1']:.3f} against the fine-tune's "
                              f"{d['a_macro_f1']:.3f} on the same {d['n']} rows, difference {_ci(d)}; ship {name} "
                              f"instead, or improve the fine-tune until it matches",
                              f"{split}.paired.finetuned_vs_{name}"), better
        return gate.check(f"alternatives_{split}", gate.PASS,
                          f"{split}: the fine-tune ({d['a_macro_f1']:.3f}) matches or beats the best other system, "
                          f"{name} ({d['b_macro_f1']:.3f}), on the same {d['n']} rows: difference {_ci(d)}",
                          field), None

    def unit_table(self, results):
        """Per-label F1 of the fine-tune and the base, held-out and production side by side, the worst
        label first (its lower F1 of the two splits)."""
        labels = results["heldout"]["finetuned"]["confusion"]["labels"]
        rows = []
        for lab in labels:
            row = {"label": lab}
            for split in ("heldout", "production"):
                ft = (results.get(split) or {}).get("finetuned")
                base = (results.get(split) or {}).get("base")
                pc = (ft or {}).get("per_class", {}).get(lab) or {}
                n = int(pc.get("support", 0))
                row[f"{split}_n"] = n
                row[f"{split}_f1"] = round(pc.get("f1-score", 0.0), 3) if n else None
                row[f"{split}_base_f1"] = round(((base or {}).get("per_class", {}).get(lab) or {}).get(
                    "f1-score", 0.0), 3) if n else None
            rows.append(row)

        def worst(r):   # its lower F1 of the two splits, then the higher: 0.00 on both is worse than 0.15 and 0.00
            f1s = [v for v in (r["heldout_f1"], r["production_f1"]) if v is not None]
            return (min(f1s, default=2.0), max(f1s, default=2.0), r["label"])

        return sorted(rows, key=worst)

    def _floor(self, label, cfg):
        return cfg.critical_f1 if label in cfg.critical_labels else cfg.min_class_f1

    def unit_floor(self, table, cfg):
        """Labels whose fine-tuned F1 falls under the floor on a split where they occur: block."""
        low = []
        for r in table:
            floor = self._floor(r["label"], cfg)
            where = [f"{s.replace('heldout', 'held-out')} {r[f'{s}_f1']:.2f} on {r[f'{s}_n']} rows"
                     for s in ("heldout", "production") if r[f"{s}_f1"] is not None and r[f"{s}_f1"] < floor]
            if where:
                low.append(f"{r['label']} ({', '.join(where)}; floor {floor:g}"
                           f"{', critical' if r['label'] in cfg.critical_labels else ''})")
        missing = [lab for lab in cfg.critical_labels if lab not in {r["label"] for r in table}]
        if missing:
            low.append(f"critical label(s) {missing} never occur in the scored rows: their F1 is unknown")
        field = "heldout.systems.finetuned.per_class, production.systems.finetuned.per_class"
        if low:
            return gate.check("class_floor", gate.BLOCK,
                              f"{len(low)} label(s) under the F1 floor (MIN_CLASS_F1={cfg.min_class_f1:g}"
                              f"{', CRITICAL_F1=' + format(cfg.critical_f1, 'g') if cfg.critical_labels else ''}): "
                              f"{'; '.join(low)}; collect and curate more examples of them (02) before shipping", field)
        return gate.check("class_floor", gate.PASS, f"every label reaches its F1 floor (MIN_CLASS_F1="
                          f"{cfg.min_class_f1:g}) on held-out and production", field)

    def under_floor(self, table, cfg):
        return [r for r in table if any(r[f"{s}_f1"] is not None and r[f"{s}_f1"] < self._floor(r["label"], cfg)
                                        for s in ("heldout", "production"))]

    def read_worst(self, top):
        return (f"The worst label is {top['label']}: F1 {_fmt(top['heldout_f1'])} held-out, "
                f"{_fmt(top['production_f1'])} production (base {_fmt(top['heldout_base_f1'])}, "
                f"{_fmt(top['production_base_f1'])}). ")

    def read_floor(self, low, n, cfg):
        under = ", ".join(r["label"] for r in low)
        return (f"{len(low)} of {n} labels fall under their floor ({under}): the fine-tune rarely or never gets "
                "them right, and a model that misses a whole class does not ship however good its average is."
                if low else f"Every label clears its floor ({cfg.min_class_f1:g}).")

    def gate_config(self, cfg):
        return {"alpha": cfg.alpha, "max_drop": cfg.max_drop, "min_class_f1": cfg.min_class_f1,
                "critical_labels": list(cfg.critical_labels), "critical_f1": cfg.critical_f1}

    # ------------------------------------------------------------ 04's other views
    def figures(self, results, others=None, rows=None):
        from .. import plots

        return {"04_confusion": plots.confusion(results["heldout"]["finetuned"]["confusion"],
                                                title="fine-tuned, held-out")}

    def slices(self, splits, outputs, train_rows, min_rows):
        """Accuracy of fine-tuned and base on rare labels, long tickets and tickets with likely typos, per split."""
        vocab = evaluate.vocabulary(train_rows)
        out = {split: evaluate.slices(rows, outputs[(split, "finetuned")], outputs[(split, "base")], self.labels,
                                      vocab, min_rows)
               for split, rows in splits.items() if rows}
        return out, "", out

    def selective_curve(self, rows, outputs):
        return evaluate.selective_curve([r["label"] for r in rows], outputs), ""

    def leakage_demo(self, raw, train_rows, heldout, production, near, seed=0):
        """Mistake 2 ("held-out includes data leaked from training: scores look great, production fails")
        measured with the classical reference, in seconds: the raw export split row by row, as a naive
        split does, TF-IDF trained on it, its held-out rows grouped by what they share with train (a near
        twin with the same label, a twin with another label, none), beside 02's grouped split."""
        train, held = lessons.row_split(raw, seed=seed)
        twin = {e["id"]: e for e in quality.audit(train, held, near)["near"]}

        def group(r):
            return ("no_twin" if r["id"] not in twin else
                    "twin_same_label" if twin[r["id"]]["train_label"] == r["label"] else "twin_other_label")

        def scored(clf, rows):
            p = clf.predict([r["text"] for r in rows])
            return p, evaluate.score([r["label"] for r in rows], p, self.labels, n_boot=200, seed=seed)

        def pick(x):
            return None if x is None else {k: x[k] for k in ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci")}

        naive = evaluate.TfidfClassifier(train)
        p, m = scored(naive, held)
        groups = {}
        for name in ("twin_same_label", "twin_other_label", "no_twin"):
            idx = [i for i, r in enumerate(held) if group(r) == name]
            groups[name] = {"n": len(idx), "accuracy": float(np.mean([p[i].label == held[i]["label"] for i in idx]))
                            if idx else None}
        _, mp = scored(naive, production) if production else (None, None)
        grouped = evaluate.TfidfClassifier(train_rows)
        _, g = scored(grouped, heldout)
        _, gp = scored(grouped, production) if production else (None, None)
        demo = {"rows": len(held), "seed": seed, "groups": groups,
                "row_split": {"heldout": pick(m), "production": pick(mp)},
                "grouped_split": {"heldout": pick(g), "production": pick(gp)}}
        return demo, self.read_leakage(demo)

    @staticmethod
    def read_leakage(demo):
        """The leakage demonstration in words."""
        g, row, grp = demo["groups"], demo["row_split"], demo["grouped_split"]
        twins = g["twin_same_label"]["n"] + g["twin_other_label"]["n"]
        text = (f"Split row by row, {twins} of the {demo['rows']} held-out rows have a near twin in train. The "
                f"{g['twin_same_label']['n']} whose twin carries the same label are answered right "
                f"{_fmt(g['twin_same_label']['accuracy'])} of the time, the {g['no_twin']['n']} with no twin "
                f"{_fmt(g['no_twin']['accuracy'])}: a leaked row is a question the model has seen with its answer. ")
        if g["twin_other_label"]["n"]:
            text += (f"The {g['twin_other_label']['n']} whose twin carries another label score "
                     f"{_fmt(g['twin_other_label']['accuracy'])}: the conflicts 02 drops. ")
        if row["production"] and grp["production"]:
            text += (f"Held-out accuracy {_fmt(row['heldout']['accuracy'])} (row split) vs "
                     f"{_fmt(grp['heldout']['accuracy'])} (02's grouped split); on production "
                     f"{_fmt(row['production']['accuracy'])} vs {_fmt(grp['production']['accuracy'])}. ")
            gap = row["heldout"]["accuracy"] - row["production"]["accuracy"]
            (hl, hh), (pl, ph) = row["heldout"]["accuracy_ci"], row["production"]["accuracy_ci"]
            if gap > 0 and hl > ph:
                text += f"The row split promises {gap:+.2f} more than production delivers, beyond both intervals."
            elif gap > 0:   # issue 28: +0.03 read as the leak's effect where the intervals overlap
                text += (f"The row split scores {gap:+.2f} above production, inside both 95% intervals ({hl:.2f}-"
                         f"{hh:.2f} and {pl:.2f}-{ph:.2f}): on this export that gap is not told apart from noise; "
                         "the per-group figures are where the leak shows.")
            else:
                text += ("On this export the leaked rows are too few (and too often conflicting) to lift the whole "
                         "held-out score above production's: the per-group figures are where the leak shows.")
        return text

    def edge_cases(self, train_rows, splits, outputs, system, pattern):
        edge = lessons.edge_cases(train_rows, splits,
                                  {"heldout": outputs[("heldout", "finetuned")],
                                   "production": outputs.get(("production", "finetuned"), [])},
                                  system.predict, pattern, self.labels)
        return edge, lessons.read_edge_cases(edge)

    def base_update(self, ref, new_ref, adapter, train_cfg, train_rows, heldout, outputs, out_dir):
        demo = lessons.base_update(ref, new_ref, adapter, train_cfg, train_rows, heldout, self.labels,
                                   self.system_prompt, outputs, out_dir, self.scoring.batch_size,
                                   method=self.scoring.method)
        return demo, lessons.read_base_update(demo)

    def learning_curve(self, train_rows, raw_rows, heldout, finetune=None, out_dir=None, points=4, seed=0):
        """The cheap reference's curve on curated and uncurated rows, and with `finetune` ((ref, 03's TrainConfig)) the
        fine-tune's, retrained per point into `out_dir`: (04's record, sentences)."""
        y, texts = [r["label"] for r in heldout], [r["text"] for r in heldout]
        keep = curve.scored(y, self.labels, self.scoring.n_boot, seed)
        pools = {"curated": train_rows, "uncurated": curve.uncurated_pool(raw_rows, heldout)}
        sizes = curve.sizes_for(len(train_rows), len(self.labels), points)
        curves = {self.reference: curve.run(lambda rows, _: keep(evaluate.TfidfClassifier(rows).predict(texts)),
                                            pools, sizes, seed, desc="learning curve: TF-IDF")}
        if finetune:
            ref, cfg = finetune
            curves["finetuned"] = curve.run(lambda rows, name: keep(lessons.fit_and_predict(
                ref, cfg, rows, heldout, self.labels, self.system_prompt, out_dir / name, self.scoring.batch_size,
                self.scoring.method)), pools, sizes, seed, desc="learning curve: fine-tune")
        rec = curve.record(curves, sizes)
        rec["pool_rows"] = {k: len(v) for k, v in pools.items()}
        return rec, curve.reading(curves)

    def record_fields(self, selective_curve=None, **_):
        return {"selective_curve": selective_curve, **self.scoring.record()}
