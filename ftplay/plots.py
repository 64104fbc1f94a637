"""Plotting helpers: each takes tidy data and an optional `ax`, labels axes with units, returns the figure."""
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter


def _axes(ax, size=(7, 4)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size)
        return fig, ax
    return ax.figure, ax


def cost_vs_volume(rows, marks=(), ax=None, at=None):
    """Monthly cost against monthly requests (log x), one line per option.
    rows: [{"option", "requests", "monthly_cost"}]; marks: break-even points of the same shape;
    at: the volume you expect, drawn as a vertical line."""
    fig, ax = _axes(ax)
    for option in dict.fromkeys(r["option"] for r in rows):
        pts = sorted((r["requests"], r["monthly_cost"]) for r in rows if r["option"] == option)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=option,
                linestyle="--" if "always on" in option else "-")
    for m in marks:
        ax.plot(m["requests"], m["monthly_cost"], "ko", markersize=5)
        ax.annotate(f"break-even\n{m['requests']:,.0f}/month", (m["requests"], m["monthly_cost"]),
                    textcoords="offset points", xytext=(6, -24), fontsize=8)
    if at:
        ax.axvline(at, color="grey", linewidth=0.8, linestyle=":", label=f"expected: {at:,.0f}/month")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests per month (log scale)")
    ax.set_ylabel("cost per month ($, log scale)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"${y:,.0f}"))
    ax.legend(fontsize=8)
    ax.set_title("Monthly cost by option")
    fig.tight_layout()
    return fig


def selective_curve(curve, target=None, chosen=None, ax=None, others=None):
    """Accuracy on the kept tickets against the share escalated.
    curve: [{"escalated", "accuracy_kept"}] (04's selective_curve of the fine-tune); target: accuracy line;
    chosen: the escalation share picked, marked; others: {name: curve} drawn beside it (00's cheap classifier:
    the routing 01 reads, so the two can be compared on one axis)."""
    fig, ax = _axes(ax, (5.5, 3.8))

    def points(c):
        return [(100 * p["escalated"], p["accuracy_kept"]) for p in c or () if p.get("accuracy_kept") is not None]

    pts = points(curve)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="fine-tuned (04)")
    for name, c in (others or {}).items():
        o = points(c)
        if o:
            ax.plot([p[0] for p in o], [p[1] for p in o], marker="s", linestyle="--", label=name)
    if not pts:
        ax.text(0.5, 0.5, "no selective curve: 04_evaluate has not run", transform=ax.transAxes, ha="center")
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:g}")
    if chosen is not None:
        ax.axvline(100 * chosen, color="black", linewidth=0.8, label=f"escalate {100 * chosen:.0f}%")
    ax.set_xlabel("tickets escalated to the hosted model (%)")
    ax.set_ylabel("accuracy on kept tickets (share)")
    ax.set_title("Selective prediction: answer the sure ones, escalate the rest")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def part_accuracy(systems, title="", ax=None):
    """Share of replies with each part of the format right, one group of bars per part and one bar per system.
    systems: {name: {part: share}} (the reply task's `fields`), in the order to draw."""
    fig, ax = _axes(ax, (7, 3.8))
    systems = {k: v for k, v in systems.items() if v}
    parts = list(dict.fromkeys(p for v in systems.values() for p in v))
    width = 0.8 / max(1, len(systems))
    for i, (name, v) in enumerate(systems.items()):
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(parts))]
        ax.bar(xs, [v.get(p, 0.0) for p in parts], width, label=name)
    ax.set_xticks(range(len(parts)), parts)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of replies with the part right")
    ax.set_title(title or "Each part of the reply: fine-tune against the base and the references")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def label_balance(counts, ax=None):
    """Rows per label per split. counts: {label: {"train": n, "heldout": n, "production": n}}."""
    fig, ax = _axes(ax, (8, 4))
    labels = sorted(counts, key=lambda label: -sum(counts[label].values()))
    splits = [s for s in ("train", "heldout", "production") if any(counts[label].get(s) for label in labels)]
    width = 0.8 / max(1, len(splits))
    for i, s in enumerate(splits):
        ax.bar([x + i * width for x in range(len(labels))], [counts[label].get(s, 0) for label in labels], width,
               label=s)
    ax.set_xticks([x + width * (len(splits) - 1) / 2 for x in range(len(labels))], labels, rotation=45, ha="right")
    ax.set_ylabel("rows")
    ax.set_title("label balance per split")
    ax.legend()
    fig.tight_layout()
    return fig


def length_histogram(lengths, max_seq_len, ax=None):
    """Token lengths of the chat-template rendering, with the MAX_SEQ_LEN cut marked."""
    fig, ax = _axes(ax)
    ax.hist(lengths, bins=40, color="tab:blue")
    ax.axvline(max_seq_len, color="tab:red", linestyle="--", label=f"MAX_SEQ_LEN = {max_seq_len}")
    ax.set_xlabel("tokens per example (chat template applied)")
    ax.set_ylabel("examples")
    ax.legend()
    fig.tight_layout()
    return fig


def loss_curve(log, ax=None):
    """Training loss per step and eval loss per evaluation, from the recorded training log."""
    fig, ax = _axes(ax)
    tr = [(r["step"], r["loss"]) for r in log if "loss" in r]
    ev = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r]
    if tr:
        ax.plot(*zip(*tr), label="train loss")
    if ev:
        ax.plot(*zip(*ev), "o-", label="eval loss")
    if tr or ev:   # log scale: the first steps (loss ~10 from a fresh head) would squash the rest
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats per trained token, log scale)")
    ax.legend()
    fig.tight_layout()
    return fig


