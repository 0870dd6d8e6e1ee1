#!/usr/bin/env python3
"""Guest instructions one inference of a kerf object executes under
qemu-user: a proxy for kernel work on ISAs without hardware here (AArch64,
RISC-V), never a time.

    qemu_insns.py KERF MODEL.onnx --target aarch64 --cpu dotprod [--per-kernel N] [-- KERF_COMPILE_FLAGS...]

Compiles MODEL for the target (`kerf compile --name m`), links it with a
small static C driver (inputs filled with a fixed pattern, one `m_run`,
an output checksum) by the cross GCC, runs it under qemu with
`-d in_asm,exec,nochain` and sums the translated blocks' instruction
counts over their executions. The driver alone (the same program with the
call skipped) is run too and subtracted, so the number printed is the
model's. `--per-kernel N` also lists the N functions executing the most
instructions: the model's kernels `m_k<i>` (node `i` of the graph that
`kerf inspect --dump-ir optimize` prints for the same target and flags,
named here by its op and layer) and the assembled micro-kernels
`m_u<i>`. Needs the cross GCC, binutils and qemu-user
(testsuite/install-deps.sh).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "kerf_runtime.h"
extern int32_t m_run(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt);
extern const kerf_model_desc *m_describe(void);
int main(void) {
    const kerf_model_desc *d = m_describe();
    void *in[64], *out[64];
    if (d->num_inputs > 64 || d->num_outputs > 64) return 2;
    for (uint32_t i = 0; i < d->num_inputs; i++) {
        unsigned char *p = malloc(d->inputs[i].bytes + 1);
        for (uint64_t j = 0; j < d->inputs[i].bytes; j++) p[j] = (unsigned char)(j % 4 == 3 ? 0x3f : (j * 37) % 251);
        in[i] = p;
    }
    for (uint32_t i = 0; i < d->num_outputs; i++) out[i] = malloc(d->outputs[i].bytes + 1);
    void *arena = aligned_alloc(64, (d->arena_bytes + 64) / 64 * 64);
    int r = getenv("KERF_SKIP_RUN") ? 0 : m_run((const void *const *)in, out, arena, NULL);
    unsigned long sum = 0;
    for (uint64_t j = 0; j < d->outputs[0].bytes; j++) sum = sum * 31 + ((unsigned char *)out[0])[j];
    printf("status %d checksum %lx\n", r, sum);
    return r;
}
"""
TARGETS = {
    "aarch64": ("aarch64-unknown-linux-gnu", "aarch64-linux-gnu-gcc", "qemu-aarch64", "/usr/aarch64-linux-gnu"),
    "riscv64": ("riscv64gc-unknown-linux-gnu", "riscv64-linux-gnu-gcc", "qemu-riscv64", "/usr/riscv64-linux-gnu"),
}
NM = {"aarch64": "aarch64-linux-gnu-nm", "riscv64": "riscv64-linux-gnu-nm"}
# qemu's CPU for each preset that needs more than its default
QEMU_CPU = {"dotprod": ["-cpu", "max"], "v": ["-cpu", "rv64,v=true,vlen=128"]}
TRACE = re.compile(rb"Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
INSN = re.compile(rb"0x([0-9a-f]+):\s")


def count(log: Path) -> tuple[int, dict[int, int]]:
    """Guest instructions executed: each block's length (from its `IN:`
    listing) summed over its `Trace` lines; also per block start."""
    lengths, start, total, per = {}, None, 0, {}
    with open(log, "rb") as f:
        for line in f:
            if line.startswith(b"IN:"):
                start = None
                continue
            m = TRACE.match(line)
            if m:
                pc = int(m[1], 16)
                n = lengths.get(pc, 0)
                total += n
                per[pc] = per.get(pc, 0) + n
                continue
            m = INSN.match(line)
            if m:
                if start is None:
                    start = int(m[1], 16)
                    lengths[start] = 0
                lengths[start] += 1
    return total, per


NODE = re.compile(r"^  %\d+(?:, %\d+)* = (\w+)(?:\{.*\})?\(.*@\"([^\"]*)\"$")


def node_names(kerf, model, triple, cpu, flags) -> list[str]:
    """`op layer` of each node of the optimised graph, in node order (a
    kernel `m_k<i>` runs node `i`)."""
    cmd = [kerf, "inspect", model, "--dump-ir", "optimize", "--target", triple, "--cpu", cpu] + flags
    out = subprocess.run(cmd, capture_output=True, text=True)
    names = []
    for line in out.stdout.splitlines():
        m = NODE.match(line)
        if m:
            names.append(f"{m[1]} {m[2]}")
    return names


def by_function(exe: Path, nm: str, per: dict[int, int]) -> list[tuple[str, int]]:
    """`per` (block start → instructions) summed per function symbol of
    `exe` (`nm -n`: the last symbol at or below each address)."""
    import bisect
    syms = []
    for line in subprocess.run([nm, "-n", str(exe)], capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "tTwW":
            syms.append((int(f[0], 16), f[2]))
    addrs = [a for a, _ in syms]
    out = {}
    for pc, n in per.items():
        i = bisect.bisect_right(addrs, pc) - 1
        name = syms[i][1] if i >= 0 else "?"
        out[name] = out.get(name, 0) + n
    return sorted(out.items(), key=lambda kv: -kv[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kerf")
    ap.add_argument("model")
    ap.add_argument("--target", choices=sorted(TARGETS), required=True)
    ap.add_argument("--cpu", default="baseline")
    ap.add_argument("--per-kernel", type=int, default=0, metavar="N", help="list the N busiest functions")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.flags = extra
    triple, cc, qemu, sysroot = TARGETS[a.target]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        obj, drv, exe, log = tmp / "m.o", tmp / "drv.c", tmp / "m", tmp / "q.log"
        compile_cmd = [a.kerf, "compile", a.model, "--target", triple, "--cpu", a.cpu, "--name", "m", "-o", str(obj)]
        built = subprocess.run(compile_cmd + a.flags, capture_output=True, text=True)
        if built.returncode != 0:
            sys.exit(f"kerf compile failed:\n{built.stdout}{built.stderr}")
        drv.write_text(DRIVER)
        subprocess.run([cc, "-static", "-O2", "-I", str(REPO / "runtime/include"), str(drv), str(obj), "-o", str(exe)],
                       check=True)
        counts, funcs = {}, {}
        for skip in (False, True):
            env = dict(os.environ)
            env.pop("KERF_SKIP_RUN", None)
            if skip:
                env["KERF_SKIP_RUN"] = "1"
            cmd = [qemu, *QEMU_CPU.get(a.cpu, []), "-L", sysroot, "-d", "in_asm,exec,nochain", "-D", str(log), str(exe)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{exe.name}: exit {out.returncode}: {out.stdout}{out.stderr}")
            total, per = count(log)
            counts[skip] = (total, out.stdout.strip())
            if a.per_kernel:
                funcs[skip] = dict(by_function(exe, NM[a.target], per))
            log.unlink()
    n = counts[False][0] - counts[True][0]
    print(f"{Path(a.model).name} {a.target} --cpu {a.cpu} {' '.join(a.flags)}: {n} instructions "
          f"({n / 1e6:.2f} M; driver {counts[True][0] / 1e6:.2f} M subtracted), {counts[False][1]}")
    if a.per_kernel:
        # each function's own count, the driver's run subtracted (main's fill loop)
        own = {k: v - funcs[True].get(k, 0) for k, v in funcs[False].items()}
        nodes = node_names(a.kerf, a.model, triple, a.cpu, a.flags)
        for name, c in sorted(own.items(), key=lambda kv: -kv[1])[:a.per_kernel]:
            k = re.fullmatch(r"m_k(\d+)", name)
            what = nodes[int(k[1])] if k and int(k[1]) < len(nodes) else ""
            print(f"  {name:10} {c / 1e6:9.3f} M  {100 * c / max(n, 1):5.1f}%  {what}")


if __name__ == "__main__":
    main()
