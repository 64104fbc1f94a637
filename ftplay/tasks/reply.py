"""A support reply in the house format (`reply`): scored on format validity, fields and chrF; its gate checks
every part of the format. Systems and metrics are ftplay/replies.py's; the format is ftplay/formats.py's."""
from .. import formats, gate, lessons, numbers, quality, replies, stages
from .base import Task

KNOBS = gate.KNOBS[:3] + ("more training replies (02: the reply rows), or MAX_NEW_TOKENS (04) if replies are cut off",)
METRIC_NAMES = {"chrf": "chrF", "field_accuracy": "field accuracy", "valid_rate": "valid replies"}


def _rci(d, metric):
    return numbers.interval(d[f"{metric}_diff"], d[f"{metric}_diff_ci"], "+.1f" if metric == "chrf" else "+.3f",
                            prose=True)


def _val(metric, x):
    return f"{x:.1f}" if metric == "chrf" else f"{x:.0%}"


def _pct(x):
    return "-" if x is None else f"{x:.0%}"


def _rank(m):
    """Order of systems: the primary metric, chrF on a tie (every prompt at 0% fields)."""
    return (m[m["primary"]] or 0.0, m["chrf"])


class ReplyTask(Task):
    name = stages.REPLY
    description = stages.TASKS[name]
    adapter_name = stages.ADAPTER_NAMES[name]
    reference = replies.NEAREST
    endpoint_system = "endpoint_few_shot"
    answer = "output"
    units = "parts"
    unit_word = "format parts"
    knobs = KNOBS
    drop_what, unlike = "valid replies drop", "tickets do"

    def __init__(self, scoring=None, reply_format="house", max_new_tokens=0, **options):
        super().__init__(scoring, **options)
        self.fmt = formats.get(reply_format)
        self.max_new_tokens_param = max_new_tokens
        self.max_new_tokens = None

    def bind(self, labels, system_prompt, tokenizer=None, output_tokens=None):
        """Also resolves MAX_NEW_TOKENS (0: the longest curated reply + a margin) and says why in `note`."""
        super().bind(labels, system_prompt, tokenizer)
        self.max_new_tokens, why = replies.max_new_tokens(self.max_new_tokens_param, output_tokens)
        self.note = f"replies are generated up to {self.max_new_tokens} tokens ({why})"
        return self

    @property
    def primary(self):
        return replies.primary(self.fmt)

    @property
    def reply_format(self):
        return self.fmt.name

    def trains_on(self):
        return f"replies in the {self.fmt.name!r} format"

    @property
    def drop_metric(self):
        return "valid_rate"

    def show(self, value):
        return f"{value:.0%}"

    def raw_output_field(self, config):
        return config.get("output_field")

    # ------------------------------------------------------------ systems
    def reference_system(self, train_rows):
        return replies.NearestReply(train_rows)

    def references(self, train_rows):
        """nearest_reply (the reference) and constant_reply (the floor a canned fine-tune scores)."""
        return {**super().references(train_rows), replies.CONSTANT: replies.ConstantReply(train_rows)}

    def floor_checks(self, paired, cfg):
        """Held-out: the fine-tune must beat constant_reply on the primary metric beyond its interval (the paired
        difference's 95% interval above zero; McNemar here tests validity, which a canned reply always has): one
        reply for every ticket is what a fine-tune that learnt only the format writes. Not proven where 00 did
        not score it."""
        d = (paired.get("heldout") or {}).get(f"finetuned_vs_{replies.CONSTANT}")
        name = f"beats_{replies.CONSTANT}"
        if d is None:
            return [gate.check(name, gate.NOT_PROVEN, f"held-out: {replies.CONSTANT} (the most common training "
                               "reply) was not scored; run 00 into this RUN_DIR", "heldout.paired")]
        metric = d.get("primary", self.primary)
        what, a, b = METRIC_NAMES[metric], d[f"a_{metric}"], d[f"b_{metric}"]
        beats = d[f"{metric}_diff_ci"][0] > 0
        text = (f"held-out: the fine-tune's {what} {_val(metric, a)} against {_val(metric, b)} for the most common "
                f"training reply sent to every ticket, on the same {d['n']} rows: difference {_rci(d, metric)}")
        return [gate.check(name, gate.PASS if beats else gate.BLOCK,
                           text + ("" if beats else "; a fine-tune that does not beat one canned reply learnt the "
                                   "format, not the ticket: tune training (more epochs, a higher rank or learning "
                                   "rate, more varied replies)"),
                           f"heldout.paired.finetuned_vs_{replies.CONSTANT}")]

    def shots(self, train_rows, mode, n_shots, seed):
        return replies.shots(train_rows, self.labels, mode, n_shots, seed)

    def _writer(self, model, shots, name):
        return replies.ReplyGenerator(model, self.tokenizer, self.fmt, self.system_prompt, shots,
                                      self.scoring.batch_size, self.max_new_tokens, name)

    def prompted(self, model, train_rows, n_shots, seed):
        """The base model writing every reply: zero-shot (the format described in the system prompt), and with
        fixed and retrieved examples (their reference replies as the shots)."""
        return {"zero_shot": self._writer(model, None, "zero_shot"),
                "few_shot_fixed": self._writer(model, self.shots(train_rows, "fixed", n_shots, seed), "few_shot_fixed"),
                "few_shot_retrieved": self._writer(model, self.shots(train_rows, "retrieved", n_shots, seed),
                                                   "few_shot_retrieved")}

    def endpoint(self, client, model, shots):
        """The same conversation, retrieved examples, no schema: a reply is free text."""
        return replies.EndpointReplier(client, model, self.fmt, self.system_prompt, shots, self.max_new_tokens,
                                       name=self.endpoint_system)

    def system(self, model, name):
        return self._writer(model, None, f"writing {name}")

    def outputs(self, system, rows):
        return system.reply([r["text"] for r in rows])

    def run(self, system, rows, seed=0):
        """Task.run, with the replies' token counts ("output_tokens": 06 prices output tokens so)."""
        m, outputs = super().run(system, rows, seed)
        if self.tokenizer is not None:
            m["output_tokens"] = replies.token_stats(self.tokenizer, outputs)
        return m, outputs

    # ------------------------------------------------------------ metrics
    def score(self, rows, outputs, seed=0):
        return replies.score(rows, outputs, self.fmt, self.scoring.n_boot, seed)

    def paired(self, rows, a, b, seed=0):
        return replies.paired(rows, a, b, self.fmt, self.scoring.n_boot, seed)

    def figures(self, results, others=None, rows=None):
        """Each part of the reply right, held-out: fine-tune and base, and 00's canned references (the constant
        reply and the nearest ticket's reply) scored on the same rows, so a part the fine-tune only gets as often
        as a canned reply shows as a bar no higher than theirs."""
        from .. import plots

        held = results.get("heldout") or {}
        systems = {f"{name}": held[key]["fields"] for key, name in (("finetuned", "fine-tuned"), ("base", "base"))
                   if held.get(key, {}).get("fields")}
        at = {r["id"]: r for r in rows or ()}
        for name in (replies.CONSTANT, self.reference):
            o = (others or {}).get(name)
            if o and at:
                systems[f"{name} (00)"] = self.score([at[i] for i in o["ids"]], o["preds"])["fields"]
        return {"04_reply_parts": plots.part_accuracy(systems, title="Each part of the reply right, held-out")}

    def save(self, path, rows, outputs):
        replies.save_outputs(path, rows, outputs)

    def load(self, path):
        return replies.load_outputs(path)

    # ------------------------------------------------------------ tables and readings
    def summary_columns(self, m):
        """valid replies, field accuracy and chrF with their 95% intervals, corpus chrF, distinct replies, rows/s."""
        return {"valid [95% CI]": numbers.interval(m["valid_rate"], m["valid_rate_ci"], ".0%"),
                "fields [95% CI]": numbers.interval(m["field_accuracy"], m["field_accuracy_ci"], ".0%"),
                "chrF [95% CI]": numbers.interval(m["chrf"], m["chrf_ci"], ".1f"),
                "corpus chrF": round(m["corpus_chrf"], 1), "distinct replies": m.get("distinct"),
                "rows/s": m.get("rows_per_s")}

    def read_split(self, split, systems):
        """The best system by the primary metric, the most valid one, how wide the intervals are here, and the
        well-formed systems that write the same few replies to every ticket."""
        best = max(systems, key=lambda k: _rank(systems[k]))
        valid = max(systems, key=lambda k: systems[k]["valid_rate"])
        m, v = systems[best], systems[valid]
        lo, hi = m[f"{m['primary']}_ci"]
        said = (f"restates the most fields right, {m['field_accuracy']:.0%} (95% CI {lo:.0%} to {hi:.0%}), chrF "
                f"{m['chrf']:.1f}" if m["primary"] == "field_accuracy" else
                f"writes the replies closest to the references, chrF {m['chrf']:.1f} (95% CI {lo:.1f} to {hi:.1f})")
        width = f"{hi - lo:.0%}" if m["primary"] == "field_accuracy" else f"{hi - lo:.1f} chrF points"
        canned = [f"{k} ({x['distinct']})" for k, x in systems.items()
                  if x.get("distinct") is not None and x["valid_rate"] >= 0.5 and x["distinct"] <= x["n"] / 10]
        return (f"{split} ({m['n']} rows), among this table's systems: {best} {said}; {valid} "
                f"keeps the format most often, {v['valid_rate']:.0%} valid. Intervals about {width} wide: closer "
                "systems are not told apart here (the paired comparisons say which differences are real, against "
                "every system 00 scored on these rows too)."
                + (f" Well-formed but canned: {', '.join(canned)} distinct replies for {m['n']} tickets, the "
                   "format learnt without the ticket's content." if canned else ""))

    def read_prompting(self, results):
        ref = results[self.reference]
        return (f"Valid replies in the {self.fmt.name} format: zero-shot {results['zero_shot']['valid_rate']:.0%}, "
                f"few-shot fixed {results['few_shot_fixed']['valid_rate']:.0%}, few-shot retrieved "
                f"{results['few_shot_retrieved']['valid_rate']:.0%}, {self.reference} {ref['valid_rate']:.0%} "
                f"(a canned reply: chrF {ref['chrf']:.1f}). Each reply's lines are joined with ' | ':")

    def read_reference(self, m):
        fields = "" if m["field_accuracy"] is None else f", {m['field_accuracy']:.0%} of fields right"
        return (f"{self.reference}: {m['valid_rate']:.0%} valid, chrF {m['chrf']:.1f}{fields}, "
                f"{m['rows_per_s'] or 0:,.0f} tickets/s on one process")

    def examples(self, rows, outputs, seed=0):
        """Two tickets: the reference reply, the cheap references' replies, the first prompting system's and an
        endpoint's, when scored (every system's replies are scored in 00's table and saved under predictions/)."""
        llm = [k for k in outputs if k not in (self.reference, replies.CONSTANT) and not k.startswith("endpoint")]
        shown = {k: o for k, o in outputs.items() if k not in llm[1:]}
        return replies.examples(rows, shown, n=2, seed=seed)

    def baseline_fields(self, results, outputs, rows):
        """00's record of the reply task: the primary metric, the best prompting system by it (chrF on a tie; the
        reference and the floor excluded), the reference (nearest_reply) with its speed, and the floor
        (constant_reply) with the share of training replies it is. Returns (fields, what 00 shows)."""
        keys = ("valid_rate", "field_accuracy", "chrf")
        llm = {k: m for k, m in results.items() if k not in (self.reference, replies.CONSTANT)}
        best = max(llm, key=lambda k: _rank(llm[k]))
        ref = results[self.reference]
        fields = {"format": self.fmt.name, "max_new_tokens": self.max_new_tokens, "primary": self.primary,
                  "best": {"name": best, "metric": self.primary, **{k: llm[best][k] for k in keys},
                           "valid_ci": llm[best].get("valid_ci")},
                  "reference": {"name": self.reference, **{k: ref[k] for k in keys},
                                "rows_per_s": ref.get("rows_per_s"), "seconds": ref.get("seconds")}}
        if replies.CONSTANT in results:
            fields["floor"] = {"name": replies.CONSTANT, **{k: results[replies.CONSTANT][k] for k in keys}}
        b, r, f = fields["best"], fields["reference"], fields.get("floor") or {}
        shown = {"primary metric": self.primary, "best_prompting": best,
                 **{k: round(b[k], 3) for k in keys if b[k] is not None},
                 **{f"{self.reference} {k}": round(r[k], 3) for k in keys if r[k] is not None},
                 **{f"{replies.CONSTANT} {k}": round(f[k], 3) for k in keys if f.get(k) is not None}}
        return fields, shown

    def comparison_rows(self, paired):
        """The paired comparisons as table rows: split, the other system, rows, the validity, field accuracy and
        chrF differences (fine-tune minus other) with intervals, McNemar's p on validity."""
        def iv(d, k):
            return numbers.interval(d.get(f"{k}_diff"), d.get(f"{k}_diff_ci"), "+.1f" if k == "chrf" else "+.3f")

        return [{"split": split, "fine-tune vs": key[len("finetuned_vs_"):], "rows": d["n"],
                 "valid (ft / other)": f"{d['a_valid_rate']:.0%} / {d['b_valid_rate']:.0%}",
                 "valid diff [95% CI]": iv(d, "valid_rate"), "McNemar p": f"{d['mcnemar_p']:.2g}",
                 "fields diff [95% CI]": iv(d, "field_accuracy"), "chrF diff [95% CI]": iv(d, "chrf")}
                for split, by in paired.items() for key, d in by.items()]

    def read_comparisons(self, paired):
        """One sentence per split: whom the fine-tune beats on validity, and on chrF, beyond the 95% interval."""
        out = []
        for split, by in paired.items():
            where = split.replace("heldout", "held-out")
            said = []
            first = next(iter(by.values()), {}).get("primary", "chrf")
            for metric, what in (("valid_rate", "format validity"), ("field_accuracy", "fields"), ("chrf", "chrF")):
                if metric == "field_accuracy" and first != metric:
                    continue
                won, tied, lost = [], [], []
                for key, d in by.items():
                    lo, hi = d[f"{metric}_diff_ci"]
                    (won if lo > 0 else lost if hi < 0 else tied).append(key[len("finetuned_vs_"):])
                text = f"on {what} it beats {', '.join(won) or 'nothing'}"
                text += f", ties {', '.join(tied)}" if tied else ""
                text += f", loses to {', '.join(lost)}" if lost else ""
                said.append(text)
            out.append(f"On {where} rows the fine-tune: " + "; ".join(said) + ".")
        return " ".join(out)

    # ------------------------------------------------------------ the gate
    def beats_base(self, split, d, alpha):
        """The reply fine-tune against the base on `split`, paired: more valid replies (a difference: the
        interval above zero and McNemar p < ALPHA), and, as a second check, chrF not worse beyond its interval."""
        field = f"{split}.paired.finetuned_vs_base"
        valid = (f"{split}: valid replies {d['a_valid_rate']:.0%} fine-tuned vs {d['b_valid_rate']:.0%} base, "
                 f"difference {_rci(d, 'valid_rate')}, McNemar p={d['mcnemar_p']:.2g}")
        if d["valid_rate_diff_ci"][0] > 0 and d["mcnemar_p"] < alpha:
            first = gate.check(f"beats_base_{split}", gate.PASS,
                               f"{valid} < {alpha:g}: the fine-tune beats the base on the format", field)
        else:
            first = gate.check(f"beats_base_{split}", gate.BLOCK,
                               f"{valid}: not a difference (it needs the interval above zero and p < ALPHA={alpha:g}); "
                               f"tune training before anything else: {'; '.join(self.knobs)}", field)
        worse = d["chrf_diff_ci"][1] < 0
        second = gate.check(f"chrf_vs_base_{split}", gate.BLOCK if worse else gate.PASS,
                            f"{split}: chrF {d['a_chrf']:.1f} fine-tuned vs {d['b_chrf']:.1f} base, difference "
                            f"{_rci(d, 'chrf')}"
                            + (": the fine-tune's replies are further from the references than the base's; a format "
                               "bought with the content is no gain" if worse else ": not worse than the base"), field)
        return [first, second]

    def alternatives(self, split, paired):
        """The reply fine-tune against every other system scored on the same rows of `split`, on the task's primary
        metric (each comparison's "primary"): blocks when one is better beyond its interval (the `better` record
        names the best such system, in classification's shape with the metric named)."""
        alts = gate.alternatives_of(paired)
        if not alts:
            return gate.no_alternatives(split), None
        metric = next(iter(alts.values())).get("primary", "chrf")
        what = METRIC_NAMES[metric]
        worse = {n: x for n, x in alts.items() if x[f"{metric}_diff_ci"][1] < 0}
        if worse:
            name, d = max(worse.items(), key=lambda kv: (kv[1][f"b_{metric}"], kv[1]["b_chrf"]))
            better = {"name": name, "split": split, "metric": metric, "value": d[f"b_{metric}"],
                      "finetuned_value": d[f"a_{metric}"], metric: d[f"b_{metric}"],
                      f"finetuned_{metric}": d[f"a_{metric}"], "n": d["n"], f"{metric}_diff": d[f"{metric}_diff"],
                      f"{metric}_diff_ci": d[f"{metric}_diff_ci"]}
            return gate.check(f"alternatives_{split}", gate.BLOCK,
                              f"{split}: {name} is better: {what} {_val(metric, d[f'b_{metric}'])} against the "
                              f"fine-tune's {_val(metric, d[f'a_{metric}'])} on the same {d['n']} rows, difference "
                              f"{_rci(d, metric)} (valid {d['b_valid_rate']:.0%} vs {d['a_valid_rate']:.0%}, chrF "
                              f"{d['b_chrf']:.1f} vs {d['a_chrf']:.1f}); ship {name} instead, or improve the fine-tune "
                              "until it matches", f"{split}.paired.finetuned_vs_{name}"), better
        name, d = max(alts.items(), key=lambda kv: (kv[1][f"b_{metric}"], kv[1]["b_chrf"]))
        return gate.check(f"alternatives_{split}", gate.PASS,
                          f"{split}: the fine-tune ({what} {_val(metric, d[f'a_{metric}'])}) matches or beats the best "
                          f"other system, {name} ({_val(metric, d[f'b_{metric}'])}), on the same {d['n']} rows: "
                          f"difference {_rci(d, metric)}", f"{split}.paired.finetuned_vs_{name}"), None

    def unit_table(self, results, splits=("heldout", "production")):
        """Per format part (replies.score's "parts"), the fine-tune's and the base's presence rate on each split,
        the part the fine-tune misses most first (its lower rate of the splits)."""
        names = list(((results.get("heldout") or {}).get("finetuned") or {}).get("parts") or {})
        rows = []
        for part in names:
            row = {"part": part}
            for split in splits:
                ft, base = (((results.get(split) or {}).get(k) or {}).get("parts") or {} for k in ("finetuned", "base"))
                got = ft.get(part) or {}
                row[f"{split}_n"] = got.get("n", 0)
                row[f"{split}_rate"] = None if got.get("rate") is None else round(got["rate"], 3)
                b = (base.get(part) or {}).get("rate")
                row[f"{split}_base_rate"] = None if b is None else round(b, 3)
            rows.append(row)

        def worst(r):
            return min([r[f"{s}_rate"] for s in splits if r[f"{s}_rate"] is not None], default=2.0)

        return sorted(rows, key=lambda r: (worst(r), r["part"]))

    @staticmethod
    def _low(table, floor):
        return [r for r in table if any(r.get(f"{s}_rate") is not None and r[f"{s}_rate"] < floor
                                        for s in ("heldout", "production"))]

    def unit_floor(self, table, cfg):
        """Format parts the fine-tune writes in fewer than MIN_PART_RATE of its replies, on a split: block."""
        low = [f"{r['part']} (" + ", ".join(f"{s.replace('heldout', 'held-out')} {r[f'{s}_rate']:.0%} of {r[f'{s}_n']}"
                                            for s in ("heldout", "production")
                                            if r.get(f"{s}_rate") is not None and r[f"{s}_rate"] < cfg.min_part_rate)
               + ")" for r in self._low(table, cfg.min_part_rate)]
        field = "heldout.systems.finetuned.parts, production.systems.finetuned.parts"
        if low:
            return gate.check("part_floor", gate.BLOCK, f"{len(low)} format part(s) under the floor MIN_PART_RATE="
                              f"{cfg.min_part_rate:g}: {'; '.join(low)}; a reply without them is not in the house "
                              "format: check the training replies (02) and train longer (03)", field)
        return gate.check("part_floor", gate.PASS, f"every format part is in at least {cfg.min_part_rate:.0%} of the "
                          "fine-tune's replies, held-out and production (MIN_PART_RATE)", field)

    def under_floor(self, table, cfg):
        return self._low(table, cfg.min_part_rate)

    def read_worst(self, top):
        rates = [r for r in (top.get("heldout_rate"), top.get("production_rate")) if r is not None]
        if rates and min(rates) >= 1:   # the worst part is in every reply: no part is missed (issue 28)
            return (f"The fine-tune writes every part of the format in every reply, held-out and production (base: "
                    f"{top['part']} in {_pct(top['heldout_base_rate'])} of held-out replies). ")
        return (f"The part the fine-tune misses most is {top['part']}: in {_pct(top['heldout_rate'])} of its "
                f"held-out replies, {_pct(top.get('production_rate'))} of production ones "
                f"(base {_pct(top['heldout_base_rate'])}, {_pct(top.get('production_base_rate'))}). ")

    def read_floor(self, low, n, cfg):
        if low:
            return (f"{len(low)} of {n} parts fall under MIN_PART_RATE={cfg.min_part_rate:g} "
                    f"({', '.join(r['part'] for r in low)}): a reply that drops a part is not in the format, "
                    "however close its words.")
        return f"Every part clears MIN_PART_RATE={cfg.min_part_rate:g}."

    def gate_config(self, cfg):
        return {"alpha": cfg.alpha, "max_drop": cfg.max_drop, "min_part_rate": cfg.min_part_rate}

    # ------------------------------------------------------------ 04's other views
    def slices(self, splits, outputs, train_rows, min_rows):
        """Every ticket label a slice: valid replies, fields and chrF of fine-tune and base, worst first."""
        out = {split: replies.label_table(rows, {"finetuned": outputs[(split, "finetuned")],
                                                 "base": outputs[(split, "base")]}, self.fmt, min_rows)
               for split, rows in splits.items() if rows}
        return out, " ".join(f"{split}: {self.read_labels(table)}" for split, table in out.items()), out["heldout"]

    @staticmethod
    def read_labels(table, first="finetuned"):
        """One sentence reading a per-label table: the worst label for `first`, and the spread."""
        if not table:
            return "No labels scored."
        w, b = table[0], table[-1]

        def said(r):
            return (f"{r[f'{first}_valid']:.0%} valid, "
                    + (f"{r[f'{first}_fields']:.0%} of fields right, " if f"{first}_fields" in r else "")
                    + f"chrF {r[f'{first}_chrf']:.1f}")

        return (f"{first} is weakest on {w['label']} tickets ({w['n']} rows): {said(w)}, against {said(b)} on "
                f"{b['label']}" + (f"; {w['warning']}." if w["warning"] else "."))

    def selective_curve(self, rows, outputs):
        return None, "not measured for the reply task: a generated reply has no confidence to route on"

    def leakage_demo(self, raw, train_rows, heldout, production, near, seed=0):
        """Mistake 2 on the reply task, measured with the canned-reply reference (replies.NearestReply) in seconds:
        the raw export split row by row, its held-out rows grouped by whether a near twin sits in train, their
        chrF and field accuracy, beside 02's grouped split and production."""
        train, held = lessons.row_split(raw, seed=seed)
        twins = {e["id"] for e in quality.audit(train, held, near)["near"]}

        def pick(m):
            return None if m is None else {k: m[k] for k in ("chrf", "chrf_ci", "valid_rate", "field_accuracy")}

        def scored(fit, rows):
            if not rows:
                return None, None
            outs = replies.NearestReply(fit).reply([r["text"] for r in rows])
            return replies.score(rows, outs, self.fmt, n_boot=200, seed=seed), outs  # a demonstration: 200 draws

        m, outs = scored(train, held)
        s = replies.row_scores(held, outs, self.fmt)
        groups = {}
        for name, keep in (("near_twin", lambda r: r["id"] in twins), ("no_twin", lambda r: r["id"] not in twins)):
            idx = [i for i, r in enumerate(held) if keep(r)]
            groups[name] = {"n": len(idx), "chrf": float(s["chrf"][idx].mean()) if idx else None,
                            "field_accuracy": float(s["fields"][idx].mean()) if idx and self.fmt.fields else None}
        demo = {"rows": len(held), "seed": seed, "groups": groups,
                "row_split": {"heldout": pick(m), "production": pick(scored(train, production)[0])},
                "grouped_split": {"heldout": pick(scored(train_rows, heldout)[0]),
                                  "production": pick(scored(train_rows, production)[0])}}
        return demo, self.read_leakage(demo)

    @staticmethod
    def read_leakage(demo):
        """The reply task's leakage demonstration in words."""
        g, row, grp = demo["groups"], demo["row_split"], demo["grouped_split"]

        def f(x):
            return "-" if x is None else f"{x:.1f}"

        text = (f"Split row by row, {g['near_twin']['n']} of the {demo['rows']} held-out tickets have a near twin in "
                f"train: the canned reply of the nearest training ticket scores chrF {f(g['near_twin']['chrf'])} on "
                f"them, {f(g['no_twin']['chrf'])} on the {g['no_twin']['n']} without one. Held-out chrF "
                f"{f(row['heldout']['chrf'])} (row split) vs {f(grp['heldout']['chrf'])} (02's grouped split)")
        if row["production"]:
            text += f"; on production {f(row['production']['chrf'])} vs {f(grp['production']['chrf'])}"
        return text + ". A leaked ticket is a question whose reply was in the training data."

    def edge_cases(self, train_rows, splits, outputs, system, pattern):
        return None, ("not run for the reply task: it compares accuracy on the training rows of a slice with new rows, "
                      "a label measurement; the per-label tables of section 4 show where the reply fine-tune fails")

    def base_update(self, ref, new_ref, adapter, train_cfg, train_rows, heldout, outputs, out_dir):
        return None, ("not run: the demonstration is measured once, on the classification task (a second reply "
                      "fine-tune would double its minute to show the same lesson)")

    def record_fields(self, **_):
        return {"format": self.fmt.name, "primary": self.primary, "max_new_tokens": self.max_new_tokens}

