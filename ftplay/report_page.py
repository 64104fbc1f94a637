"""The ship report shown: the checklist as text lines (`ftplay report`, the run's printed summary) and as
a self-contained HTML page (ship_report.html)."""
import html
from pathlib import Path

from . import rundir, stages


def reason_line(r):
    """'text  [record: field]' for a reason of `why`."""
    return f"{r['text']}  [{r['record']}: {r['field']}]"


MARK = {"done": "[x]", "no": "[!]", "failed": "[!]", "not run": "[ ]", "not proven": "[?]"}


def format_text(report):
    """The checklist as short text lines: for each task, one line per item, then ship or not."""
    tasks = report.get("tasks") or {None: {"items": report["items"], "ship": report["ship"]}}
    lines = []
    for task, t in tasks.items():
        head = "What I'd ship" + (f" for {task} ({stages.TASKS.get(task, '')}; adapter '{t.get('adapter_name')}', "
                                  f"records in {t.get('dir')})" if task and len(tasks) > 1 else "") + ":"
        lines.append(head)
        for it in t["items"]:
            lines.append(f"{MARK.get(it['status'], '[?]')} {it['title']}: {it['status']}  "
                         f"({', '.join(s + '.json' for s in it['evidence'])})")
            lines.append(f"      {it['summary']}")
        if report.get("route") and task in (None, next(iter(tasks))):
            lines.append(f"route the numbers favour: {report['route']}")
        lines += [f"note: {n}" for n in t["ship"]["notes"]]
        lines += _verdict_lines(task if len(tasks) > 1 else None, t["ship"])
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _verdict_lines(task, ship):
    return ([f"ship{' ' + task if task else ''}: {_answer_of(ship)}"]
            + [f"  - [{r['effect']}] {reason_line(r)}" for r in ship["reasons"]])


def format_verdicts(report):
    """Each task's verdict and its reasons, as format_text ends each task: what 06 prints last."""
    tasks = report.get("tasks") or {None: {"items": report["items"], "ship": report["ship"]}}
    return "\n".join(line for task, t in tasks.items()
                     for line in _verdict_lines(task if len(tasks) > 1 else None, t["ship"]))


def _answer_of(ship):
    return ship.get("verdict") or ("YES" if ship.get("ship") else "NO")


CSS = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\n"
       "table{border-collapse:collapse;width:100%}"
       "td,th{border-bottom:1px solid #ddd;padding:.5rem;vertical-align:top;text-align:left}\n"
       ".done{color:#17692e}.no,.failed{color:#a3121b}.not-run,.not-proven{color:#8a5a00}"
       ".verdict{font-size:1.4rem;padding:.8rem;border-radius:.4rem}\n"
       ".yes{background:#e3f4e8}.nay{background:#fbe4e6}.unproven{background:#fdf3dc}code{font-size:.85rem}"
       "small{color:#555}\n"
       "figure{margin:1rem 0}img{max-width:100%}")


def html_page(report):
    """A self-contained HTML page (inline CSS, escaped text, no scripts): a section per task."""
    e = html.escape
    tasks = report.get("tasks") or {None: {"items": report["items"], "ship": report["ship"]}}
    sections = []
    for task, t in tasks.items():
        ship, rows = t["ship"], []
        for it in t["items"]:
            extra = "".join(f"<br><small>{e(x)}</small>"
                            for x in [reason_line(p) for p in it["problems"]] + it["notes"])
            rows.append(f"<tr><td class=\"{e(it['status'].replace(' ', '-'))}\"><b>{e(it['status'])}</b></td>"
                        f"<td><b>{e(it['title'])}</b><br>{e(it['summary'])}{extra}</td>"
                        f"<td><code>{'<br>'.join(e(s + '.json') for s in it['evidence'])}</code></td></tr>")
        reasons = "".join(f"<li>{e(x)}</li>" for x in [f"[{r['effect']}] {reason_line(r)}" for r in ship["reasons"]]
                          + [f"note: {n}" for n in ship["notes"]])
        answer = _answer_of(ship)
        css = {"YES": "yes", "NO": "nay"}.get(answer, "unproven")
        title = (f"<h2>{e(task)}: {e(stages.TASKS.get(task, ''))} "
                 f"(adapter <code>{e(str(t.get('adapter_name')))}</code>)</h2>" if task and len(tasks) > 1 else "")
        sections.append(f"{title}<p class=\"verdict {css}\">Ship{' ' + e(task) if title else ''}: "
                        f"<b>{e(answer)}</b></p>"
                        f"<table><tr><th>status</th><th>item</th><th>evidence</th></tr>{''.join(rows)}</table>"
                        f"<h3>Why</h3><ul>{reasons}</ul>")
    route = f"<p>Route the numbers favour: {e(report['route'])}</p>" if report.get("route") else ""
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Ship report: {e(report['run_dir'])}</title>"
            f"<style>{CSS}</style></head><body><h1>What I'd ship</h1><p>Run <code>{e(report['run_dir'])}</code>; "
            "every figure is read from the run's JSON records.</p>"
            f"{''.join(sections)}{route}{_figures(report)}</body></html>\n")


def _figures(report):
    """The plots the notebooks saved (<run_dir>/plots/*.png), inline as base64 data URIs: the page stays one file."""
    import base64

    out = []
    for rel in report.get("plots") or []:
        p = Path(report["run_dir"]) / rel
        if p.is_file():
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            name = html.escape(p.stem)
            out.append(f"<figure><img alt=\"{name}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{name} ({html.escape(rel)})</figcaption></figure>")
    return f"<h2>Plots</h2>{''.join(out)}" if out else ""


def write_html(run_dir, report, path=None):
    """Write the page to `path` (default <run_dir>/ship_report.html); returns its path."""
    return rundir.write_text(path or Path(run_dir) / "ship_report.html", html_page(report))
