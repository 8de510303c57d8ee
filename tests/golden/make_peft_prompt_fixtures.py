#!/usr/bin/env python3
"""Writes tests/golden/peft_prompt/: prefix-tuning and prompt-tuning adapters saved by
Hugging Face PEFT on the tiny HF fixtures of tests/golden/backbones, with the outputs
PEFT's own models give for fixed inputs. graft loads each folder with load_adapter (it
has no graft_adapter.json, so it goes through adapter_config.json's peft_type) and must
reproduce the outputs.

Run it with the reference environment of make_backbone_fixtures.py plus PEFT >= 0.12
(0.12 is the first release that sizes prefix tuning's key/value rows by
num_key_value_heads on grouped-query models, PEFT #1901; tiny_llama is one):

    /work/.venv-ref/bin/pip install --no-deps peft==0.12.0
    /work/.venv-ref/bin/python tests/golden/make_peft_prompt_fixtures.py

(or `pip install --no-deps --target DIR peft==0.12.0` and PYTHONPATH=DIR, leaving the
venv's PEFT alone). The committed files were made with peft 0.12.0, torch 1.13.0a0
(Debian), transformers 4.39.3.

Each folder holds PEFT's adapter_config.json and adapter_model.safetensors (README.md
dropped) and reference.json:
  input_ids, attention_mask   [2, 5], the second row padded at the end
  output                      what the PEFT model returns: BertModel (FEATURE_EXTRACTION)
                              last_hidden_state, LlamaForCausalLM (CAUSAL_LM) logits.
                              Prompt tuning returns rows for the virtual tokens too
                              ([B, n + T, ...]); prefix tuning only for the real tokens.
  output_positions_from_zero  prefix tuning only: the same forward with the real tokens
                              at positions 0..T-1. PEFT passes the prefix as
                              past_key_values, so Hugging Face's models number the real
                              tokens from n (absolute positions in BERT, the RoPE angle
                              in LLaMA); this second output isolates that convention.
  virtual_tokens, tolerance, peft_version
bert_prompt_text is saved as PEFT initialises it from prompt_tuning_init_text ("the big
cat sat": [CLS] the big cat sat [SEP], repeated and cut to 8 tokens), untrained.
Models run in f32, eval mode, one thread, eager attention, fixed seeds: reruns rewrite
identical files.
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertModel, LlamaForCausalLM  # noqa: E402

import peft  # noqa: E402
from peft import (PeftModel, PrefixTuningConfig, PromptTuningConfig,  # noqa: E402
                  get_peft_model)

HERE = os.path.dirname(os.path.abspath(__file__))
BACKBONES = os.path.join(HERE, "backbones")
OUT = os.path.join(HERE, "peft_prompt")
N = 3  # virtual tokens


def tensor_json(t):
    t = t.detach().contiguous()
    if t.dtype in (torch.int64, torch.int32):
        return {"dtype": "i64", "shape": list(t.shape), "data": [int(x) for x in t.flatten()]}
    return {"dtype": "f32", "shape": list(t.shape), "data": [float(f"{x:.7g}") for x in t.float().flatten()]}


def load(kind):
    if kind == "bert":
        return BertModel.from_pretrained(os.path.join(BACKBONES, "tiny_bert")).eval()
    return LlamaForCausalLM.from_pretrained(os.path.join(BACKBONES, "tiny_llama"), attn_implementation="eager").eval()


def inputs(kind):
    if kind == "bert":
        ids = [[2, 5, 9, 17, 3], [2, 11, 7, 3, 0]]
    else:
        ids = [[1, 5, 9, 17, 23], [1, 11, 7, 30, 0]]
    return torch.tensor(ids), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def output_of(kind, result):
    return result.last_hidden_state if kind == "bert" else result.logits


def positions_from_zero(model, kind, ids, mask):
    """PEFT's prefix forward, but with the real tokens at positions 0..T-1."""
    B, T = ids.shape
    full_mask = torch.cat([torch.ones(B, N, dtype=mask.dtype), mask], dim=1)
    past = model.get_prompt(B)
    pos = torch.arange(T).unsqueeze(0).expand(B, -1)
    return output_of(kind, model.base_model(input_ids=ids, attention_mask=full_mask, past_key_values=past, position_ids=pos))


def make(name, kind, config, noise=True):
    torch.manual_seed(1234)
    model = get_peft_model(load(kind), config).eval()
    with torch.no_grad():
        # Non-trivial values in every trainable tensor (PEFT's N(0, 1) embedding init is
        # already random; the projection's biases get noise too). TEXT init is saved as
        # initialised: graft must derive the same embeddings from the same text.
        for p in model.parameters():
            if p.requires_grad and noise:
                p.add_(0.1 * torch.randn_like(p))
        ids, mask = inputs(kind)
        out = output_of(kind, model(input_ids=ids, attention_mask=mask))
        shifted = positions_from_zero(model, kind, ids, mask) if isinstance(config, PrefixTuningConfig) else None

    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    readme = os.path.join(folder, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    # The base model as a path inside the repository, not this machine's.
    config_path = os.path.join(folder, "adapter_config.json")
    with open(config_path) as f:
        saved = json.load(f)
    for key in ("base_model_name_or_path", "tokenizer_name_or_path"):
        if saved.get(key):
            saved[key] = os.path.relpath(saved[key], os.path.dirname(os.path.dirname(HERE)))
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
        f.write("\n")

    # What PEFT itself gets back from the folder (prompt_embeddings loaded in inference
    # mode, the projection folded) must be what it computed before saving.
    with torch.no_grad():
        reloaded = PeftModel.from_pretrained(load(kind), folder).eval()
        again = output_of(kind, reloaded(input_ids=ids, attention_mask=mask))
    assert torch.allclose(out, again, atol=1e-6), f"{name}: PEFT's reload differs by {(out - again).abs().max()}"

    ref = {
        "peft_version": peft.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "virtual_tokens": config.num_virtual_tokens,
        "tolerance": {"abs": 1e-5, "rel": 0.0},
        "input_ids": tensor_json(ids),
        "attention_mask": tensor_json(mask),
        "output": tensor_json(out),
    }
    if shifted is not None:
        ref["output_positions_from_zero"] = tensor_json(shifted)
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")
    print(f"{name}: output {list(out.shape)}")


def main():
    major, minor = (int(x) for x in peft.__version__.split(".")[:2])
    if (major, minor) < (0, 12):
        sys.exit(f"peft {peft.__version__}: need >= 0.12 (grouped-query prefix tuning); see the docstring")
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    make("bert_prefix", "bert", PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=N))
    make("bert_prefix_projection", "bert",
         PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=N, prefix_projection=True,
                            encoder_hidden_size=16))
    make("bert_prompt", "bert", PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=N))
    make("bert_prompt_text", "bert",
         PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=8, prompt_tuning_init="TEXT",
                            prompt_tuning_init_text="the big cat sat",
                            tokenizer_name_or_path=os.path.join(BACKBONES, "tiny_bert")), noise=False)
    make("llama_prefix", "llama", PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N))
    make("llama_prompt", "llama", PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N))


if __name__ == "__main__":
    main()
