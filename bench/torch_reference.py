#!/usr/bin/env python3
"""PyTorch / ONNX Runtime side of graft's side-by-side benchmark (issue #13).

What it measures: one workload on the real all-MiniLM-L6-v2 checkpoint, the way a user
who does not pick graft would run it on the same CPU -- a training step with Hugging Face
PEFT (LoRA, prefix tuning, prompt tuning), a plain PyTorch bottleneck adapter (Houlsby),
full fine-tuning or a linear probe; or inference (classify, embed, one short request) with
PyTorch or ONNX Runtime. f32, or bf16 the way PyTorch users get it: torch.autocast on the
CPU around forward + loss, master weights in f32.

Why this is the fair peer: PyPI's torch wheel calls MKL and oneDNN (the library graft is
built on) for its GEMMs, and this script pins it to the same thread count as the graft
run (--threads, intra-op; one inter-op thread). Inputs are fixed-length rows of random
token ids (no tokenizer in the timed loop), as on the graft side.

One workload per process: a driver runs each configuration in a fresh process so that
peak RSS (ru_maxrss at the end) belongs to that configuration alone. The ONNX Runtime
path never imports torch (the export runs once, in a child process, and is cached under
.cache/bench/), so its peak RSS is ONNX Runtime's own. The last line of stdout is one
JSON object; errors go to stderr with exit code 2. Beyond the timings it says whether
oneDNN has native bf16 here ("bf16_native"): on a CPU without AVX512-BF16/AMX (AVX2 only)
PyTorch's bf16 autocast is emulated and many times slower than its f32.
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_METHODS = ["lora", "houlsby", "prefix_tuning", "prompt_tuning", "full", "head"]
N_VIRTUAL = 20  # graft's default num_virtual_tokens for prefix and prompt tuning


def fail(msg):
    print(f"torch_reference.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(ROOT, ".cache/models/all-MiniLM-L6-v2"),
                   help="Hugging Face BERT folder (default: .cache/models/all-MiniLM-L6-v2)")
    p.add_argument("--workload", choices=["train", "classify", "embed", "latency"], default="train")
    p.add_argument("--method", choices=TRAIN_METHODS + ["none"], default=None,
                   help="train: one of the six (required); inference: none (bare backbone, default)")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                   help="bf16 = torch.autocast('cpu', bfloat16) around forward + loss, f32 master weights")
    p.add_argument("--engine", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: inference only, f32, on the exported bare BertModel")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="rows per step (default 32; latency: 1)")
    p.add_argument("--seq", type=int, default=128, help="tokens per row")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-onnx", metavar="PATH", help=argparse.SUPPRESS)  # internal: child process
    a = p.parse_args()
    if a.export_onnx:
        return a
    if a.workload == "train":
        if a.method in (None, "none"):
            fail(f"--workload train needs --method, one of {', '.join(TRAIN_METHODS)}")
        if a.engine != "torch":
            fail("--engine onnxruntime runs inference only (classify, embed, latency), not train")
    else:
        a.method = a.method or "none"
        if a.method != "none":
            fail(f"--workload {a.workload} runs the bare backbone: --method none (got {a.method})")
        if a.engine == "onnxruntime" and a.dtype != "f32":
            fail("--engine onnxruntime runs f32 only")
    if a.workload == "latency":
        if a.batch not in (None, 1):
            fail("--workload latency is one request: batch 1")
        a.batch = 1
    a.batch = a.batch or 32
    for name in ("threads", "batch", "seq", "steps"):
        if getattr(a, name) < 1:
            fail(f"--{name} must be at least 1")
    if a.warmup < 0:
        fail("--warmup must be at least 0")
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        fail(f"{a.model}: not a Hugging Face model folder (no config.json)")
    return a


def make_inputs(a):
    import numpy as np
    rng = np.random.default_rng(a.seed)
    ids = rng.integers(1000, 30000, size=(a.batch, a.seq), dtype=np.int64)
    mask = np.ones((a.batch, a.seq), dtype=np.int64)
    types = np.zeros((a.batch, a.seq), dtype=np.int64)
    labels = rng.integers(0, 2, size=(a.batch,), dtype=np.int64)
    return ids, mask, types, labels


def timed(step, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------- torch side

def load_backbone(a):
    import warnings
    import torch
    import transformers
    from transformers import BertModel
    transformers.logging.set_verbosity_error()  # the pooler's weights are left out on purpose
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # past_key_values renames (prefix tuning)
    # PEFT drops token_type_ids for prompt tuning; they are all zeros, which BERT assumes anyway.
    warnings.filterwarnings("ignore", message="Token type ids are not supported")
    # No pooler: every workload pools last_hidden_state itself, as graft does.
    return BertModel.from_pretrained(a.model, dtype=torch.float32, add_pooling_layer=False)


def add_houlsby(model, reduction_factor=16):
    """AdapterHub's Houlsby layout (graft's defaults): after the attention output and the FFN
    output (dense + dropout), before residual add + LayerNorm: h + up(swish(down(h)))."""
    import torch
    from transformers.models.bert.modeling_bert import BertOutput, BertSelfOutput

    class Bottleneck(torch.nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.down = torch.nn.Linear(hidden, hidden // reduction_factor)
            self.up = torch.nn.Linear(hidden // reduction_factor, hidden)
            for lin in (self.down, self.up):  # AdapterHub's "bert" init, graft's default: N(0, 0.02), up near 0
                torch.nn.init.normal_(lin.weight, std=0.02)
                torch.nn.init.zeros_(lin.bias)

        def forward(self, h):
            return h + self.up(torch.nn.functional.silu(self.down(h)))

    def adapted_forward(self, hidden_states, input_tensor):
        h = self.adapter(self.dropout(self.dense(hidden_states)))
        return self.LayerNorm(h + input_tensor)

    classes = {cls: type("Adapted" + cls.__name__, (cls,), {"forward": adapted_forward})
               for cls in (BertSelfOutput, BertOutput)}
    for p in model.parameters():
        p.requires_grad_(False)
    for module in model.modules():
        if type(module) in classes:
            module.adapter = Bottleneck(model.config.hidden_size)
            module.__class__ = classes[type(module)]
    return model


def build_train_model(a, backbone):
    """Returns (model, n_virtual): the module to call and how many virtual positions it prepends."""
    import peft
    if a.method == "lora":
        cfg = peft.LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"])
        return peft.get_peft_model(backbone, cfg), 0
    if a.method == "prefix_tuning":
        # FEATURE_EXTRACTION works with BertModel: PeftModelForFeatureExtraction hands the prefix
        # to every layer as past_key_values and widens the attention mask; outputs keep T positions.
        cfg = peft.PrefixTuningConfig(task_type=peft.TaskType.FEATURE_EXTRACTION,
                                      num_virtual_tokens=N_VIRTUAL, prefix_projection=False)
        return peft.get_peft_model(backbone, cfg), 0
    if a.method == "prompt_tuning":
        # PEFT prepends the virtual tokens' embeddings, so last_hidden_state has N_VIRTUAL + T
        # positions; we pool over the real tokens only (the last T), as graft does.
        cfg = peft.PromptTuningConfig(task_type=peft.TaskType.FEATURE_EXTRACTION,
                                      num_virtual_tokens=N_VIRTUAL,
                                      prompt_tuning_init=peft.PromptTuningInit.RANDOM)
        return peft.get_peft_model(backbone, cfg), N_VIRTUAL
    if a.method == "houlsby":
        return add_houlsby(backbone), 0
    for p in backbone.parameters():  # full: everything trains; head: nothing in the backbone
        p.requires_grad_(a.method == "full")
    return backbone, 0


def mean_pool(hidden, mask, n_virtual=0):
    hidden = hidden[:, n_virtual:]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def run_torch(a):
    import torch
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    ids, mask, types, labels = (torch.from_numpy(x) for x in make_inputs(a))
    backbone = load_backbone(a)
    hidden = backbone.config.hidden_size
    head = torch.nn.Linear(hidden, 2)
    bf16 = a.dtype == "bf16"
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    kw = dict(input_ids=ids, attention_mask=mask, token_type_ids=types)

    if a.workload == "train":
        model, n_virtual = build_train_model(a, backbone)
        model.train()  # dropout as the checkpoint's config says
        head.train()
        dropout = torch.nn.Dropout(0.1)
        params = [p for p in list(model.parameters()) + list(head.parameters()) if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        trainable = sum(p.numel() for p in params)  # includes the 384 -> 2 head (770)

        def step():
            with autocast():
                if a.method == "head":  # linear probe: no graph through the backbone
                    with torch.no_grad():
                        out = model(**kw).last_hidden_state
                else:
                    out = model(**kw).last_hidden_state
                logits = head(dropout(mean_pool(out, mask, n_virtual)))
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        backbone.eval()
        head.eval()
        trainable = 0

        def step():
            with torch.inference_mode(), autocast():
                pooled = mean_pool(backbone(**kw).last_hidden_state, mask)
                if a.workload == "classify":
                    return torch.softmax(head(pooled).float(), dim=-1)
                return torch.nn.functional.normalize(pooled.float(), dim=-1)

    a.bf16_native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return timed(step, a.steps, a.warmup), trainable


# ---------------------------------------------------------------- ONNX Runtime side

def onnx_path(a):
    model_dir = os.path.realpath(a.model)
    tag = hashlib.sha1(model_dir.encode()).hexdigest()[:8]  # two folders of one name do not collide
    name = f"{os.path.basename(model_dir)}-{tag}-torch{importlib.metadata.version('torch')}.onnx"
    return os.path.join(ROOT, ".cache/bench", name)


def export_onnx(a):
    """Child process: export the bare BertModel (eval, f32) with dynamic batch and sequence axes."""
    import torch
    backbone = load_backbone(a).eval()

    class Bare(torch.nn.Module):  # positional inputs, one output, for the tracer
        def __init__(self):
            super().__init__()
            self.bert = backbone

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Bare().eval()
    ids = torch.randint(1000, 30000, (2, 16))
    tmp = a.export_onnx + f".tmp{os.getpid()}"
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), tmp, dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17,
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                        ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]})
    os.replace(tmp, a.export_onnx)


def run_onnxruntime(a):
    import numpy as np
    import onnxruntime as ort
    path = onnx_path(a)
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cmd = [sys.executable, os.path.abspath(__file__), "--model", a.model, "--export-onnx", path]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or not os.path.isfile(path):
            fail(f"ONNX export failed:\n{r.stderr[-3000:]}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ids, mask, types, _ = make_inputs(a)
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    rng = np.random.default_rng(a.seed + 1)
    hidden = sess.get_outputs()[0].shape[-1]
    w = rng.normal(0, 0.02, (hidden, 2)).astype(np.float32)
    b = np.zeros(2, np.float32)
    m = mask[..., None].astype(np.float32)

    def step():
        out = sess.run(["last_hidden_state"], feed)[0]
        pooled = (out * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        if a.workload == "classify":
            z = pooled @ w + b
            e = np.exp(z - z.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)

    return timed(step, a.steps, a.warmup), 0


# ---------------------------------------------------------------- main

def versions():
    out = {}
    for pkg in ("torch", "transformers", "peft", "onnxruntime"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def main():
    a = parse_args()
    # Before numpy/torch load their thread pools: keep helper libraries at the same thread count.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    if a.export_onnx:
        return export_onnx(a)
    try:
        times, trainable = (run_onnxruntime if a.engine == "onnxruntime" else run_torch)(a)
    except ImportError as e:
        fail(f"{e} (install bench/requirements-torch.txt)")
    median = statistics.median(times)
    print(json.dumps({
        "side": a.engine, "workload": a.workload, "method": a.method, "dtype": a.dtype,
        "threads": a.threads, "batch": a.batch, "seq": a.seq, "steps": a.steps,
        "median_s": median, "mean_s": statistics.fmean(times),
        "tokens_per_s": a.batch * a.seq / median,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trainable_params": trainable, "bf16_native": getattr(a, "bf16_native", None),
        "versions": versions(),
    }))


if __name__ == "__main__":
    main()