def confusion(conf, title="", ax=None):
    """Confusion matrix (rows: true label, columns: predicted). conf: {"labels", "matrix"}."""
    fig, ax = _axes(ax, (6, 5))
    labels, m = conf["labels"], conf["matrix"]
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, v, ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _cell(v, decimals):
    """A table cell: floats to `decimals` places, or `decimals` significant digits below 1 (a learning rate of 2e-4
    or a price of $0.000694/s does not show as 0.0 or 0.001), containers as one readable line, never cut (the end of a
    cell is often its warning)."""
    if isinstance(v, float):
        return float(f"{v:.{decimals}g}") if 0 < abs(v) < 1 else round(v, decimals)
    if isinstance(v, (dict, list, tuple, set)):
        return ", ".join(f"{k}: {_cell(x, decimals)}" for k, x in v.items()) if isinstance(v, dict) else \
            ", ".join(str(_cell(x, decimals)) for x in v)
    return v if isinstance(v, (int, str, bool)) or v is None else str(v)


def table(obj, decimals=3, column="value"):
    """A result as a pandas DataFrame for a notebook to show instead of a dict/list repr: a dataclass or flat
    dict becomes one `column` indexed by name, a dict of dicts one row per key, a list of dicts one row each."""
    from dataclasses import asdict, is_dataclass

    import pandas as pd

    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, dict):  # a dict of configs reads as one row per config
        obj = {k: asdict(v) if is_dataclass(v) and not isinstance(v, type) else v for k, v in obj.items()}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return pd.DataFrame({column: ["not recorded" if obj is None else _cell(obj, decimals)]})
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        # one row per key, each column its own dtype: a count stays an int beside a rate
        return pd.DataFrame.from_dict({k: {c: _cell(x, decimals) for c, x in v.items()} for k, v in obj.items()},
                                      orient="index")
    if isinstance(obj, dict):
        return pd.DataFrame({column: {k: _cell(v, decimals) for k, v in obj.items()}})
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(v, dict) for v in obj):
        return pd.DataFrame([{k: _cell(x, decimals) for k, x in v.items()} for v in obj])
    return pd.DataFrame({column: [_cell(v, decimals) for v in obj]})


def settings(cfg, column="value"):
    """(table, sentence) of a config dataclass as a notebook shows it: the settings that differ from the class's own
    defaults (or have none) as a table, and one sentence naming the rest, at their defaults, so a reader sees what
    this run chose without scrolling past every field."""
    from dataclasses import MISSING, fields

    import pandas as pd

    chosen, default = {}, []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        d = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING
                                                          else MISSING)
        if d is MISSING or value != d:
            chosen[f.name] = _cell(value, 3)
        else:
            default.append(f"{f.name}={_cell(value, 3)}")
    said = (f"{len(chosen)} setting(s) changed from the defaults{' (the table)' if chosen else ''}; "
            f"{len(default)} at their defaults: {', '.join(default)}.")
    return (pd.DataFrame({column: chosen}) if chosen else None), said


def first_of_each(tables, names, key="check"):
    """One table row per check of `names` present in `tables` ({check: [row, ...]}): how many rows it found and
    the first of them as one line ("field: value; ..."), so a reader sees every check and an example of each at a
    glance instead of a table per check. Checks absent from `tables` (another task's) are left out."""
    import pandas as pd

    out = []
    for name in names:
        rows = tables.get(name)
        if rows is None:
            continue
        first = "; ".join(f"{k}: {_cell(v, 3)}" for k, v in rows[0].items() if k != key) if rows else ""
        out.append({key: name, "found": len(rows), "the first": first})
    # the count in the index, so the long example is the only column: pandas does not wrap it onto a second block
    return pd.DataFrame(out).set_index([key, "found"]) if out else None


def save(fig, run_dir, name):
    """Write `fig` as <run_dir>/plots/<name>.png (the ship report embeds every plot there); returns the path."""
    from pathlib import Path

    path = Path(run_dir) / "plots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def learning_curve(record, ax=None):
    """Macro-F1 on the held-out rows against the training rows used, per system (colour) and curated (solid, circles)
    or uncurated (dashed, squares, drawn a little to the right so the intervals stay apart), with 95% intervals;
    `record`: 04's learning_curve (curve.record)."""
    fig, ax = _axes(ax, (6, 4))
    colours, sizes = {}, set()
    for system, points in (record or {}).get("systems", {}).items():
        for kind, style, marker, shift in (("curated", "-", "o", 1.0), ("uncurated", "--", "s", 1.04)):
            pts = sorted((p for p in points if p["kind"] == kind), key=lambda p: p["size"])
            if not pts:
                continue
            sizes |= {p["size"] for p in pts}
            x = [p["size"] * shift for p in pts]
            y = [p["macro_f1"] for p in pts]
            err = [[v - p["macro_f1_ci"][0] for v, p in zip(y, pts)], [p["macro_f1_ci"][1] - v for v, p in zip(y, pts)]]
            line = ax.errorbar(x, y, yerr=err, linestyle=style, marker=marker, capsize=3, label=f"{system}, {kind}",
                               color=colours.get(system))
            colours.setdefault(system, line[0].get_color())
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes), [str(s) for s in sorted(sizes)])
    ax.minorticks_off()
    ax.set_xlabel("training rows (log scale)")
    ax.set_ylabel("held-out macro-F1")
    ax.set_title("How many examples are enough: curated against uncurated rows")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
