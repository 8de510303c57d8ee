"""Stopping a run: an exception in on_step, or Ctrl-C (SIGINT), stops training at the
step boundary with the resumable checkpoint written; the same call then resumes."""
import json
import os
import signal

import pytest


@pytest.fixture(autouse=True)
def sigint_raises():
    """Python's own SIGINT handler, as in an interactive session: a process started in
    the background by a non-interactive shell inherits SIGINT ignored, and Python then
    leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def stop_adapter(minilm):
    minilm.add_adapter("stop", "lora", r=4)
    yield
    minilm.unload_adapter("stop")


def small_run(session, sst2, out, **kw):
    train, dev = sst2
    return session.train("stop", task="sst2", train=train.rows(0, 48), dev=dev.rows(0, 16), max_steps=6, batch_size=8,
                         max_length=32, eval_every=100, output=out, progress=False, **kw)


def test_ctrl_c_stops_at_a_step_with_the_checkpoint_written(minilm, sst2, tmp_path, stop_adapter):
    out = tmp_path / "run"
    steps = []

    def on_step(p):
        steps.append(p["step"])
        if p["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        small_run(minilm, sst2, out, on_step=on_step)
    assert steps == [1, 2]
    state = json.loads((out / "checkpoint/trainer_state.json").read_text())
    assert state["step"] == 2
    # the session is usable, and the same call resumes from step 2
    seen = []
    summary = small_run(minilm, sst2, out, on_step=lambda p: seen.append(p["step"]))
    assert summary["resumed"] and summary["steps"] == 6 and not summary["stopped"]
    assert seen[0] == 3


def test_ctrl_c_arriving_while_graft_computes(minilm, sst2, tmp_path, stop_adapter):
    """The signal lands while the step runs in C++ (GIL released): graft sees it at the
    next step boundary (PyErr_CheckSignals before the callback)."""
    import threading

    reached = threading.Event()
    steps = []

    def on_step(p):
        steps.append(p["step"])
        if p["step"] == 2:
            reached.set()

    def interrupt():
        reached.wait(60)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    killer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            small_run(minilm, sst2, tmp_path / "run", on_step=on_step)
    finally:
        killer.join()
    state = json.loads((tmp_path / "run/checkpoint/trainer_state.json").read_text())
    assert state["step"] in (2, 3) and state["step"] >= steps[-1] and state["step"] < 6


def test_an_exception_in_on_step_stops_the_run_and_is_raised(minilm, sst2, tmp_path, stop_adapter):

    def on_step(p):
        if p["step"] == 3:
            raise ValueError("enough")

    with pytest.raises(ValueError, match="enough"):
        small_run(minilm, sst2, tmp_path / "run", on_step=on_step)
    assert json.loads((tmp_path / "run/checkpoint/trainer_state.json").read_text())["step"] == 3
