"""The Session from Python: training, predict, embed, PEFT folders, generate."""
import json
import subprocess

import numpy as np
import pytest

from conftest import GOLDEN, MINILM, STORIES, need


def accuracy(labels, dev):
    return float(np.mean(labels == dev.labels.astype(np.int64)))


def test_compositions_by_name(minilm, sst2, trained):
    texts = ["a gripping film", "dull"]
    both = minilm.embed(texts, adapter="parallel(sst2, untrained)")
    assert both.shape[0] == 4  # one row per input and branch, branch-major
    np.testing.assert_allclose(both[:2], minilm.embed(texts, adapter="sst2"), atol=2e-6)
    np.testing.assert_allclose(both[2:], minilm.embed(texts, adapter="untrained"), atol=2e-6)
    labels, _ = minilm.predict(sst2[1].inputs()[:3], adapter="parallel(sst2, stack(untrained, sst2))")
    assert labels.shape == (6,)
    with pytest.raises(Exception, match="missing '\\)'"):
        minilm.embed(texts, adapter="stack(sst2")


def test_plugins_lists_the_shipped_methods(graft):
    found = graft.plugins()
    names = {p["name"] for p in found}
    assert {"lora", "head", "full"} <= names
    lora = next(p for p in found if p["name"] == "lora")
    assert "LORA" in lora["peft_types"] and "r" in lora["config_schema"]["properties"]
    plugins, failures, search = graft.plugins(failures=True)
    assert search, "the search path is empty"


