#!/usr/bin/env python3
"""Where a model's time goes, kerf beside ONNX Runtime, per op type.

    .venv/bin/python testsuite/scripts/profile_vs_ort.py MODEL.onnx [--kerf target/release/kerf]
        [--runs 60] [--top 15] [--input x.npy] [--threads N | --scaling]

ONNX Runtime runs the model with one intra-op thread, ORT_ENABLE_ALL and
its node profiler on (`SessionOptions.enable_profiling`); the median of each
node's `*_kernel_time` over `--runs` calls is its time. kerf runs
`kerf bench MODEL --threads 1 --profile` (an instrumented build: median per
kernel). Printed: each engine's total, then per op type the two sums side
by side (ORT's op types after its own fusions: `Conv` holds fused
activations, `ReorderInput`/`ReorderOutput` are its NCHW <-> NCHWc copies;
kerf's after its rewrites: `ConvFused`, `Chain`, ...), then each engine's
slowest kernels. Kernel names differ between the engines, so nothing is
paired one to one; compare types and shapes. ORT's profiler adds a little
time per node, so its sum is an upper bound of its run time.

`--threads N` profiles both engines with N threads instead of one.
`--scaling` profiles each engine at one and at two threads and prints,
per engine, the kernels (kerf) and nodes (ORT) that lose the most time to
imperfect scaling (2t time - 1t time / 2, with the 1t/2t ratio): which
layers of a model fall short of 2x, and whether the other engine's
layers of the same kind do too (a memory-bound layer is bound by the
host's memory path in both).
"""
import argparse
import collections
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def ort_profile(model, x, runs, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(pathlib.Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if x is None:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(runs):
        sess.run(None, {inp.name: x})
    events = json.loads(pathlib.Path(sess.end_profiling()).read_text())
    times = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times[(e["args"].get("op_name", "?"), e["name"][: -len("_kernel_time")])].append(e["dur"] / 1000.0)
    return [(float(np.median(v)), op, name) for (op, name), v in times.items()]


def kerf_profile(kerf, model, inp, threads=1):
    cmd = [kerf, "bench", model, "--threads", str(threads), "--profile", "--iters", "100"]
    if inp:
        cmd += ["--input", inp]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        p = line.split()
        # "   #  op  layer  ms  share  MFLOP  GFLOP/s  tasks  code"
        if len(p) >= 9 and p[0].isdigit():
            rows.append((float(p[3]), p[1], f"#{p[0]} {p[2]}"))
    return rows


def by_type(rows):
    t = collections.Counter()
    for ms, op, _ in rows:
        t[op] += ms
    return t


def scaling(title, one, two, top):
    """Per kernel of one engine: the time lost to imperfect two-thread
    scaling, worst first."""
    t1, t2 = sum(r[0] for r in one), sum(r[0] for r in two)
    print(f"\n{title}: 1 thread {t1:.3f} ms, 2 threads {t2:.3f} ms, {t1 / t2:.2f}x; "
          f"the {top} kernels losing most (2t - 1t/2)")
    second = {(op, name): ms for ms, op, name in two}
    lost = []
    for ms, op, name in one:
        if (op, name) in second:
            ms2 = second[(op, name)]
            lost.append((ms2 - ms / 2, ms, ms2, op, name))
    for loss, ms, ms2, op, name in sorted(lost, reverse=True)[:top]:
        print(f"  {loss:8.4f}  {ms:8.4f} -> {ms2:8.4f} ms  {ms / ms2 if ms2 else 0:5.2f}x  {op:<14} {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--kerf", default="target/release/kerf")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--input", help="an .npy input (default: standard normal, seed 0)")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--threads", type=int, default=1, help="threads of both engines (default 1)")
    how.add_argument("--scaling", action="store_true", help="one against two threads, per kernel")
    a = ap.parse_args()
    x = np.load(a.input) if a.input else None
    if a.threads < 1:
        ap.error("--threads must be at least 1")
    if a.scaling:
        o1, o2 = ort_profile(a.model, x, a.runs, 1), ort_profile(a.model, x, a.runs, 2)
        k1, k2 = kerf_profile(a.kerf, a.model, a.input, 1), kerf_profile(a.kerf, a.model, a.input, 2)
        scaling("ORT", o1, o2, a.top)
        scaling("kerf", k1, k2, a.top)
        return 0
    o = ort_profile(a.model, x, a.runs, a.threads)
    k = kerf_profile(a.kerf, a.model, a.input, a.threads)
    print(f"ORT (profiled nodes) {sum(r[0] for r in o):.3f} ms   kerf {sum(r[0] for r in k):.3f} ms")
    ot, kt = by_type(o), by_type(k)
    print("\nORT op type           ms   | kerf op type         ms")
    ol, kl = ot.most_common(), kt.most_common()
    for i in range(max(len(ol), len(kl))):
        left = f"{ol[i][0]:<18}{ol[i][1]:8.3f}" if i < len(ol) else " " * 26
        right = f"{kl[i][0]:<18}{kl[i][1]:8.3f}" if i < len(kl) else ""
        print(f"{left}   | {right}")
    for title, rows in (("ORT", o), ("kerf", k)):
        print(f"\n{title}: slowest {a.top}")
        for ms, op, name in sorted(rows, reverse=True)[: a.top]:
            print(f"  {ms:8.4f}  {op:<18} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
