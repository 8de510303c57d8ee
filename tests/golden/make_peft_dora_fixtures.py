#!/usr/bin/env python3
"""DoRA adapters (LoRA with use_dora) moving between Hugging Face PEFT and graft, both
ways (tests/golden/peft_dora/). The DoRA twin of make_peft_lora_fixtures.py, whose
helpers, reference environment and conventions it shares.

PEFT -> graft: PEFT makes DoRA adapters on the tiny random HF fixtures of
tests/golden/backbones with every lora_B and every lora_magnitude_vector set to random
values (at PEFT's init B = 0 and the magnitude equals the weight's row norms, so the
adapter would change nothing), saves them with save_pretrained, and records the adapted
model's outputs. tests/integration/test_dora.cpp loads the folders with graft and
compares.

  tiny_bert_dora/    BertModel; r=4, lora_alpha=8, use_dora, target_modules
                     ["query", "value", "intermediate.dense", "output.dense"].
                     reference.json: last_hidden_state.
  tiny_llama_dora/   LlamaForCausalLM; r=4, lora_alpha=16, use_rslora, use_dora, all
                     seven projections, layers_to_transform [1]. reference.json: logits.

PEFT 0.10 saves the magnitude as base_model.model.<module>.lora_magnitude_vector (f32
[out_features]) and writes "use_dora": true in adapter_config.json.

graft -> PEFT: test_dora.cpp (GraftSavedAdaptersForPeft) writes graft_saved_tiny_bert/
and graft_saved_tiny_llama/ with graft_outputs.json; this script loads each with
PeftModel.from_pretrained and asserts PEFT's outputs equal graft's (atol 1e-5).

Regenerate (the reference venv of make_peft_lora_fixtures.py):
    /work/.venv-ref/bin/python tests/golden/make_peft_dora_fixtures.py          # both ways
    GRAFT_WRITE_PEFT_FIXTURES=1 build/tests/test_dora --gtest_filter='*GraftSaved*'
    /work/.venv-ref/bin/python tests/golden/make_peft_dora_fixtures.py --verify-only

Versions used: see "generator" in each reference.json. f32, one thread, fixed seeds.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_peft_lora_fixtures as lora  # noqa: E402  (sets the offline flags and torch threads)
from make_backbone_fixtures import enc  # noqa: E402

torch = lora.torch
OUT = os.path.join(lora.REPO, "tests", "golden", "peft_dora")


def make(name, folder, config_kwargs, seed):
    from peft import LoraConfig, get_peft_model
    print(folder)
    torch.manual_seed(seed)
    model = get_peft_model(lora.base_model(name), LoraConfig(use_dora=True, **config_kwargs)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "lora_magnitude_vector" in pname:  # away from the norms: g = m/||W + sBA|| != 1
                p.mul_(0.5 + torch.rand(p.shape, generator=g))
    d = os.path.join(OUT, folder)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "README.md"))
    cfg_path = os.path.join(d, "adapter_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["target_modules"] = sorted(cfg["target_modules"])  # a set in PEFT: a stable file
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    inputs = lora.load_inputs(name)
    key, value = lora.outputs(model, name, inputs)
    _, bare = lora.outputs(lora.base_model(name), name, inputs)
    ref = {
        "description": f"PEFT DoRA adapter on {lora.BACKBONES}/{name} with random lora_B and magnitudes; {key} of "
                       "the adapted model (f32, eval) for the inputs of the backbone's reference.json.",
        "generator": lora.peft_versions(),
        "lora_config": {**config_kwargs, "use_dora": True},
        **{k: enc(v) for k, v in inputs.items()},
        key: enc(value),
        "max_abs_change_from_bare": float((value - bare).abs().max()),
        "tolerance": {"f32_abs": 1e-5},
    }
    lora.write_json(os.path.join(d, "reference.json"), ref)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify-only", action="store_true", help="only check the graft-saved folders with PEFT")
    args = ap.parse_args()
    os.chdir(lora.REPO)
    print(f"transformers {lora.transformers.__version__}, torch {torch.__version__}")
    if not args.verify_only:
        os.makedirs(OUT, exist_ok=True)
        make("tiny_bert", "tiny_bert_dora",
             dict(r=4, lora_alpha=8, lora_dropout=0.0,
                  target_modules=["query", "value", "intermediate.dense", "output.dense"]), seed=2026)
        make("tiny_llama", "tiny_llama_dora",
             dict(r=4, lora_alpha=16, lora_dropout=0.0, use_rslora=True, task_type="CAUSAL_LM", layers_to_transform=[1],
                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), seed=2027)
    lora.OUT = OUT  # verify() reads the graft-saved folders from here
    ok = lora.verify("tiny_bert", "graft_saved_tiny_bert") & lora.verify("tiny_llama", "graft_saved_tiny_llama")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
