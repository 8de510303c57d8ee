"""graft from Python: parameter-efficient fine-tuning on frozen transformer backbones.

    import graft
    s = graft.load(".cache/models/all-MiniLM-L6-v2")
    s.add_adapter("sst2", "lora", r=8)
    s.train("sst2", task="sst2", train_file=".../train.tsv", dev_file=".../dev.tsv", epochs=1, output="runs/sst2")
    labels, probs = s.predict(["a gripping film"], adapter="sst2")

The native half is graft._graft (pybind11 over graft::Session); see docs/python.md.
"""
from __future__ import annotations

import codecs
import json
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from . import _graft
from ._graft import (  # noqa: F401  (re-exported)
    BackendError,
    ConfigError,
    Dataset,
    Error,
    FormatError,
    IoError,
    PluginError,
    ShapeError,
)

__all__ = [
    "load", "plugins", "compare", "read_task_data", "Session", "Dataset",
    "Error", "IoError", "FormatError", "ConfigError", "ShapeError", "BackendError", "PluginError",
]


def _dirs(plugin_dirs) -> list[str]:
    if plugin_dirs is None:
        return []
    if isinstance(plugin_dirs, (str, bytes)) or hasattr(plugin_dirs, "__fspath__"):
        return [str(plugin_dirs)]
    return [str(d) for d in plugin_dirs]


def plugins(plugin_dirs=None, *, failures: bool = False):
    """The methods graft can run: a list of dicts (name, version, description, file,
    peft_types, aliases, default_lr, config_schema as a dict, builtin). With
    failures=True, returns (plugins, failures, search_path) where failures lists
    (file, why) for every library that did not load."""
    found, failed, search = _graft.plugins(_dirs(plugin_dirs))
    for p in found:
        p["config_schema"] = json.loads(p["config_schema"]) if p["config_schema"] else {}
        p["aliases"] = {k: json.loads(v) for k, v in p["aliases"].items()}
    if failures:
        return found, failed, search
    return found


def read_task_data(task: str, file, *, regression: bool = False, label_names: Sequence[str] | None = None,
                   rows: int | None = None) -> Dataset:
    """Reads one task-data file as `graft train` does (a GLUE task's TSV, conll2003,
    csv, jsonl or text); rows=N keeps the first N rows."""
    data = _graft.read_task_data(task, str(file), regression, list(label_names or []))
    return data.rows(0, rows) if rows is not None else data


def _config_json(config: dict) -> str:
    return json.dumps(config) if config else ""


