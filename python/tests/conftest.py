"""Shared fixtures of the Python suite. Run from anywhere: paths are from the repository
root. make python-test sets PYTHONPATH to <build>/python and GRAFT_CLI to the built
graft command."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / ".cache/models/all-MiniLM-L6-v2"
STORIES = ROOT / "../shared/models/stories260K"
SST2 = ROOT / "../shared/data/glue/SST-2"
GOLDEN = ROOT / "tests/golden"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is missing (make models fetches MiniLM; ../shared holds the data)")
    return path


@pytest.fixture(scope="session")
def graft():
    import graft as g
    return g


@pytest.fixture(scope="session")
def minilm(graft):
    return graft.load(need(MINILM))


@pytest.fixture(scope="session")
def sst2(graft):
    """200 training rows and 200 held-out rows of SST-2 (its dev split)."""
    train = graft.read_task_data("sst2", need(SST2 / "train.tsv"), rows=200)
    dev = graft.read_task_data("sst2", need(SST2 / "dev.tsv"), label_names=train.label_names, rows=200)
    return train, dev


@pytest.fixture(scope="session")
def trained(minilm, sst2, tmp_path_factory):
    """A LoRA trained on the 200 rows (1 epoch), and an untrained one with a head."""
    train, dev = sst2
    out = tmp_path_factory.mktemp("sst2-lora")
    minilm.add_adapter("untrained", "lora", r=8)
    minilm.add_head("untrained", train)
    minilm.add_adapter("sst2", "lora", r=8)
    summary = minilm.train("sst2", task="sst2", train=train, dev=dev, epochs=1, batch_size=8, lr=2e-3,
                           max_length=64, output=out, progress=False)
    return summary, out


@pytest.fixture(scope="session")
def graft_cli():
    cli = os.environ.get("GRAFT_CLI") or str(ROOT / "build/bin/graft")
    if not Path(cli).exists():
        pytest.skip(f"no graft command at {cli} (set GRAFT_CLI)")
    return cli
