#!/usr/bin/env python3
"""scripts/results_table.py on synthetic compare reports: the five-task averages, which
labels get 3 seeds (full, the best adapter under 3% and under 1%; baselines never), the
bars' verdicts, the 'edge' mark on a rate its search did not bracket, the train loss at
the best evaluation, and --labels."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "results_table.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import results_table as rt  # noqa: E402

PERCENT = {"full": 100.0, "houlsby64": 2.64, "lora": 0.33, "pfeiffer": 0.5, "head": 0.01}
# seed-1 dev accuracy per label, the same on every task: averages are these values ×100.
SCORE = {"full": 0.70, "houlsby64": 0.698, "lora": 0.69, "pfeiffer": 0.66, "head": 0.60}


def row(label, score, lr=1e-3, sweep=None, seeds=None):
    r = {"method": label, "headline": "accuracy", "best": {"accuracy": score}, "lr": lr,
         "trainable_percent": PERCENT[label], "train_rows": 640, "budget": {"batch_size": 32},
         "best_step": 40, "steps": 100, "early_stopped": True, "train_seconds": 120}
    if sweep:
        r["lr_sweep"] = [{"lr_scale": s, "lr": lr * s / chosen, "score": v} for s, v, chosen in sweep]
    if seeds:
        mean = sum(seeds) / len(seeds)
        std = (sum((x - mean) ** 2 for x in seeds) / (len(seeds) - 1)) ** 0.5
        r["seed_summary"] = {"n": len(seeds), "mean": {"accuracy": mean}, "std": {"accuracy": std}}
    return r


def write_reports(root, rows_for):
    for task, _ in rt.TASKS:
        os.makedirs(os.path.join(root, task))
        with open(os.path.join(root, task, "results.json"), "w") as f:
            json.dump(rows_for(task), f)


class ResultsTable(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_choose_takes_full_and_the_best_adapter_under_each_bar(self):
        write_reports(self.root, lambda task: [row(label, s) for label, s in SCORE.items()])
        runs = rt.load(self.root)
        avg = rt.averages(runs)
        self.assertAlmostEqual(avg["houlsby64"][0], 69.8)
        # lora (69.0, 0.33%) beats pfeiffer (66.0, 0.5%) under 1%; head is a baseline.
        self.assertEqual(rt.choose(runs), ["full", "houlsby64", "lora"])
        text = rt.tables(runs)
        self.assertIn("houlsby64 (2.64%) averages 69.8 against full fine-tuning's 70.0 (-0.2)", text)
        self.assertIn("it meets it", text)
        self.assertIn("**Best under 1%:** lora (0.33%) averages 69.0", text)

    def test_a_row_missing_a_task_has_no_average_and_is_not_chosen(self):
        write_reports(self.root, lambda task: [row(l, s) for l, s in SCORE.items() if not (l == "lora" and task == "sst2")])
        runs = rt.load(self.root)
        self.assertNotIn("lora", rt.averages(runs))
        self.assertEqual(rt.choose(runs), ["full", "houlsby64", "pfeiffer"])

    def test_three_seed_rows_show_mean_and_std_and_stay_chosen(self):
        def rows(task):
            out = [row(l, s) for l, s in SCORE.items()]
            out[3] = row("pfeiffer", 0.66, seeds=[0.65, 0.66, 0.67])
            return out
        write_reports(self.root, rows)
        runs = rt.load(self.root)
        self.assertEqual(rt.kept(runs), ["pfeiffer"])
        self.assertIn("pfeiffer", rt.choose(runs))
        self.assertIn("66.0 ± 1.0", rt.tables(runs))

    def test_a_rate_that_wins_at_an_end_of_its_grid_is_marked(self):
        def rows(task):
            return [row("full", 0.7, lr=3e-5, sweep=[(0.3, 0.70, 0.3), (1, 0.65, 0.3), (3, 0.60, 0.3)]),
                    row("houlsby64", 0.698, lr=1e-3, sweep=[(0.3, 0.60, 1), (1, 0.698, 1), (3, 0.62, 1)])]
        write_reports(self.root, rows)
        text = rt.tables(rt.load(self.root))
        self.assertIn("| full | 3e-05 (edge) | ×0.3 70.0 · ×1 65.0 · ×3 60.0 |", text)
        self.assertIn("| houlsby64 | 0.001 | ×0.3 60.0 · ×1 69.8 · ×3 62.0 |", text)
        self.assertIn("did not bracket it", text)

    def test_the_train_loss_at_the_best_evaluation_is_shown_where_the_curve_was_kept(self):
        def rows(task):
            curved = row("full", 0.7)  # best_step 40, of evaluations at 20, 40, 60
            curved["evals"] = [{"step": 20 * i, "train_loss": loss, "dev": {"accuracy": 0.6}}
                               for i, loss in ((1, 0.61), (2, 0.0123), (3, 0.001))]
            return [curved, row("houlsby64", 0.698)]
        write_reports(self.root, rows)
        text = rt.tables(rt.load(self.root))
        self.assertIn("| best at epoch | train loss there |", text)
        self.assertIn("| 2.00 | 0.012 | 5.00 |", text)  # full: epoch 2, the loss of evaluation 2
        self.assertIn("| 2.00 | - | 5.00 |", text)  # houlsby64: no curve kept

    def test_labels_lists_every_label_in_report_order(self):
        write_reports(self.root, lambda task: [row(l, s) for l, s in SCORE.items()])
        out = subprocess.run([sys.executable, SCRIPT, "--results", self.root, "--labels"], check=True,
                             capture_output=True, text=True).stdout.strip()
        self.assertEqual(out, ",".join(SCORE))


if __name__ == "__main__":
    unittest.main()