class _Progress:
    """A tqdm bar fed by the training callback (a silent one when tqdm is missing)."""

    def __init__(self, enabled: bool, label: str):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(desc=label, unit="step", leave=True)
            except ImportError:  # pragma: no cover
                self.bar = None

    def update(self, p: dict) -> None:
        if self.bar is None:
            return
        if self.bar.total != p["total_steps"]:
            self.bar.total = p["total_steps"]
        if "evaluation" in p:
            self.bar.set_postfix({"loss": f"{p['loss']:.4f}", p["headline"]: f"{p['evaluation'][p['headline']]:.4f}"})
            return
        self.bar.n = p["step"]
        self.bar.set_postfix({"loss": f"{p['loss']:.4f}"}, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Session(_graft.Session):
    """One frozen backbone (and its tokenizer) with any number of named adapters.
    Make one with graft.load()."""

    # ---- adapters --------------------------------------------------------------------
    def add_adapter(self, name: str, method: str, seed: int = 42, **config: Any) -> None:
        """Attaches a new adapter: a plugin by name or alias ("lora", "pfeiffer", …) or the
        built-in "head" / "full"; keyword arguments are its config (validated against the
        plugin's schema: an unknown key is a ConfigError naming it)."""
        super().add_adapter(name, method, _config_json(config), seed, "add_adapter()")

    def load_adapter(self, name: str, folder) -> None:
        """Loads an adapter folder (graft's, or Hugging Face PEFT's) as `name`."""
        super().load_adapter(name, str(folder))

    def save_adapter(self, name: str, folder) -> None:
        """Writes adapter `name` (and its head) as a folder that PEFT can load too."""
        super().save_adapter(name, str(folder))

    def export_merged(self, name: str, folder) -> dict:
        """Writes a new Hugging Face model folder with adapter `name` folded into the
        weights (LoRA, DoRA, (IA)³), which transformers' AutoModel and graft.load() read as
        a plain backbone. Returns a dict: folder, method, weights_dtype, changed (tensor
        names), tensors, files (copied beside model.safetensors), notes."""
        return super().export_merged(name, str(folder))

    def adapters(self) -> list[dict]:
        """Every adapter as a dict: name, method, config (dict), description,
        trainable_parameters, head (dict or None), head_parameters, source, default_lr."""
        out = []
        for name in self.adapter_names():
            a = self.adapter(name)
            a["config"] = json.loads(a["config"]) if a["config"] else {}
            out.append(a)
        return out

    # ---- inference -------------------------------------------------------------------
    def predict(self, rows: Iterable, adapter=None, *, stack=None, batch_size: int = 32, max_length: int = 128):
        """Runs rows (texts, or (text, pair) tuples) through the task head of `adapter`
        (a name, or a list with one name per row; None in it: that row's adapter is the
        bare backbone, which has no head). Returns (labels, probabilities): int64 [n] and
        float32 [n, classes]; for regression heads, (values float64 [n], empty [n, 0])."""
        rows = [r if isinstance(r, str) else tuple(r) for r in rows]
        labels, values, probs = super().predict(rows, adapter=adapter, stack=stack, batch_size=batch_size,
                                                max_length=max_length)
        if probs.shape[1] == 0 and len(rows):
            return values, probs
        return labels, probs

    def embed(self, texts: Sequence[str], adapter=None, *, stack=None, normalize: bool = True,
              max_length: int | None = None, pooling: str | None = None):
        """Sentence embeddings, float32 [n, hidden] (L2-normalised unless normalize=False)."""
        return super().embed(list(texts), adapter=adapter, stack=stack, normalize=normalize, max_length=max_length,
                             pooling=pooling)

    def hidden_states(self, texts: Sequence[str], adapter=None, *, stack=None):
        """Final hidden states, float32 [n, tokens, hidden], padded to the longest row; a
        view of graft's own tensor (no copy)."""
        return super().hidden_states(list(texts), adapter=adapter, stack=stack)

    def generate(self, prompt: str, adapter=None, *, stack=None, max_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, stream: bool = True):
        """Continues `prompt` (decoders). stream=True (the default): a generator yielding
        text pieces as they are made (graft decodes on a worker thread; closing the
        generator, or dropping it, stops the decoding at the next token). stream=False:
        the whole text."""
        kw = dict(adapter=adapter, stack=stack, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
        if not stream:
            text, _ = self._generate(prompt, **kw)
            return text.decode("utf-8", errors="replace")
        return self._stream(prompt, kw)

    def _stream(self, prompt: str, kw: dict) -> Iterator[str]:
        pieces: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        done = object()

        def on_text(piece: bytes):
            if cancelled.is_set():
                return False
            pieces.put(piece)
            return True

        def work():
            try:
                self._generate(prompt, on_text=on_text, **kw)
                pieces.put(done)
            except BaseException as e:  # handed to the consumer
                pieces.put(e)

        worker = threading.Thread(target=work, name="graft-generate", daemon=True)
        worker.start()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while True:
                item = pieces.get()
                if item is done:
                    tail = decoder.decode(b"", final=True)
                    if tail:
                        yield tail
                    return
                if isinstance(item, BaseException):
                    raise item
                text = decoder.decode(item)
                if text:
                    yield text
        finally:
            cancelled.set()
            worker.join()

    def evaluate(self, dev: Dataset, adapter=None, *, stack=None, batch_size: int = 32, max_length: int = 128) -> dict:
        """Dev-set metrics of the adapter's head on a Dataset: a dict with the metrics and
        'headline' (the key runs are ranked by)."""
        scores, headline = super().evaluate(dev, adapter=adapter, stack=stack, batch_size=batch_size,
                                            max_length=max_length)
        scores["headline"] = headline
        return scores

    # ---- training --------------------------------------------------------------------
    def train(self, adapter: str, *, task: str, train_file=None, dev_file=None, output, train: Dataset | None = None,
              dev: Dataset | None = None, train_rows: int | None = None, dev_rows: int | None = None,
              regression: bool = False, epochs: int = 3, lr: float | None = None, batch_size: int = 32,
              max_steps: int | None = None, on_step: Callable[[dict], Any] | None = None, progress: bool = True,
              **options: Any) -> dict:
        """Trains `adapter` (and a task head for the data, unless it has one) and keeps the
        best dev-set model in output/best. Data: train_file/dev_file read as `task`
        (sst2, …, csv, jsonl, text), or Datasets as train=/dev=; *_rows keep the first N.
        lr=None: the method's default. on_step(dict) runs after every step and every
        evaluation (dict: step, total_steps, loss, lr, tokens_per_second, and
        evaluation/headline after an evaluation); raising in it stops the run at that step
        with the checkpoint written. Ctrl-C does the same and raises KeyboardInterrupt;
        calling train again with the same output resumes. More options: grad_accumulation,
        max_length, weight_decay, warmup_ratio, max_grad_norm, schedule, seed, eval_every,
        save_every, patience (early stopping: stop after this many evaluations without a
        better dev score), pooling, label, compose (train through a composition such as
        "stack(lang, task)" or "fuse(a, b)": only `adapter` learns). Returns a summary dict."""
        if train is None:
            if train_file is None:
                raise ConfigError("train: pass train_file= (or train=)")
            train = read_task_data(task, train_file, regression=regression)
        if dev is None:
            if dev_file is None:
                raise ConfigError("train: pass dev_file= (or dev=)")
            dev = read_task_data(task, dev_file, regression=regression, label_names=train.label_names)
        if train_rows is not None:
            train = train.rows(0, train_rows)
        if dev_rows is not None:
            dev = dev.rows(0, dev_rows)
        kw = dict(options, epochs=epochs, batch_size=batch_size, output=str(output), progress_line=False)
        if lr is not None:
            kw["lr"] = lr
        if max_steps:
            kw["max_steps"] = max_steps
        bar = _Progress(progress, options.get("label") or adapter)

        def on_progress(p: dict):
            bar.update(p)
            if on_step is not None:
                on_step(p)

        try:
            summary = self._train(adapter, train, dev, kw, on_progress)
        finally:
            bar.close()
        summary["train_rows"] = len(train)
        summary["dev_rows"] = len(dev)
        return summary


def load(path, dtype: str = "f32", plugin_dirs=None) -> Session:
    """Loads a backbone: a Hugging Face model folder or a llama2.c checkpoint (and its
    tokenizer). dtype="bf16" holds the frozen weights in bfloat16. plugin_dirs are
    searched for plugins first (then GRAFT_PLUGIN_PATH, then graft's own)."""
    return Session(str(path), dtype, _dirs(plugin_dirs))


def compare(backbone, *, task: str, train_file=None, dev_file=None, methods: Sequence, output,
            epochs: int = 1, train_rows: int | None = None, dev_rows: int | None = None, dtype: str = "f32",
            plugin_dirs=None, seed: int = 42, seeds: Sequence[int] | None = None, progress: bool = True,
            **train_options: Any) -> list[dict]:
    """Trains each method on one task in this process (one backbone, loaded once) and
    returns one dict per run: method, seed, trainable_parameters, trainable_percent,
    metric, best_score, best_step, steps, early_stopped, seconds, output — rows for
    pandas.DataFrame(rows). A method is a name ("lora") or (name, {config}); each runs
    in output/<i>-<method> (with seeds=[1, 2, 3]: each method at every seed, in
    output/<i>-<method>/seed-<s>, so df.groupby("method")["best_score"].agg(["mean",
    "std"]) gives mean ± std). Calling it again with the same output resumes every run."""
    import os

    session = load(backbone, dtype=dtype, plugin_dirs=plugin_dirs)
    train = read_task_data(task, train_file, rows=train_rows)
    dev = read_task_data(task, dev_file, label_names=train.label_names, rows=dev_rows)
    total = session.info["parameter_count"]
    rows = []
    for i, entry in enumerate(methods):
        method, config = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
        label = method if not config else f"{method}:{json.dumps(config, sort_keys=True)}"
        for s_ in (seeds if seeds is not None else [seed]):
            name = f"compare-{len(rows)}"
            folder = os.path.join(str(output), f"{i}-{method}")
            if seeds is not None:
                folder = os.path.join(folder, f"seed-{s_}")
            session.add_adapter(name, method, seed=s_, **config)
            start = time.perf_counter()
            try:
                s = session.train(name, task=task, train=train, dev=dev, epochs=epochs, seed=s_, output=folder,
                                  progress=progress, label=method, **train_options)
            finally:
                wall = time.perf_counter() - start
                session.unload_adapter(name)
            rows.append({
                "method": label,
                "seed": s_,
                "trainable_parameters": s["trainable_parameters"],
                "trainable_percent": 100.0 * s["trainable_parameters"] / total,
                "metric": s["headline"],
                "best_score": s["best_score"],
                "best_step": s["best_step"],
                "steps": s["steps"],
                "early_stopped": s["early_stopped"],
                "seconds": wall,
                "output": folder,
            })
    return rows
