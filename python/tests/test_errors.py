"""graft's errors as Python exceptions: the class mirrors graft/error.h, the message
names the file or key, .hint carries graft's hint."""
import pytest

from conftest import GOLDEN


def test_the_exception_classes_mirror_graft_errors(graft):
    for name in ("IoError", "FormatError", "ConfigError", "ShapeError", "BackendError", "PluginError"):
        cls = getattr(graft, name)
        assert issubclass(cls, graft.Error) and cls.__module__ == "graft"
    assert issubclass(graft.Error, RuntimeError)


def test_an_unknown_method(minilm, graft):
    with pytest.raises(graft.Error) as e:
        minilm.add_adapter("x", "no-such-method")
    assert type(e.value) in (graft.PluginError, graft.ConfigError)
    assert "no-such-method" in str(e.value) and e.value.message
    assert "x" not in minilm.adapter_names()


def test_an_unknown_config_key(minilm, graft):
    with pytest.raises(graft.ConfigError) as e:
        minilm.add_adapter("x", "lora", rank_typo=8)
    assert "rank_typo" in str(e.value)
    with pytest.raises(graft.ConfigError) as e:
        minilm.add_adapter("x", "lora", r="eight")
    assert "'r'" in str(e.value) or " r " in str(e.value) or "r:" in str(e.value) or ".r" in str(e.value)


def test_a_missing_adapter_folder(minilm, graft, tmp_path):
    missing = tmp_path / "no-such-adapter"
    with pytest.raises((graft.IoError, graft.ConfigError)) as e:
        minilm.load_adapter("x", missing)
    assert str(missing) in str(e.value)


def test_a_malformed_adapter_config(minilm, graft, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": ')
    (folder / "adapter_model.safetensors").write_bytes(
        (GOLDEN / "peft_lora/tiny_bert_lora/adapter_model.safetensors").read_bytes())
    with pytest.raises(graft.FormatError) as e:
        minilm.load_adapter("x", folder)
    assert "adapter_config.json" in str(e.value)


def test_a_missing_data_file_and_a_bad_train_option(minilm, graft, tmp_path):
    with pytest.raises(graft.IoError) as e:
        graft.read_task_data("sst2", tmp_path / "nope.tsv")
    assert "nope.tsv" in str(e.value)
    with pytest.raises(graft.ConfigError) as e:
        graft.read_task_data("no-such-task", tmp_path / "nope.tsv")
    assert "no-such-task" in str(e.value)
