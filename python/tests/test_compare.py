"""graft.compare: every method through Session.train in this process, one row each, in
the shape pandas.DataFrame takes."""
import pandas as pd

from conftest import MINILM, SST2, need


def test_compare_returns_rows_for_a_dataframe(graft, tmp_path):
    rows = graft.compare(need(MINILM), task="sst2", train_file=need(SST2 / "train.tsv"), dev_file=SST2 / "dev.tsv",
                         methods=["head", ("lora", {"r": 4})], train_rows=32, dev_rows=16, epochs=1, batch_size=16,
                         max_length=32, output=tmp_path, progress=False)
    df = pd.DataFrame(rows)
    assert list(df["method"]) == ["head", 'lora:{"r": 4}']
    assert set(df.columns) >= {"method", "trainable_parameters", "trainable_percent", "metric", "best_score", "seconds"}
    assert (df["metric"] == "accuracy").all() and df["best_score"].between(0, 1).all()
    head, lora = df["trainable_parameters"]
    assert 0 < head < lora and df["trainable_percent"].iloc[1] < 1
    assert (df["steps"] == 2).all() and (df["seconds"] > 0).all()


def test_compare_with_seeds_keeps_every_run_and_groups_to_mean_and_std(graft, tmp_path):
    kw = dict(task="sst2", train_file=need(SST2 / "train.tsv"), dev_file=SST2 / "dev.tsv", methods=["lora"],
              train_rows=32, dev_rows=16, epochs=1, batch_size=16, max_length=32, output=tmp_path, progress=False)
    rows = graft.compare(need(MINILM), seeds=[1, 2, 3], **kw)
    df = pd.DataFrame(rows)
    assert list(df["seed"]) == [1, 2, 3]
    for r in rows:
        assert (tmp_path / "0-lora" / f"seed-{r['seed']}" / "best" / "adapter_model.safetensors").exists()
    # Different seeds start from different weights, so they are different runs.
    files = [(tmp_path / "0-lora" / f"seed-{s}" / "best" / "adapter_model.safetensors").read_bytes() for s in (1, 2, 3)]
    assert files[0] != files[1] != files[2]
    stats = df.groupby("method")["best_score"].agg(["mean", "std"])
    assert abs(stats["mean"].iloc[0] - df["best_score"].mean()) < 1e-12
    # Called again: every run is read back as finished, none trains again.
    again = graft.compare(need(MINILM), seeds=[1, 2, 3], **kw)
    assert [r["best_score"] for r in again] == [r["best_score"] for r in rows]
