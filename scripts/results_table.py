#!/usr/bin/env python3
"""docs/results.md's fidelity tables, generated from the `graft compare` reports that
scripts/results.sh writes (results/<task>/results.json, one row per method label).

  results_table.py                    print the tables
  results_table.py --write FILE       replace FILE's generated block (between the markers)
  results_table.py --choose           the labels that get 3 seeds: full, the best
                                      adapters under 3% and under 1% of the parameters
                                      by five-task average of the seed-1 runs, and those
                                      that ran 3 seeds already (comma-separated)
  results_table.py --choose --kept    only those that ran 3 seeds already
  results_table.py --labels           the labels in the reports, in order
"""
import argparse
import json
import math
import os
import sys

TASKS = [("rte", "RTE (acc)"), ("mrpc", "MRPC (F1/acc)"), ("stsb", "STS-B (P/S)"), ("cola", "CoLA (MCC)"),
         ("sst2", "SST-2 (acc)")]
BASELINES = {"full", "head"}
BEGIN, END = "<!-- results_table.py: begin -->", "<!-- results_table.py: end -->"


def load(root):
    """{task: {label: row}} from each task's compare report."""
    out = {}
    for task, _ in TASKS:
        path = os.path.join(root, task, "results.json")
        if os.path.exists(path):
            with open(path) as f:
                out[task] = {r["method"]: r for r in json.load(f) if "error" not in r}
    return out


def seed1(row):
    """The seed-1 run's headline dev metric ×100 (what the rate and the 3-seed rows are chosen on)."""
    return 100 * row["best"][row["headline"]]


def score(row):
    """(mean ×100, std ×100, seeds) of the row's headline dev metric."""
    h = row["headline"]
    if "seed_summary" in row:
        s = row["seed_summary"]
        return 100 * s["mean"][h], 100 * s["std"][h], s["n"]
    return 100 * row["best"][h], 0.0, 1


def labels_in_order(runs):
    seen = []
    for task, _ in TASKS:
        for label in runs.get(task, {}):
            if label not in seen:
                seen.append(label)
    return seen


def averages(runs, of=lambda row: score(row)[0]):
    """{label: (average ×100, trainable %)} for labels with all five tasks."""
    out = {}
    for label in labels_in_order(runs):
        rows = [runs.get(task, {}).get(label) for task, _ in TASKS]
        if all(rows):
            out[label] = (sum(of(r) for r in rows) / len(rows), max(r["trainable_percent"] for r in rows))
    return out


def kept(runs):
    """Labels with a 3-seed row in any report."""
    return [label for label in labels_in_order(runs)
            if any(runs[t].get(label, {}).get("seed_summary", {}).get("n", 1) > 1 for t in runs)]


def choose(runs):
    avg = averages(runs, seed1)
    picks = ["full"] if "full" in avg else []
    for bar in (3.0, 1.0):
        adapters = [(a, label) for label, (a, pct) in avg.items() if label not in BASELINES and pct < bar]
        if adapters:
            best = max(adapters)[1]
            if best not in picks:
                picks.append(best)
    return picks + [label for label in kept(runs) if label not in picks]


def epochs(row, steps):
    b = row.get("budget", {})
    per_epoch = math.ceil(math.ceil(row["train_rows"] / b.get("batch_size", 32)) / b.get("grad_accumulation", 1))
    return steps / per_epoch


def train_loss_at_best(row):
    """The mean training loss over the epoch (evaluation interval) that ended at the best
    step: near zero where the run fits its training set, high where it underfits. '-' for
    runs from before results.json kept the learning curve."""
    at = [e["train_loss"] for e in row.get("evals", []) if e["step"] == row["best_step"]]
    return f"{at[0]:.3f}" if at else "-"


def edge_mark(row, sweep):
    """' (edge)' when the chosen rate is the lowest or highest of the rates that ran."""
    ran = [t for t in sweep if "score" in t]
    if len(ran) < 2:
        return ""
    chosen = min(ran, key=lambda t: abs(t["lr"] - row["lr"]))
    return " (edge)" if chosen is ran[0] or chosen is ran[-1] else ""


