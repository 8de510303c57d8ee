#!/usr/bin/env python3
"""What Hugging Face PEFT's add_weighted_adapter makes of LoRA and DoRA adapters
(tests/golden/peft_merge/), for tests/integration/test_merge.cpp to compare graft's
`graft merge` (graft::Session::merge_adapters) against.

PEFT makes five adapters on the tiny random BERT of tests/golden/backbones (BertModel),
each with lora_B (and the DoRA magnitudes) set to random values, target_modules
["query", "value"]:

  ad_a/    LoRA r=4, lora_alpha=8        ad_b/    LoRA r=4, lora_alpha=16
  ad_c/    LoRA r=2, lora_alpha=8 (a rank of its own: cat and svd accept it)
  dora_a/  DoRA r=4, lora_alpha=8        dora_b/  DoRA r=4, lora_alpha=4

(No short names such as "a": PEFT 0.10.0's get_peft_model_state_dict strips
".<adapter name>" from every key, and ".a" would cut "layer.0.attention".)

saves each with save_pretrained, then runs add_weighted_adapter once per case of CASES
(adapters, weights, combination_type, density, majority_sign_method) and writes the new
adapter's tensors (get_peft_model_state_dict) to results/<case>.safetensors and the
cases, with the new r and lora_alpha PEFT gave, to cases.json.

DARE draws its masks with torch.bernoulli, whose stream graft does not reproduce: the
script wraps torch.bernoulli and records every mask it draws, named
"<adapter>/<tensor name>" (the input adapter and the lora_A / lora_B tensor it pruned),
in masks/<case>.safetensors; test_merge.cpp hands those masks to graft through
MergeOptions::dare_mask, so the arithmetic is compared exactly.

PEFT 0.10.0's random_pruning computes torch.div(pruned, density) and drops the result
(huggingface/peft#3152 fixed it in 2026): its DARE does not rescale by 1/density. The
cases ending in "_peft010" are PEFT 0.10.0 as installed; the "_rescaled" cases run with
random_pruning replaced by the fixed function of #3152 (graft's default).

graft -> PEFT: test_merge.cpp (GraftMergedFoldersForPeft) writes graft_merged_*/ (folders
`graft merge` made from these inputs, with graft_outputs.json: graft's outputs for the
backbone's reference inputs); this script loads each with PeftModel.from_pretrained and
asserts that PEFT's outputs equal graft's (atol 1e-5).

Regenerate (the reference venv of make_peft_lora_fixtures.py):
    /work/.venv-ref/bin/python tests/golden/make_peft_merge_fixtures.py          # both ways
    GRAFT_WRITE_PEFT_FIXTURES=1 build/tests/test_merge --gtest_filter='*GraftMerged*'
        # rewrites graft_merged_*/ (then run this script again to check them)
    /work/.venv-ref/bin/python tests/golden/make_peft_merge_fixtures.py --verify-only

Versions used: see cases.json "generator". f32, one thread, fixed seeds: reruns write
identical files.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_peft_lora_fixtures as lora  # noqa: E402  (sets the offline flags and torch threads)

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

OUT = os.path.join(lora.REPO, "tests", "golden", "peft_merge")

ADAPTERS = {
    "ad_a": dict(r=4, lora_alpha=8),
    "ad_b": dict(r=4, lora_alpha=16),
    "ad_c": dict(r=2, lora_alpha=8),
    "dora_a": dict(r=4, lora_alpha=8, use_dora=True),
    "dora_b": dict(r=4, lora_alpha=4, use_dora=True),
}

# name: adapters, weights, combination_type, density, majority_sign_method, fixed DARE
CASES = [
    ("linear", ["ad_a", "ad_b"], [0.7, 0.3], "linear", None, "total", False),
    ("cat", ["ad_a", "ad_c"], [0.7, 0.3], "cat", None, "total", False),
    ("svd", ["ad_a", "ad_c"], [0.7, 0.3], "svd", None, "total", False),
    ("svd_negative", ["ad_a", "ad_c"], [0.6, -0.4], "svd", None, "total", False),
    ("ties", ["ad_a", "ad_b"], [0.7, 0.3], "ties", 0.5, "total", False),
    ("ties_frequency", ["ad_a", "ad_b"], [0.7, 0.3], "ties", 0.3, "frequency", False),
    ("ties_svd", ["ad_a", "ad_c"], [0.7, 0.3], "ties_svd", 0.5, "total", False),
    ("magnitude_prune", ["ad_a", "ad_b"], [0.7, 0.3], "magnitude_prune", 0.5, "total", False),
    ("dare_linear_peft010", ["ad_a", "ad_b"], [0.7, 0.3], "dare_linear", 0.6, "total", False),
    ("dare_ties_peft010", ["ad_a", "ad_b"], [0.7, 0.3], "dare_ties", 0.6, "total", False),
    ("dare_linear_rescaled", ["ad_a", "ad_b"], [0.7, 0.3], "dare_linear", 0.6, "total", True),
    ("dare_ties_rescaled", ["ad_a", "ad_b"], [0.7, 0.3], "dare_ties", 0.6, "total", True),
    ("dora_linear", ["dora_a", "dora_b"], [0.5, 0.5], "linear", None, "total", False),
    ("dora_cat", ["dora_a", "dora_b"], [0.7, 0.3], "cat", None, "total", False),
]


def fixed_random_pruning(tensor, density, rescale):
    """random_pruning as huggingface/peft#3152 fixed it: the rescale is kept."""
    mask = torch.bernoulli(torch.full_like(input=tensor, fill_value=density))
    pruned_tensor = tensor * mask
    if rescale:
        pruned_tensor = torch.div(input=pruned_tensor, other=density)
    return pruned_tensor


