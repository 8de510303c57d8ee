#!/usr/bin/env python3
"""Merged checkpoints that graft exports, loaded by plain transformers
(tests/golden/export_merged/).

graft -> transformers: tests/integration/test_export.cpp, run with
GRAFT_WRITE_EXPORT_FIXTURES=1, exports the PEFT-made LoRA adapters of
tests/golden/peft_lora/ (tiny_bert_lora, tiny_llama_lora) merged into their tiny
backbones, as `graft export --merged` does, and writes each exported folder to
export_merged/<name>_lora/ (config.json, model.safetensors, the tokenizer files the
backbone has) with graft_outputs.json: graft's outputs with the adapter attached
(unmerged) for the inputs of the backbone's reference.json.

This script loads each exported folder with transformers alone (AutoModel for BERT,
AutoModelForCausalLM for LLaMA: no PEFT anywhere), runs graft's inputs through it and
asserts that its outputs equal graft's within 1e-4 where attention_mask is 1 (the
issue's bar). It also checks the export against PEFT itself: the tiny backbone with the
same adapter, merged by PEFT's merge_and_unload(), must hold the same tensors (within
1e-6) and the exported folder must hold every tensor of the source checkpoint (a
pooler, a separate lm_head) unchanged except the merged weights. It then writes
reference.json (transformers' outputs, the measured differences, versions), which every
normal run of test_export compares graft against.

Regenerate:
    GRAFT_WRITE_EXPORT_FIXTURES=1 build/tests/test_export --gtest_filter='*Lora*'
    /work/.venv-ref/bin/python tests/golden/make_export_fixtures.py
    build/tests/test_export        # now checks against the new reference.json

Versions used: python 3.11.2, torch 1.13.0a0 (Debian), transformers 4.39.3,
peft 0.10.0, safetensors 0.8.0. f32, one thread: reruns write identical files.
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import AutoModel, AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_backbone_fixtures import dumps, enc, versions  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "tests", "golden")
OUT = os.path.join(GOLDEN, "export_merged")
TOLERANCE = 1e-4     # transformers on the export vs graft with the adapter attached
PEFT_TENSORS = 1e-6  # the export's tensors vs PEFT's merge_and_unload()

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def tensor(j):
    dtype = torch.long if j["dtype"] == "i64" else torch.float32
    return torch.tensor(j["data"], dtype=dtype).reshape(j["shape"])


def file_tensors(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def check(name):
    import peft
    folder = os.path.join(OUT, f"{name}_lora")
    print(os.path.relpath(folder, REPO))
    with open(os.path.join(folder, "graft_outputs.json"), encoding="utf-8") as f:
        graft = json.load(f)
    causal = name == "tiny_llama"
    key = "logits" if causal else "last_hidden_state"
    inputs = {"input_ids": tensor(graft["input_ids"]), "attention_mask": tensor(graft["attention_mask"])}
    if "token_type_ids" in graft:
        inputs["token_type_ids"] = tensor(graft["token_type_ids"])
    mask = inputs["attention_mask"].bool()

    # 1. transformers alone on the exported folder.
    cls = AutoModelForCausalLM if causal else AutoModel
    exported = cls.from_pretrained(folder).eval()
    with torch.no_grad():
        out = getattr(exported(**inputs), key)
    want = tensor(graft[key])
    assert out.shape == want.shape, (out.shape, want.shape)
    vs_graft = float((out - want)[mask].abs().max())
    print(f"  transformers on the export vs graft + adapter: max |diff| {vs_graft:.3g}")
    assert vs_graft <= TOLERANCE, f"{name}: {vs_graft} > {TOLERANCE}"

    # 2. PEFT's own merge of the same adapter onto the same backbone.
    base = cls.from_pretrained(os.path.join(GOLDEN, "backbones", name)).eval()
    merged = peft.PeftModel.from_pretrained(base, os.path.join(GOLDEN, "peft_lora", f"{name}_lora")).eval()
    with torch.no_grad():
        peft_out = getattr(merged(**inputs), key)
    merged = merged.merge_and_unload()
    ours, metadata = file_tensors(os.path.join(folder, "model.safetensors"))
    source, _ = file_tensors(os.path.join(GOLDEN, "backbones", name, "model.safetensors"))
    assert metadata.get("format") == "pt", metadata
    assert set(ours) == set(source), set(ours) ^ set(source)
    theirs = merged.state_dict()
    tensors_diff, changed = 0.0, []
    for k, v in ours.items():
        assert v.dtype == source[k].dtype and v.shape == source[k].shape, k
        if not torch.equal(v, source[k]):
            changed.append(k)
        if k in theirs:
            tensors_diff = max(tensors_diff, float((v - theirs[k]).abs().max()))
    vs_peft = float((out - peft_out)[mask].abs().max())
    print(f"  export vs PEFT merge_and_unload tensors: max |diff| {tensors_diff:.3g} ({len(changed)} changed)")
    print(f"  transformers on the export vs PEFT + adapter: max |diff| {vs_peft:.3g}")
    assert tensors_diff <= PEFT_TENSORS, tensors_diff
    assert vs_peft <= TOLERANCE, vs_peft

    v = versions()
    v["peft"] = peft.__version__
    ref = {
        "description": f"transformers' {key} of the folder graft exported (graft export --merged) with the LoRA adapter "
                       f"tests/golden/peft_lora/{name}_lora folded into tests/golden/backbones/{name}, loaded with "
                       f"{cls.__name__}.from_pretrained and no PEFT, for graft_outputs.json's inputs.",
        "script": "tests/golden/make_export_fixtures.py",
        "generator": v,
        key: enc(out),
        "max_abs_diff_vs_graft_with_adapter": vs_graft,
        "max_abs_diff_vs_peft_with_adapter": vs_peft,
        "max_abs_diff_tensors_vs_peft_merge_and_unload": tensors_diff,
        "changed_tensors": sorted(changed),
        "tolerance": {"vs_graft_abs": TOLERANCE, "tensors_vs_peft_abs": PEFT_TENSORS},
    }
    path = os.path.join(folder, "reference.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(dumps(ref) + "\n")
    os.replace(path + ".tmp", path)
    print(f"  wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path):,} bytes)")


if __name__ == "__main__":
    for n in ("tiny_bert", "tiny_llama"):
        check(n)