def tables(runs):
    lines = []
    avg = averages(runs)
    header = ["method", "trainable %"] + [name for _, name in TASKS] + ["average", "seeds"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for label in labels_in_order(runs):
        cells, seeds, percent = [], set(), None
        for task, _ in TASKS:
            row = runs.get(task, {}).get(label)
            if not row:
                cells.append("-")
                continue
            mean, std, n = score(row)
            seeds.add(n)
            percent = row["trainable_percent"]
            cells.append(f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}")
        average = f"{avg[label][0]:.1f}" if label in avg else "-"
        lines.append(f"| {label} | {percent:.3f}% | " + " | ".join(cells) + f" | {average} | {'/'.join(map(str, sorted(seeds)))} |")
    lines.append("")
    lines.append("Each cell: the best dev evaluation of the run (×100) at the learning rate chosen on dev; "
                 "mean ± sample standard deviation where the row ran 3 seeds. The average is over the five tasks.")
    lines.append("")
    if "full" in avg:
        full = avg["full"][0]
        for bar, margin in ((3.0, 0.5), (1.0, 1.0)):
            adapters = [(a, label, pct) for label, (a, pct) in avg.items() if label not in BASELINES and pct < bar]
            if not adapters:
                continue
            a, label, pct = max(adapters)
            verdict = "meets" if a >= full - margin else "does not meet"
            lines.append(f"- **Best under {bar:g}%:** {label} ({pct:.2f}%) averages {a:.1f} against full fine-tuning's "
                         f"{full:.1f} ({a - full:+.1f}); the bar is full − {margin:g}: it {verdict} it.")
        lines.append("")
    for task, name in TASKS:
        if task not in runs:
            continue
        lines += [f"### {name}", "",
                  "| method | lr chosen | dev at lr × scale (seed 1) | best at epoch | train loss there | epochs run | stopped early | train time |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, row in runs[task].items():
            # Every scale tried, lowest first (--lr-extend adds steps past a winning edge).
            sweep = sorted(row.get("lr_sweep", []), key=lambda t: t["lr_scale"])
            tried = " · ".join(f"×{t['lr_scale']:.3g} " + (f"{100 * t['score']:.1f}" if "score" in t else "failed") for t in sweep)
            early = "yes" if row.get("early_stopped") else "no"
            lines.append(f"| {label} | {row['lr']:.3g}{edge_mark(row, sweep)} | {tried} | {epochs(row, row['best_step']):.2f} | "
                         f"{train_loss_at_best(row)} | {epochs(row, row['steps']):.2f} | {early} | {row['train_seconds'] / 60:.0f} min |")
        lines.append("")
    if any(task in runs for task, _ in TASKS):
        lines += ["*Train loss there*: the mean training loss over the evaluation interval that ended at the best "
                  "evaluation — near 0 where a method fits its training set, high where it underfits; '-' where the "
                  "run predates results.json keeping the learning curve.", ""]
    if any(edge_mark(row, sorted(row.get("lr_sweep", []), key=lambda t: t["lr_scale"])) for t in runs.values() for row in t.values()):
        lines += ["A rate marked *edge* won at an end of its grid: the search did not bracket it, and a "
                  "rate beyond may score higher.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="the folder scripts/results.sh writes")
    parser.add_argument("--write", metavar="FILE", help="replace FILE's generated block")
    parser.add_argument("--choose", action="store_true", help="print the labels that get 3 seeds")
    parser.add_argument("--kept", action="store_true", help="with --choose: only the labels that ran 3 seeds already")
    parser.add_argument("--labels", action="store_true", help="print the labels in the reports, in order")
    args = parser.parse_args()
    runs = load(args.results)
    if args.choose:
        print(",".join(kept(runs) if args.kept else choose(runs)))
        return 0
    if args.labels:
        print(",".join(labels_in_order(runs)))
        return 0
    text = tables(runs)
    if not args.write:
        sys.stdout.write(text)
        return 0
    doc = open(args.write).read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"results_table.py: {args.write} has no '{BEGIN}' ... '{END}' block to replace")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    tmp = args.write + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + BEGIN + "\n" + text + END + tail)
    os.replace(tmp, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
