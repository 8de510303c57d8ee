#!/usr/bin/env python3
"""(IA)³ adapters made by Hugging Face PEFT, for the out-of-tree ia3 plugin
(sdk/examples/ia3) to load: tests/sdk/peft_ia3/.

  tiny_bert_ia3/    BertModel (AutoModel) of tests/golden/backbones/tiny_bert with PEFT's
                    BERT default: target_modules ["key", "value", "output.dense"],
                    feedforward_modules ["output.dense"] ("output.dense" names both
                    attention.output.dense and the FFN's output.dense: both have their
                    input scaled). reference.json: last_hidden_state.
  tiny_llama_ia3/   LlamaForCausalLM of tests/golden/backbones/tiny_llama with PEFT's LLaMA
                    default: k_proj, v_proj, down_proj (down_proj input-scaled, which the
                    plugin computes at up_proj's output). reference.json: logits.

Every ia3_l is set to 1 + 0.3·N(0, 1) (at PEFT's init they are ones and would change
nothing). tests/sdk/test_ia3_training.cpp loads each folder as a PEFT folder (no
graft_adapter.json) and compares with the reference (atol 1e-5).

Regenerate (the reference venv of tests/golden/make_backbone_fixtures.py, plus PEFT as
tests/golden/make_peft_lora_fixtures.py installs it):
    /work/.venv-ref/bin/python tests/sdk/make_peft_ia3_fixtures.py

Versions used: python 3.11.2, torch 1.13.0a0 (Debian), transformers 4.39.3, peft 0.10.0.
f32, one thread, fixed seeds: reruns write identical files.
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModel, AutoModelForCausalLM  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "golden"))
from make_backbone_fixtures import dumps, enc, versions  # noqa: E402

BACKBONES = "tests/golden/backbones"  # relative: adapter_config.json records the path
OUT = os.path.join(REPO, "tests", "sdk", "peft_ia3")

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


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
    cls = AutoModel if name == "tiny_bert" else AutoModelForCausalLM
    return cls.from_pretrained(os.path.join(BACKBONES, name)).eval()


def make(name, folder, config_kwargs, seed):
    import peft
    from peft import IA3Config, get_peft_model
    print(folder)
    torch.manual_seed(seed)
    model = get_peft_model(base_model(name), IA3Config(**config_kwargs)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if "ia3_l" in pname:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
    d = os.path.join(OUT, folder)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "README.md"))  # model card: nothing graft reads
    # PEFT keeps the module lists as sets: sort them so reruns write the same file.
    cfg_path = os.path.join(d, "adapter_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    for key in ("target_modules", "feedforward_modules"):
        cfg[key] = sorted(cfg[key])
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    inputs = load_inputs(name)
    key, value = outputs(model, name, inputs)
    _, bare = outputs(base_model(name), name, inputs)
    v = versions()
    v["peft"] = peft.__version__
    ref = {
        "description": f"PEFT IA3 adapter on {BACKBONES}/{name} with ia3_l = 1 + 0.3 N(0, 1); {key} of the adapted "
                       "model (f32, eval) for the inputs of the backbone's reference.json.",
        "generator": v,
        "ia3_config": config_kwargs,
        **{k: enc(t) for k, t in inputs.items()},
        key: enc(value),
        "max_abs_change_from_bare": float((value - bare).abs().max()),
        "tolerance": {"f32_abs": 1e-5},
    }
    with open(os.path.join(d, "reference.json"), "w", encoding="utf-8") as f:
        f.write(dumps(ref) + "\n")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    print(f"  {key} changed by up to {ref['max_abs_change_from_bare']:.3g} from the bare model")


def main():
    os.chdir(REPO)
    make("tiny_bert", "tiny_bert_ia3",
         {"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"]}, 11)
    make("tiny_llama", "tiny_llama_ia3",
         {"target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"]}, 12)


if __name__ == "__main__":
    main()