def test_training_beats_the_untrained_adapter(minilm, sst2, trained):
    train, dev = sst2
    summary, out = trained
    assert summary["steps"] == 25 and summary["headline"] == "accuracy"
    [point] = summary["evals"]  # one epoch: one evaluation, at its end
    assert point["step"] == 25 and point["scores"] == summary["last"]
    assert 0 < point["train_loss"] < 5
    assert (out / "best" / "adapter_config.json").exists()
    untrained, _ = minilm.predict(dev.inputs(), adapter="untrained", max_length=64)
    labels, probs = minilm.predict(dev.inputs(), adapter="sst2", max_length=64)
    assert labels.dtype == np.int64 and probs.dtype == np.float32 and probs.shape == (200, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    before, after = accuracy(untrained, dev), accuracy(labels, dev)
    print(f"SST-2 dev accuracy on 200 rows: untrained {before:.3f}, trained {after:.3f}")
    assert after > before + 0.1
    assert after == pytest.approx(summary["best_score"], abs=1e-9) or summary["best_step"] != summary["steps"]


def test_results_own_their_buffers_without_copies(minilm, trained):
    labels, probs = minilm.predict(["fine", "awful"], adapter="sst2")
    for a in (labels, probs):
        assert a.base is not None and a.flags["C_CONTIGUOUS"] and not a.flags["OWNDATA"]
    h = minilm.hidden_states(["a gripping film"])
    assert h.base is not None and h.shape[0] == 1 and h.shape[2] == 384


def test_per_row_adapters_equal_one_call_per_adapter(minilm, sst2, trained):
    _, dev = sst2
    rows = dev.inputs()[:12]
    names = ["sst2", "untrained", "sst2", "untrained"] * 3
    mixed_labels, mixed_probs = minilm.predict(rows, adapter=names)
    for name in ("sst2", "untrained"):
        idx = [i for i, n in enumerate(names) if n == name]
        labels, probs = minilm.predict([rows[i] for i in idx], adapter=name)
        np.testing.assert_array_equal(mixed_labels[idx], labels)
        np.testing.assert_allclose(mixed_probs[idx], probs, atol=2e-6)
    # embeddings: None is the bare backbone for its row
    texts = ["a gripping film", "dull", "a gripping film"]
    mixed = minilm.embed(texts, adapter=["sst2", None, None])
    np.testing.assert_allclose(mixed[0], minilm.embed(texts[:1], adapter="sst2")[0], atol=2e-6)
    np.testing.assert_allclose(mixed[1:], minilm.embed(texts[1:]), atol=2e-6)


def test_embed_equals_the_graft_command(minilm, trained, graft_cli):
    _, out = trained
    texts = ["A man is playing a guitar.", "The weather is lovely today."]
    for adapter_args, selection in (([], None), (["--adapter", str(out / "best")], "best")):
        if selection:
            minilm.load_adapter("best", out / "best")
        got = minilm.embed(texts, adapter=selection)
        assert got.dtype == np.float32 and got.shape == (2, 384)
        assert got.base is not None and not got.flags["OWNDATA"]
        run = subprocess.run([graft_cli, "embed", "--backbone", str(MINILM), *adapter_args, *texts],
                             capture_output=True, text=True, check=True)
        want = np.array([json.loads(line) for line in run.stdout.strip().splitlines()], dtype=np.float32)
        np.testing.assert_allclose(got, want, atol=2e-6)  # the command prints 6 decimals
    minilm.unload_adapter("best")


def test_a_peft_lora_gives_peft_outputs(graft):
    backbone = need(GOLDEN / "backbones/tiny_bert")
    ref = json.loads((backbone / "reference.json").read_text())
    peft = json.loads((GOLDEN / "peft_lora/tiny_bert_lora/reference.json").read_text())
    s = graft.load(backbone)
    s.load_adapter("peft", GOLDEN / "peft_lora/tiny_bert_lora")
    assert s.adapters()[0]["method"] == "lora"
    # Row 1 of the fixture is a single text (hidden_states takes texts, not pairs).
    text = ref["texts"][1]["text"]
    shape = peft["last_hidden_state"]["shape"]
    want = np.array(peft["last_hidden_state"]["data"], dtype=np.float32).reshape(shape)[1]
    mask = np.array(ref["attention_mask"]["data"]).reshape(shape[:2])[1].astype(bool)
    got = s.hidden_states([text], adapter="peft")[0]
    assert got.shape == (mask.sum(), shape[2])
    np.testing.assert_allclose(got, want[mask], atol=peft["tolerance"]["f32_abs"])
    bare = s.hidden_states([text])[0]
    assert np.abs(bare - got).max() > 0.1  # the adapter changes the outputs


def test_merge_adapters_cat_with_one_zero_is_the_first_adapter(graft, tmp_path):
    backbone = need(GOLDEN / "backbones/tiny_bert")
    s = graft.load(backbone)
    for name in ("ad_a", "ad_c"):
        s.load_adapter(name, GOLDEN / "peft_merge" / name)
    # cat keeps each input's update whole: weights (1, 0) give ad_a's outputs back.
    s.merge_adapters("m", [("ad_a", 1.0), ("ad_c", 0.0)], combination="cat")
    config = s.adapter("m")["config"]
    assert (json.loads(config) if isinstance(config, str) else config)["r"] == 6
    text = ["the quick brown fox"]
    np.testing.assert_allclose(s.hidden_states(text, adapter="m")[0], s.hidden_states(text, adapter="ad_a")[0], atol=1e-5)
    s.save_adapter("m", tmp_path / "m")
    assert (tmp_path / "m" / "adapter_model.safetensors").exists()
    with pytest.raises(graft.ConfigError, match="needs a density"):
        s.merge_adapters("bad", [("ad_a", 0.5), ("ad_c", 0.5)], combination="ties_svd")


def test_export_merged_folds_the_adapter_into_a_plain_backbone(graft, tmp_path):
    backbone = need(GOLDEN / "backbones/tiny_bert")
    s = graft.load(backbone)
    s.load_adapter("peft", GOLDEN / "peft_lora/tiny_bert_lora")
    r = s.export_merged("peft", tmp_path / "merged")
    assert r["method"] == "lora" and r["weights_dtype"] == "F32" and len(r["changed"]) == 10
    assert "config.json" in r["files"] and (tmp_path / "merged/model.safetensors").exists()
    texts = ["hello world", "a b c"]
    merged = graft.load(tmp_path / "merged")
    for want, got in zip(s.hidden_states(texts, adapter="peft"), merged.hidden_states(texts)):
        np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(graft.ConfigError, match="prefix_tuning.*cannot be folded"):
        s.add_adapter("prefix", "prefix_tuning")
        s.export_merged("prefix", tmp_path / "prefix")
    assert not (tmp_path / "prefix").exists()


def test_generate_streams_pieces_that_add_up_to_the_one_shot_text(graft):
    s = graft.load(need(STORIES) / "stories260K.bin")
    whole = s.generate("Once upon a time", max_tokens=40, stream=False)
    pieces = list(s.generate("Once upon a time", max_tokens=40))
    assert len(pieces) > 5 and "".join(pieces) == whole and whole
    # sampling with a seed is reproducible too
    a = "".join(s.generate("Lily", max_tokens=20, temperature=0.8, top_p=0.9, seed=3))
    assert a == s.generate("Lily", max_tokens=20, temperature=0.8, top_p=0.9, seed=3, stream=False)
    # an abandoned generator stops the C++ side; the session is usable at once
    g = s.generate("Once upon a time", max_tokens=500)
    first = [next(g) for _ in range(3)]
    g.close()
    assert "".join(first) == whole[: len("".join(first))]
    assert s.generate("Once upon a time", max_tokens=40, stream=False) == whole
    # adapters work for generation too
    s.add_adapter("lora", "lora", r=4)
    assert "".join(s.generate("Once", adapter="lora", max_tokens=10)) == s.generate("Once", max_tokens=10, stream=False)
