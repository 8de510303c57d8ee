#!/usr/bin/env python3
"""graft against PyTorch (+ PEFT) and ONNX Runtime on the same machine, in one run.

Every measurement is its own process (bench/bench_step for graft, bench/torch_reference.py
for the peers), so each peak resident memory is that run's alone; graft and its peer run
back to back for each configuration, so a drift of the machine hits both alike. Prints:

  - speed: the peer's seconds per step over graft's (> 1: graft is faster);
  - the fraction of the machine's GEMM peak each run reaches, the peak measured in this
    run with oneDNN at the model's own matmul shapes (f32 and bf16): model FLOPs of the
    step (forward; + backward through the activations where an adapter trains; + weight
    gradients for full fine-tuning) over its time;
  - peak resident memory, graft over the peer (< 1: graft needs less).

  make bench                                         # installs the peers into .venv-bench, runs all
  .venv-bench/bin/python bench/vs_torch.py --only train,f32 --steps 5
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ["lora", "houlsby", "prefix_tuning", "prompt_tuning", "full", "head"]


def configs(quick):
    out = []
    for dtype in ["f32", "bf16"]:
        for m in METHODS:
            out.append(("train", m, dtype, 32, 128, ["torch"]))
        for w in ["classify", "embed"]:
            out.append((w, "none", dtype, 32, 128, ["torch"] + (["onnxruntime"] if dtype == "f32" else [])))
        for seq in [16, 64]:
            out.append(("latency", "none", dtype, 1, seq, ["torch"] + (["onnxruntime"] if dtype == "f32" else [])))
    if quick:
        out = [c for c in out if c[1] in ("none", "lora", "full")]
    return out


def run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def model_flops(model_dir, workload, method, seq):
    """Model FLOPs per token of one step (matmuls only: the rest is under 2% here)."""
    c = json.loads((Path(model_dir) / "config.json").read_text())
    H, F, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    forward = L * (2 * (4 * H * H + 2 * H * F) + 4 * seq * H)
    if workload != "train" or method == "head":
        return forward  # inference; the linear probe runs the backbone forward only
    return forward * (3 if method == "full" else 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", default=str(HERE.parent / "build/bench/bench_step"), help="graft's bench_step binary")
    ap.add_argument("--model", default=str(HERE.parent / ".cache/models/all-MiniLM-L6-v2"))
    ap.add_argument("--threads", type=int, default=2, help="threads for every side (OMP_NUM_THREADS, torch, ORT)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated workloads, methods, dtypes: e.g. train,lora,full,f32 keeps f32 LoRA and full training")
    ap.add_argument("--quick", action="store_true", help="lora, full and inference only")
    ap.add_argument("--json", help="also write every run's record here")
    a = ap.parse_args()
    if not Path(a.graft).is_file():
        sys.exit(f"vs_torch: no {a.graft}: build it first (make build)")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    keep = set(filter(None, a.only.split(",")))
    kinds = {"workload": {"train", "classify", "embed", "latency"}, "method": set(METHODS) | {"none"}, "dtype": {"f32", "bf16"}}
    wanted = {k: keep & names for k, names in kinds.items()}  # each kind named narrows; unnamed kinds keep all
    common = ["--model", a.model, "--steps", str(a.steps), "--warmup", str(a.warmup)]

    def gemm_peak():
        g = run([a.graft, "--workload", "gemm", "--steps", "20", "--warmup", "3"], env)
        if "error" in g:
            sys.exit("vs_torch: the GEMM peak run failed: " + g["error"])
        return g

    # The peak is measured before and after the runs, the higher one kept: a burst of other
    # work on the machine during one measurement would otherwise inflate every fraction.
    records, rows = [gemm_peak()], []
    for workload, method, dtype, batch, seq, peers in configs(a.quick):
        if any(w and v not in w for w, v in ((wanted["workload"], workload), (wanted["method"], method), (wanted["dtype"], dtype))):
            continue
        print(f"measuring {workload} {method} {dtype} {batch}x{seq} ...", file=sys.stderr, flush=True)
        shape = ["--workload", workload, "--method", method, "--dtype", dtype, "--batch", str(batch), "--seq", str(seq)]
        g = run([a.graft] + shape + common, env)
        g.update(workload=workload, method=method, dtype=dtype)
        records.append(g)
        flops = model_flops(a.model, workload, method, seq) * batch * seq
        for peer in peers:
            t = run([sys.executable, str(HERE / "torch_reference.py"), "--engine", peer, "--threads", str(a.threads)] + shape + common, env)
            t.update(workload=workload, method=method, dtype=dtype, peer=peer)
            records.append(t)
            rows.append((workload, method, dtype, seq, peer, g, t, flops))
    records.append(gemm_peak())
    gemms = [r["gemm_flops"] for r in (records[0], records[-1])]
    f32_peak = max(g["f32"]["peak"] for g in gemms)
    bf16_peak = max(g["bf16"]["peak"] or 0 for g in gemms)
    # A bf16 run's ceiling is the faster of the two: without native bf16, f32 (graft widens).
    peak = {"f32": f32_peak, "bf16": max(f32_peak, bf16_peak)}
    native = gemms[0]["bf16_native"]
    bf16_text = f"{bf16_peak / 1e9:.0f} GFLOP/s" if bf16_peak else "none (oneDNN builds no bf16 matmul here)"
    print(f"GEMM peak (oneDNN, {a.threads} threads, this run): f32 {f32_peak / 1e9:.0f} GFLOP/s, bf16 {bf16_text}"
          f"{'' if native else '; no native bf16 (AVX512-BF16/AMX): graft widens bf16 weights to f32'}\n")
    header = (f"{'workload':<9} {'method':<14} {'dtype':<5} {'peer':<11} {'graft ms':>9} {'peer ms':>9} {'speed':>6} "
              f"{'graft %pk':>9} {'peer %pk':>8} {'graft MiB':>9} {'peer MiB':>8} {'mem':>5}")
    print(header)
    print("-" * len(header))
    for workload, method, dtype, seq, peer, g, t, flops in rows:
        def pct(r):
            return f"{100 * flops / r['median_s'] / peak[dtype]:.0f}%" if r.get("median_s") else "-"

        def ms(r):
            return f"{1e3 * r['median_s']:.1f}" if r.get("median_s") else "error"

        speed = f"{t['median_s'] / g['median_s']:.2f}" if g.get("median_s") and t.get("median_s") else "-"
        mem = f"{g['peak_rss_mib'] / t['peak_rss_mib']:.2f}" if g.get("peak_rss_mib") and t.get("peak_rss_mib") else "-"
        label = workload if workload != "latency" else f"lat{seq}"
        print(f"{label:<9} {method:<14} {dtype:<5} {peer:<11} {ms(g):>9} {ms(t):>9} {speed:>6} {pct(g):>9} {pct(t):>8} "
              f"{g.get('peak_rss_mib', 0):>9.0f} {t.get('peak_rss_mib', 0):>8.0f} {mem:>5}")
        for side, r in (("graft", g), (peer, t)):
            if "error" in r:
                print(f"    {side}: {r['error']}")
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))
    print("\nspeed: peer ms / graft ms (> 1: graft faster); mem: graft MiB / peer MiB (< 1: graft smaller); "
          "%pk: model FLOP/s over the GEMM peak of the run's dtype")


if __name__ == "__main__":
    main()
