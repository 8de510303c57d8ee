#!/usr/bin/env python3
"""LoRA adapters moving between Hugging Face PEFT and graft, both ways
(tests/golden/peft_lora/).

PEFT -> graft: PEFT makes LoRA adapters on the tiny random HF fixtures of
tests/golden/backbones, with every lora_B set to random values (at PEFT's init B = 0
and the adapter would change nothing), saves them with save_pretrained, and records
the adapted model's outputs for the fixtures' inputs. tests/integration/test_lora.cpp
loads the folders with graft::load_adapter and compares.

  tiny_bert_lora/    BertModel (AutoModel); r=4, lora_alpha=8, target_modules
                     ["query", "value", "intermediate.dense", "output.dense"]
                     ("output.dense" names both attention.output.dense and the FFN's
                     output.dense, not pooler.dense; plain "dense" would also take
                     pooler.dense, which graft's BERT does not have). reference.json:
                     last_hidden_state.
  tiny_llama_lora/   LlamaForCausalLM; r=4, lora_alpha=16, use_rslora, all seven
                     projections, layers_to_transform [1]; tensors are named
                     base_model.model.model.layers.N... as graft's LLaMA sites expect.
                     reference.json: logits.

graft -> PEFT: test_lora.cpp (GraftSavedAdapters) writes graft_saved_tiny_bert/ and
graft_saved_tiny_llama/ (adapter_config.json, adapter_model.safetensors, graft's own
graft_adapter.json, and graft_outputs.json: graft's outputs for the same inputs). This
script loads each with PeftModel.from_pretrained onto the tiny model and asserts that
PEFT's outputs equal graft's (atol 1e-5). graft_saved_tiny_bert adapts
attention.query, attention.value and ffn.down (BERT's FFN output.dense, which no
target_modules list can name alone: graft writes a regex); graft_saved_tiny_llama
adapts q_proj, v_proj and up_proj in layer 1 with rsLoRA (a list + layers_to_transform).

Regenerate (reference venv of make_backbone_fixtures.py, plus PEFT):
    /work/.venv-ref/bin/pip install --no-deps peft==0.10.0 accelerate==0.28.0 jinja2
        # --no-deps: peft requires torch>=1.13.0 and Debian's 1.13.0a0 does not
        # satisfy that pre-release ordering; pip would fetch a CUDA torch
    /work/.venv-ref/bin/python tests/golden/make_peft_lora_fixtures.py          # both ways
    GRAFT_WRITE_PEFT_FIXTURES=1 build/tests/test_lora --gtest_filter='*GraftSaved*'
        # rewrites graft_saved_*/ (then run this script again to check them)
    /work/.venv-ref/bin/python tests/golden/make_peft_lora_fixtures.py --verify-only

Versions used: python 3.11.2, torch 1.13.0a0 (Debian), transformers 4.39.3,
peft 0.10.0, accelerate 0.28.0, safetensors 0.8.0. f32, one thread, fixed seeds:
reruns write identical files.
"""
import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModel, AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_backbone_fixtures import dumps, enc, versions  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKBONES = "tests/golden/backbones"  # relative: adapter_config.json records the path
OUT = os.path.join(REPO, "tests", "golden", "peft_lora")

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def write_json(path, obj):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(dumps(obj) + "\n")
    os.replace(path + ".tmp", path)
    print(f"  wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path):,} bytes)")


def load_inputs(name):
    with open(os.path.join(REPO, BACKBONES, name, "reference.json"), encoding="utf-8") as f:
        ref = json.load(f)
    t = lambda k: torch.tensor(ref[k]["data"]).reshape(ref[k]["shape"])  # noqa: E731
    if name == "tiny_bert":
        return {"input_ids": t("input_ids"), "attention_mask": t("attention_mask"), "token_type_ids": t("token_type_ids")}
    return {"input_ids": t("input_ids")}


def outputs(model, name, inputs):
    with torch.no_grad():
        out = model(**inputs)
    return ("last_hidden_state", out.last_hidden_state) if name == "tiny_bert" else ("logits", out.logits)


def base_model(name):
    path = os.path.join(BACKBONES, name)
    cls = AutoModel if name == "tiny_bert" else AutoModelForCausalLM
    return cls.from_pretrained(path).eval()


def peft_versions():
    import peft
    v = versions()
    v["peft"] = peft.__version__
    return v


def make(name, folder, config_kwargs, seed):
    from peft import LoraConfig, get_peft_model
    print(folder)
    torch.manual_seed(seed)
    model = get_peft_model(base_model(name), LoraConfig(**config_kwargs)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    d = os.path.join(OUT, folder)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "README.md"))  # model card: nothing graft reads
    # PEFT keeps target_modules as a set: sort it so reruns write the same file.
    cfg_path = os.path.join(d, "adapter_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    inputs = load_inputs(name)
    key, value = outputs(model, name, inputs)
    _, bare = outputs(base_model(name), name, inputs)
    ref = {
        "description": f"PEFT LoRA adapter on {BACKBONES}/{name} with random lora_B; {key} of the "
                       "adapted model (f32, eval) for the inputs of the backbone's reference.json.",
        "generator": peft_versions(),
        "lora_config": config_kwargs,
        **{k: enc(v) for k, v in inputs.items()},
        key: enc(value),
        "max_abs_change_from_bare": float((value - bare).abs().max()),
        "tolerance": {"f32_abs": 1e-5},
    }
    write_json(os.path.join(d, "reference.json"), ref)


def verify(name, folder):
    from peft import PeftModel
    d = os.path.join(OUT, folder)
    if not os.path.exists(os.path.join(d, "graft_outputs.json")):
        print(f"{folder}: not there (written by test_lora, see the docstring)")
        return True
    with open(os.path.join(d, "graft_outputs.json"), encoding="utf-8") as f:
        got = json.load(f)
    model = PeftModel.from_pretrained(base_model(name), d).eval()
    inputs = load_inputs(name)
    for k, v in inputs.items():
        assert got[k]["data"] == v.reshape(-1).tolist(), (folder, k)
    key, value = outputs(model, name, inputs)
    graft = torch.tensor(got[key]["data"]).reshape(got[key]["shape"])
    _, bare = outputs(base_model(name), name, inputs)
    deviation = float((value - graft).abs().max())
    change = float((value - bare).abs().max())
    ok = deviation <= 1e-5 and change > 1e-2
    print(f"{folder}: PEFT {peft_versions()['peft']} vs graft {key}: max |diff| {deviation:.3g} "
          f"(the adapter moves outputs by up to {change:.3g}) -> {'OK' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify-only", action="store_true", help="only check the graft-saved folders with PEFT")
    args = ap.parse_args()
    os.chdir(REPO)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    if not args.verify_only:
        os.makedirs(OUT, exist_ok=True)
        make("tiny_bert", "tiny_bert_lora",
             dict(r=4, lora_alpha=8, lora_dropout=0.0,
                  target_modules=["query", "value", "intermediate.dense", "output.dense"]), seed=2024)
        make("tiny_llama", "tiny_llama_lora",
             dict(r=4, lora_alpha=16, lora_dropout=0.0, use_rslora=True, task_type="CAUSAL_LM", layers_to_transform=[1],
                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), seed=2025)
    ok = verify("tiny_bert", "graft_saved_tiny_bert") & verify("tiny_llama", "graft_saved_tiny_llama")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