def verify():
    folders = sorted(f for f in os.listdir(OUT) if f.startswith("graft_merged_"))
    ok = True
    for folder in folders:
        ok &= lora.verify("tiny_bert", os.path.join(OUT, folder))
    if not folders:
        print("no graft_merged_*/ folders (written by test_merge, see the docstring)")
    return ok


def make():
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from peft.tuners.lora.model import LoraModel
    from peft.utils import merge_utils

    os.chdir(lora.REPO)
    for name in list(ADAPTERS) + ["results", "masks"]:
        shutil.rmtree(os.path.join(OUT, name), ignore_errors=True)
    os.makedirs(os.path.join(OUT, "results"))
    os.makedirs(os.path.join(OUT, "masks"))
    torch.manual_seed(7)
    base = lora.base_model("tiny_bert")
    names = list(ADAPTERS)
    model = None
    for i, name in enumerate(names):
        cfg = LoraConfig(target_modules=["query", "value"], lora_dropout=0.0, **ADAPTERS[name])
        if model is None:
            model = get_peft_model(base, cfg, adapter_name=name).eval()
        else:
            model.add_adapter(name, cfg)
    g = torch.Generator().manual_seed(2031)
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if ".lora_B." in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    for name in names:
        tmp = os.path.join(OUT, "tmp")
        model.save_pretrained(tmp, selected_adapters=[name], safe_serialization=True)
        src = os.path.join(tmp, name)
        dst = os.path.join(OUT, name)
        shutil.move(src, dst)
        shutil.rmtree(tmp)
        if os.path.exists(os.path.join(dst, "README.md")):
            os.remove(os.path.join(dst, "README.md"))
        cfg_path = os.path.join(dst, "adapter_config.json")
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        cfg["target_modules"] = sorted(cfg["target_modules"])
        with open(cfg_path, "w", encoding="utf-8") as f:
            f.write(json.dumps(cfg, indent=2, sort_keys=True))
        if ADAPTERS[name].get("use_dora"):
            # PEFT 0.10.0's dora_init replaces each layer's lora_magnitude_vector dict, so
            # in a model with several DoRA adapters only the last keeps its magnitudes
            # and save_pretrained writes none for the others: write them as a model of
            # its own would (random, around the frozen rows' norms). add_weighted_adapter
            # reads no input's magnitude, so this changes no merge.
            path = os.path.join(dst, "adapter_model.safetensors")
            tensors = load_file(path)
            for key in sorted(tensors):
                if key.endswith(".lora_A.weight"):
                    module = key[: -len(".lora_A.weight")]
                    weight = model.get_submodule(module).base_layer.weight.detach()
                    norm = torch.linalg.norm(weight, dim=1)
                    tensors[module + ".lora_magnitude_vector"] = norm * (1 + 0.1 * torch.randn(norm.shape, generator=g))
            save_file(dict(sorted(tensors.items())), path, metadata={"format": "pt"})
        print(f"  wrote {os.path.relpath(dst, lora.REPO)}/")

    # Record every DARE mask, named after the input adapter and tensor it prunes.
    modules = {id(m): n for n, m in model.named_modules()}
    current = {}
    recorded = {}
    real_bernoulli = torch.bernoulli

    def bernoulli(p, *args, **kwargs):
        mask = real_bernoulli(p, *args, **kwargs)
        k = current["calls"]
        current["calls"] += 1
        n = len(current["adapters"])
        part = ["lora_A", "lora_B"][k // n]
        recorded[f"{current['adapters'][k % n]}/{current['module']}.{part}.weight"] = mask.clone().contiguous()
        return mask

    real_generalized = LoraModel._generalized_task_arithmetic_weighted_adapter

    def generalized(self, combination_type, adapters, weights, target, *args):
        current.update(module=modules[id(target)], adapters=list(adapters), calls=0)
        return real_generalized(self, combination_type, adapters, weights, target, *args)

    LoraModel._generalized_task_arithmetic_weighted_adapter = generalized
    torch.bernoulli = bernoulli
    real_random_pruning = merge_utils.random_pruning
    cases = []
    torch.manual_seed(99)
    for case, adapters, weights, combination, density, sign, fixed in CASES:
        recorded.clear()
        merge_utils.random_pruning = fixed_random_pruning if fixed else real_random_pruning
        model.add_weighted_adapter(adapters, weights, case, combination_type=combination, density=density,
                                   majority_sign_method=sign)
        state = get_peft_model_state_dict(model, adapter_name=case)
        save_file({k: v.contiguous() for k, v in sorted(state.items())}, os.path.join(OUT, "results", case + ".safetensors"))
        if recorded:
            save_file(dict(sorted(recorded.items())), os.path.join(OUT, "masks", case + ".safetensors"))
        cfg = model.peft_config[case]
        cases.append({"name": case, "adapters": adapters, "weights": weights, "combination_type": combination,
                      "density": density, "majority_sign_method": sign, "dare_rescale": fixed,
                      "r": cfg.r, "lora_alpha": cfg.lora_alpha, "use_dora": cfg.use_dora, "masks": bool(recorded)})
        print(f"  {case}: {combination} of {adapters} with {weights}: r={cfg.r}, {len(state)} tensors,"
              f" {len(recorded)} masks")
    merge_utils.random_pruning = real_random_pruning
    torch.bernoulli = real_bernoulli
    lora.write_json(os.path.join(OUT, "cases.json"), {
        "description": "PEFT add_weighted_adapter on the adapters of this folder (tiny_bert); see "
                       "tests/golden/make_peft_merge_fixtures.py",
        "generator": lora.peft_versions(),
        "backbone": "tests/golden/backbones/tiny_bert",
        "cases": cases,
        "tolerance": {"f32_abs": 1e-5},
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify-only", action="store_true", help="only check the graft-merged folders with PEFT")
    args = ap.parse_args()
    os.chdir(lora.REPO)
    if not args.verify_only:
        make()
    sys.exit(0 if verify() else 1)


if __name__ == "__main__":
    main()
