#!/usr/bin/python3
"""Writes tests/golden/fixtures.json: PyTorch reference outputs for graft's ops.

Run with Debian's interpreter (python3-torch 1.13, CPU):
    /usr/bin/python3 tests/golden/make_fixtures.py
Every case has fixed seeds, so rerunning reproduces the file. Each case stores its
inputs, the expected output, an upstream gradient and the expected input gradients
(f32 cases), and the tolerance test_golden.cpp asserts: |got - want| <= abs + rel*|want|.

bf16 cases round their inputs to bf16 and compute the reference in f32 on the rounded
values: that is graft's contract (bf16 operands, f32 accumulation and f32 output for
matmul; norms, softmax and GELU upcast to f32). An f32 activation times a bf16 weight is
rounded to bf16 where the CPU multiplies bf16 natively and widened otherwise: the two
cases carry "bf16_compute" ("native" / "widened"), and test_golden.cpp runs the one
that applies.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

F32_TOL = {"abs": 1e-5, "rel": 1e-4}
GRAD_TOL = {"abs": 1e-5, "rel": 1e-4}
# bf16 cases hold f32's tolerance too: the inputs are already bf16 values, whose
# products are exact in f32, so only the summation order differs. A kernel that
# rounded its accumulator or its output to bf16 (errors ~4e-3 relative) fails it.
BF16_TOL = F32_TOL


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def enc(t, dtype=None):
    t = t.detach()
    if dtype is None:
        dtype = "i64" if not t.is_floating_point() else "f32"
    if dtype == "i64":
        data = [int(v) for v in t.reshape(-1).tolist()]
    else:  # 9 significant digits round-trip every f32 exactly
        data = [float("%.9g" % v) for v in t.to(torch.float32).reshape(-1).tolist()]
    return {"dtype": dtype, "shape": list(t.shape), "data": data}


def case(name, op, inputs, fn, params=None, tol=F32_TOL, grads=True, seed=0):
    """inputs: list of (name, tensor, dtype, differentiable). fn(*tensors) -> output."""
    leaves = []
    for _, t, _, diff in inputs:
        leaf = t.detach().clone()
        if diff and grads:
            leaf.requires_grad_(True)
        leaves.append(leaf)
    out = fn(*leaves)
    entry = {
        "name": name,
        "op": op,
        "params": params or {},
        "inputs": [dict(enc(t, dt), name=n) for (n, _, dt, _), t in zip(inputs, leaves)],
        "output": enc(out),
        "tol": tol,
    }
    if grads:
        gy = torch.ones_like(out) if out.dim() == 0 else randn(gen(seed + 1000), *out.shape)
        out.backward(gy)
        entry["grad_output"] = enc(gy)
        entry["grads"] = {n: enc(t.grad) for (n, _, _, diff), t in zip(inputs, leaves) if diff}
        entry["grad_tol"] = GRAD_TOL
    return entry


def matmul_cases():
    cases = []
    specs = [  # name, a shape, b shape, transpose_a, transpose_b
        ("matmul_plain", (5, 7), (7, 6), False, False),
        ("matmul_transpose_a", (7, 5), (7, 6), True, False),
        ("matmul_transpose_b", (5, 7), (6, 7), False, True),
        ("matmul_batched_3d_2d", (3, 4, 7), (7, 5), False, False),
        ("matmul_batched_3d_2d_transpose_a", (3, 7, 4), (7, 5), True, False),
        ("matmul_batched_3d_2d_transpose_b", (3, 4, 7), (5, 7), False, True),
        ("matmul_batched_3d_3d", (2, 4, 7), (2, 7, 3), False, False),
        ("matmul_2d_batched_3d", (4, 7), (3, 7, 5), False, False),
    ]
    for i, (name, sa, sb, ta, tb) in enumerate(specs):
        g = gen(10 + i)
        a, b = randn(g, *sa), randn(g, *sb)

        def fn(a, b, ta=ta, tb=tb):
            return torch.matmul(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)

        p = {"transpose_a": ta, "transpose_b": tb}
        cases.append(case(name, "matmul", [("a", a, "f32", True), ("b", b, "f32", True)], fn, p, seed=10 + i))
        if name in ("matmul_plain", "matmul_batched_3d_2d"):
            cases.append(case(name + "_bf16", "matmul", [("a", bf16(a), "bf16", False), ("b", bf16(b), "bf16", False)],
                              fn, p, tol=BF16_TOL, grads=False))
    return cases


def linear_cases():
    g = gen(20)
    x, w, b = randn(g, 2, 3, 8), randn(g, 5, 8, scale=0.5), randn(g, 5, scale=0.1)
    return [
        case("linear_bias", "linear", [("x", x, "f32", True), ("weight", w, "f32", True), ("bias", b, "f32", True)],
             F.linear, seed=20),
        case("linear_bias_bf16", "linear",
             [("x", bf16(x), "bf16", False), ("weight", bf16(w), "bf16", False), ("bias", b, "f32", False)],
             F.linear, tol=BF16_TOL, grads=False),
        # A frozen bf16 weight with f32 activations: graft rounds x to bf16 for the matmul
        # on a CPU with native bf16, and widens the weight to f32 on one without.
        dict(case("linear_bf16_weight_f32_input", "linear",
                  [("x", x, "f32", False), ("weight", bf16(w), "bf16", False), ("bias", b, "f32", False)],
                  lambda x, w, b: F.linear(bf16(x), w, b), tol=BF16_TOL, grads=False), bf16_compute="native"),
        dict(case("linear_bf16_weight_f32_input_widened", "linear",
                  [("x", x, "f32", False), ("weight", bf16(w), "bf16", False), ("bias", b, "f32", False)],
                  F.linear, tol=BF16_TOL, grads=False), bf16_compute="widened"),
    ]


def layer_norm_cases():
    cases = []
    g = gen(30)
    # Rows with an offset and spread of their own, as hidden states have.
    x = randn(g, 4, 16) * torch.linspace(0.5, 4.0, 4)[:, None] + torch.linspace(-2, 3, 4)[:, None]
    gamma, beta = 1 + randn(g, 16, scale=0.2), randn(g, 16, scale=0.2)
    for eps, tag in ((1e-12, "eps1e-12"), (1e-5, "eps1e-5")):
        def fn(x, gm, bt, eps=eps):
            return F.layer_norm(x, (16,), gm, bt, eps)

        cases.append(case("layer_norm_" + tag, "layer_norm",
                          [("x", x, "f32", True), ("gamma", gamma, "f32", True), ("beta", beta, "f32", True)],
                          fn, {"eps": eps}, seed=30))
    cases.append(case("layer_norm_eps1e-12_bf16", "layer_norm",
                      [("x", bf16(x), "bf16", False), ("gamma", gamma, "f32", False), ("beta", beta, "f32", False)],
                      lambda x, gm, bt: F.layer_norm(x, (16,), gm, bt, 1e-12), {"eps": 1e-12}, tol=F32_TOL,
                      grads=False))
    return cases


def softmax_cases():
    g = gen(40)
    B, H, T = 2, 3, 5
    x = randn(g, B, H, T, T, scale=2.0)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.float32)
    mask = ((1 - keep) * -1e9).reshape(B, 1, 1, T)  # BERT-style padding mask

    def fn(x, m):
        return torch.softmax(x + m, dim=-1)

    return [
        case("softmax_mask", "softmax", [("x", x, "f32", True), ("mask", mask, "f32", False)], fn, seed=40),
        # bf16 scores give bf16 probabilities: f32 arithmetic, rounded. oneDNN's bf16
        # kernel rounds exp(x − max) before scaling it (twice, not once): 1.5 bf16
        # spacings, 2^-8 · 1.5 relative, hence rel 8e-3.
        case("softmax_mask_bf16", "softmax", [("x", bf16(x), "bf16", False), ("mask", mask, "f32", False)],
             lambda x, m: bf16(fn(x, m)), tol={"abs": 1e-5, "rel": 8e-3}, grads=False),
    ]


def gelu_cases():
    g = gen(50)
    x = torch.cat([torch.linspace(-6, 6, 49), randn(g, 15, scale=2.0)])
    cases = []
    for approx in ("erf", "tanh"):
        def fn(x, approx=approx):
            return F.gelu(x, approximate="none" if approx == "erf" else "tanh")

        cases.append(case("gelu_" + approx, "gelu", [("x", x, "f32", True)], fn, {"approx": approx}, seed=50))
    cases.append(case("gelu_erf_bf16", "gelu", [("x", bf16(x), "bf16", False)], F.gelu, {"approx": "erf"},
                      tol=F32_TOL, grads=False))
    return cases


def cross_entropy_cases():
    g = gen(60)
    logits = randn(g, 8, 5, scale=2.0)
    targets = torch.tensor([0, 4, -100, 2, 1, -100, 3, 2])
    return [case("cross_entropy_ignore_index", "cross_entropy",
                 [("logits", logits, "f32", True), ("targets", targets, "i64", False)],
                 lambda l, t: F.cross_entropy(l, t, ignore_index=-100), {"ignore_index": -100}, seed=60)]


def mlp_adamw():
    """10 AdamW steps on linear -> GELU -> linear -> cross-entropy, from stored weights."""
    g = gen(70)
    x = randn(g, 16, 8)
    y = torch.randint(0, 3, (16,), generator=g)
    init = {
        "w1": randn(g, 12, 8, scale=1 / math.sqrt(8)),
        "b1": randn(g, 12, scale=0.1),
        "w2": randn(g, 3, 12, scale=1 / math.sqrt(12)),
        "b2": torch.zeros(3),
    }
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    lr, wd = 1e-2, 0.01
    opt = torch.optim.AdamW(list(params.values()), lr=lr, weight_decay=wd)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        h = F.gelu(F.linear(x, params["w1"], params["b1"]))
        loss = F.cross_entropy(F.linear(h, params["w2"], params["b2"]), y)
        loss.backward()
        losses.append(float(loss.item()))
        opt.step()
    return {
        "x": enc(x), "y": enc(y),
        "init": {k: enc(v) for k, v in init.items()},
        "final": {k: enc(v) for k, v in params.items()},
        "lr": lr, "weight_decay": wd, "betas": [0.9, 0.999], "eps": 1e-8,
        "losses": losses,
        "loss_rel_tol": 1e-4,
        "final_tol": {"abs": 1e-5, "rel": 1e-4},
    }


def main():
    torch.set_num_threads(1)  # a fixed reduction order: reruns write identical files
    cases = matmul_cases() + linear_cases() + layer_norm_cases() + softmax_cases() + gelu_cases() + cross_entropy_cases()
    doc = {
        "generator": "tests/golden/make_fixtures.py",
        "torch": torch.__version__,
        "cases": cases,
        "mlp_adamw": mlp_adamw(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
