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
