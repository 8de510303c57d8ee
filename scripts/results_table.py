#!/usr/bin/env python3
"""Combine results/<task>/results.json (written by scripts/results.sh) into the
Houlsby-et-al.-style table of docs/results.md: one row per method, the headline dev
metric of each task (x100), their average, and the trainable-parameter percentage."""
import json
import os
import sys

TASKS = [("rte", "RTE (acc)"), ("mrpc", "MRPC (F1/acc)"), ("stsb", "STS-B (P/S)"), ("cola", "CoLA (MCC)"), ("sst2", "SST-2 (acc)")]
METHODS = ["full", "houlsby", "houlsby64", "pfeiffer", "lora", "prefix_tuning", "prompt_tuning", "head"]


def main(root: str) -> int:
    runs = {}
    for task, _ in TASKS:
        # results/<task>/ and any results/<task>-<extra>/ (a method run on its own later);
        # a compare still running has no results.json yet: read its finished methods.
        for folder in sorted(os.listdir(root)):
            if not (folder == task or folder.startswith(task + "-")):
                continue
            path = os.path.join(root, folder, "results.json")
            if os.path.exists(path):
                rows = json.load(open(path))
            else:
                rows = [dict(json.load(open(os.path.join(root, folder, m, "results.json"))), method=m)
                        for m in sorted(os.listdir(os.path.join(root, folder)))
                        if os.path.exists(os.path.join(root, folder, m, "results.json"))]
            for r in rows:
                runs[(task, r["method"])] = r
    header = ["method", "trainable %"] + [name for _, name in TASKS] + ["average"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for m in METHODS:
        cells, scores, percent = [], [], None
        for task, _ in TASKS:
            r = runs.get((task, m))
            if not r or "error" in r:
                cells.append("-")
                continue
            score = 100 * r["best"][r["headline"]]
            scores.append(score)
            percent = r["trainable_percent"]
            cells.append(f"{score:.1f}")
        average = f"{sum(scores) / len(scores):.1f}" if len(scores) == len(TASKS) else "-"
        print(f"| {m} | {percent:.3f}% | " + " | ".join(cells) + f" | {average} |" if percent is not None else f"| {m} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results"))
