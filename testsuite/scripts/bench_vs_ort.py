#!/usr/bin/env python3
"""kerf against ONNX Runtime, same model, same input, same process.

For every model (a folder with model.onnx and optionally input_*.npy, or a
.onnx file; default: the nine in /work/shared/models if present, else
testsuite/fixtures/models + testsuite/generated):

1. `kerf compile --cpu native -o m.o --name m` (`--cpu` sets another preset) and
   `cc -shared m.o runtime/c/kerf_pool.c -o m.so` (the object plus the C
   pthread pool), loaded with ctypes;
2. ONNX Runtime sessions with intra_op_num_threads 1 and 2,
   ORT_ENABLE_ALL, ORT_SEQUENTIAL;
3. in rounds, each engine in turn (kerf 1t, ORT 1t, kerf 2t, ORT 2t) runs
   a batch of calls, every call timed on its own (time.perf_counter_ns):
   kerf through ctypes (`m_run(inputs, outputs, arena, rt)`, rt NULL for
   1 thread, the C pool's kerf_runtime for 2), ORT through
   `session.run` on the same numpy input. Medians over all calls;
4. `kerf bench --threads 1` and `--threads 2` (native, no Python) medians;
5. if the `tract` Python bindings are installed (`pip install -r
   testsuite/scripts/bench-requirements.txt`), tract (single-threaded,
   `into_model().into_runnable()`, its default optimisation) is timed the
   same way as ORT, in its own rounds after the others (it leaves the AVX
   upper state dirty, which slows the next kerf calls), and the table gains
   the ratio kerf/tract (the issue asks for "faster than tract on every
   model"; PEERS.md's tract times come from another CPU).

6. at the start of every round, the host's own two-thread
   scaling (`Ceiling`: a register-only multiply-add loop in C on one thread,
   then on two at once; streaming reads of 64 MiB per thread, the same
   way; and repeated reads of 4 MiB per thread, inside the L3): what the
   machine gave compute-bound, memory-bound and L3-bound code at that
   moment, the ceilings of the 1t/2t columns (a VM's second vCPU may share a
   core, and its two vCPUs share the memory path and the L3).

Prints and writes (--out) a Markdown table: medians in ms and the ratios
kerf/ORT (< 1: kerf faster), the max |kerf - ORT| of the outputs, and the
machine (CPU model, a measured clock from a dependent-add loop).

Usage: .venv/bin/python testsuite/scripts/bench_vs_ort.py [--kerf target/release/kerf]
       [--out table.md] [--seconds 1.0] [MODEL ...]
"""

import argparse
import ctypes
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

try:  # optional fifth engine
    import tract
except ImportError:  # pragma: no cover - depends on the venv
    tract = None

REPO = Path(__file__).resolve().parents[2]
PUBLIC = Path("/work/shared/models")
NINE = ["digits_mlp", "digits_cnn", "ds_cnn_kws", "lstm_kws", "gru_kws", "tiny_transformer",
        "squeezenet1_1", "mobilenet_v2", "resnet18"]

DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
          10: np.float16, 11: np.float64}


class TensorDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_uint32),
                ("dims", ctypes.POINTER(ctypes.c_int64)), ("bytes", ctypes.c_uint64)]


class ModelDesc(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("num_inputs", ctypes.c_uint32),
                ("num_outputs", ctypes.c_uint32), ("arena_align", ctypes.c_uint32),
                ("arena_bytes", ctypes.c_uint64), ("inputs", ctypes.POINTER(TensorDesc)),
                ("outputs", ctypes.POINTER(TensorDesc)), ("name", ctypes.c_char_p)]


class Runtime(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("num_threads", ctypes.c_uint32),
                ("parallel_for", ctypes.c_void_p), ("ctx", ctypes.c_void_p)]


def default_models():
    if PUBLIC.is_dir():
        return [PUBLIC / m for m in NINE if (PUBLIC / m / "model.onnx").is_file()]
    out = sorted(p.parent for p in (REPO / "testsuite/fixtures/models").glob("*/model.onnx"))
    gen = REPO / "testsuite/generated"
    out += sorted(p.parent for p in gen.glob("*/model.onnx"))
    return out


def model_paths(m):
    m = Path(m)
    if m.is_dir():
        return m.name, m / "model.onnx", m
    return m.stem, m, m.parent


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


CLOCK_C = r"""
#include <stdio.h>
#include <stdint.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(void) {
    uint64_t x = 0, n = 200000000;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (uint64_t i = 0; i < n; i++) {
#if defined(__x86_64__)
            __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                             "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
#elif defined(__aarch64__)
            __asm__ volatile("add %0, %0, 1\n\tadd %0, %0, 1\n\tadd %0, %0, 1\n\tadd %0, %0, 1\n\t"
                             "add %0, %0, 1\n\tadd %0, %0, 1\n\tadd %0, %0, 1\n\tadd %0, %0, 1" : "+r"(x));
#else
            __asm__ volatile("" : "+r"(x)); x += 8;
#endif
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    /* 8 dependent adds per iteration, one per cycle */
    printf("%.3f %llu\n", 8.0 * n / best / 1e9, (unsigned long long)x);
    return 0;
}
"""


SCALING_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef float v8 __attribute__((vector_size(32)));
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static volatile float sink;
/* eight independent multiply-add chains, each its own variable so that the
   compiler keeps them in registers (an array indexed by a loop stays on the
   stack at -O2): no memory traffic at all */
static void *spin(void *arg) {
    long n = (long)arg;
    v8 m = {0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f};
    v8 c = m - m + 1e-7f;
    v8 x0 = c, x1 = c + 1.0f, x2 = c + 2.0f, x3 = c + 3.0f, x4 = c + 4.0f, x5 = c + 5.0f, x6 = c + 6.0f,
       x7 = c + 7.0f;
    for (long i = 0; i < n; i++) {
        x0 = x0 * m + c; x1 = x1 * m + c; x2 = x2 * m + c; x3 = x3 * m + c;
        x4 = x4 * m + c; x5 = x5 * m + c; x6 = x6 * m + c; x7 = x7 * m + c;
    }
    v8 s = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
    sink = s[0];
    return 0;
}
/* streaming reads of a thread's own 64 MiB (past any L3 of this kind of
   machine), four independent sums: what a memory-bound kernel gets; and of
   its first 4 MiB, 32 times (past the L2, inside the shared L3): what a
   kernel re-reading a few MiB of weights per block gets */
#define WORDS (16L << 20)
#define L3_WORDS (1L << 20)
static v8 *buf[2];
static void sweep(const v8 *p, long words, int reps) {
    v8 s0 = {0}, s1 = s0, s2 = s0, s3 = s0;
    for (int r = 0; r < reps; r++)
        for (long i = 0; i < words / 8; i += 4) {
            s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3];
        }
    v8 s = s0 + s1 + s2 + s3;
    sink = s[0];
}
static void *stream(void *arg) {
    sweep(buf[(long)arg], WORDS, 2);
    return 0;
}
static void *stream_l3(void *arg) {
    sweep(buf[(long)arg], L3_WORDS, 32);
    return 0;
}
/* one thread, then two at once on twice the work: 1t time / 2t time per
   unit of work */
static double pair(void *(*f)(void *), void *a0, void *a1) {
    double t0 = now();
    f(a0);
    double one = now() - t0;
    pthread_t a, b;
    t0 = now();
    pthread_create(&a, 0, f, a0);
    pthread_create(&b, 0, f, a1);
    pthread_join(a, 0);
    pthread_join(b, 0);
    return 2.0 * one / (now() - t0);
}
int main(void) {
    for (int i = 0; i < 2; i++) {
        buf[i] = aligned_alloc(64, WORDS * 4);
        if (!buf[i]) return 1;
        v8 one = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
        for (long j = 0; j < WORDS / 8; j++) buf[i][j] = one; /* every page touched before timing */
    }
    long n = 16000000;
    for (int r = 0; r < 5; r++) {
        double reg = pair(spin, (void *)n, (void *)n);
        double mem = pair(stream, (void *)0, (void *)1);
        sweep(buf[0], L3_WORDS, 1); /* both threads' 4 MiB into the L3 first */
        sweep(buf[1], L3_WORDS, 1);
        double l3 = pair(stream_l3, (void *)0, (void *)1);
        printf("%.3f %.3f %.3f\n", reg, mem, l3);
    }
    return 0;
}
"""


class Ceiling:
    """The host's own two-thread scaling, three probes: a register-only
    multiply-add loop, streaming reads of a 64 MiB buffer per thread
    (past the L3), and repeated reads of 4 MiB per thread (past the L2,
    inside the L3), each on one thread and then on two at once (2 x the
    work), as 1t time / 2t time per unit of work. On a quiet machine with
    two real cores the first is 2.0; a shared or throttled second core shows
    there. The second is what a memory-bound kernel can get from a second
    thread (a VM's two vCPUs share the memory path: 1.4-1.5x measured on
    the Zen 4 VMs); the third what a kernel gets whose working set (a
    layer's weights re-read per block) lives in the shared L3 (1.5-1.6x
    there). A model's kerf 1t/2t reads against all three: what the host
    gave compute-bound, memory-bound and L3-bound code at that moment."""

    def __init__(self, tmp):
        src, self.exe = tmp / "scaling.c", tmp / "scaling"
        src.write_text(SCALING_C)
        try:
            subprocess.run(["cc", "-O2", "-march=native", "-pthread", str(src), "-o", str(self.exe)],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            self.exe = None

    def measure(self):
        """(register, memory, L3) median scalings over five pairs of runs
        each, or None without a C compiler."""
        if self.exe is None:
            return None
        try:
            out = subprocess.run([str(self.exe)], check=True, capture_output=True, text=True).stdout.split()
            rows = [tuple(map(float, out[i:i + 3])) for i in range(0, len(out) - 2, 3)]
            return tuple(statistics.median(r[i] for r in rows) for i in range(3))
        except (OSError, subprocess.CalledProcessError, ValueError):
            return None


def measured_clock(tmp):
    src = tmp / "clock.c"
    exe = tmp / "clock"
    src.write_text(CLOCK_C)
    try:
        subprocess.run(["cc", "-O2", str(src), "-o", str(exe)], check=True, capture_output=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
        return float(out[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None


class KerfLib:
    """A compiled model loaded with ctypes, plus the C pool."""

    def __init__(self, so, inputs):
        self.lib = ctypes.CDLL(str(so))
        self.lib.m_describe.restype = ctypes.POINTER(ModelDesc)
        self.lib.m_run.restype = ctypes.c_int32
        self.lib.m_run.argtypes = [ctypes.c_void_p] * 4
        self.lib.kerf_pool_create.restype = ctypes.c_void_p
        self.lib.kerf_pool_create.argtypes = [ctypes.c_uint32]
        self.lib.kerf_pool_destroy.argtypes = [ctypes.c_void_p]
        self.lib.kerf_pool_runtime.restype = Runtime
        self.lib.kerf_pool_runtime.argtypes = [ctypes.c_void_p]
        d = self.lib.m_describe().contents
        if d.num_inputs != len(inputs):
            raise SystemExit(f"model has {d.num_inputs} inputs, {len(inputs)} given")
        self.inputs = []
        for i, x in enumerate(inputs):
            t = d.inputs[i]
            x = np.ascontiguousarray(x, dtype=DTYPES[t.dtype])
            if x.nbytes != t.bytes:
                raise SystemExit(f"input {i}: {x.nbytes} bytes, model wants {t.bytes}")
            self.inputs.append(x)
        self.outputs = []
        for i in range(d.num_outputs):
            t = d.outputs[i]
            shape = [t.dims[k] for k in range(t.rank)]
            self.outputs.append(np.zeros(shape, dtype=DTYPES[t.dtype]))
        self.arena = np.zeros(d.arena_bytes + 64, dtype=np.uint8)
        off = (-self.arena.ctypes.data) % 64
        self.arena_ptr = ctypes.c_void_p(self.arena.ctypes.data + off)
        self.in_arr = (ctypes.c_void_p * max(1, len(self.inputs)))(*[x.ctypes.data for x in self.inputs])
        self.out_arr = (ctypes.c_void_p * max(1, len(self.outputs)))(*[y.ctypes.data for y in self.outputs])
        self.pool = None
        self.rt = None

    def set_threads(self, n):
        if n <= 1:
            self.rt_ptr = None
            return
        if self.pool is None:
            self.pool = self.lib.kerf_pool_create(n)
            self.rt = self.lib.kerf_pool_runtime(self.pool)
        self.rt_ptr = ctypes.addressof(self.rt)

    def call(self):
        st = self.lib.m_run(self.in_arr, self.out_arr, self.arena_ptr, self.rt_ptr)
        if st != 0:
            raise SystemExit(f"m_run returned {st}")

    def close(self):
        if self.pool is not None:
            self.lib.kerf_pool_destroy(self.pool)
            self.pool = None


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_calls(fn, n):
    out = []
    pc = time.perf_counter_ns
    for _ in range(n):
        t0 = pc()
        fn()
        out.append(pc() - t0)
    return out


def alternate(engines, args, before=None, round_start=None):
    """Every engine in turn runs a batch of calls, `args.rounds` times, each
    call timed on its own (ns); a batch lasts about `args.seconds /
    args.rounds`. `before(key)` runs before each batch and `round_start()`
    at the start of each round, untimed."""
    per = {}
    for key, fn in engines.items():
        if before:
            before(key)
        t = min(time_calls(fn, 3)) / 1e9
        per[key] = max(3, min(20000, int(args.seconds / args.rounds / max(t, 1e-7))))
    samples = {key: [] for key in engines}
    for _ in range(args.rounds):
        if round_start:
            round_start()
        for key, fn in engines.items():
            if before:
                before(key)
            samples[key] += time_calls(fn, per[key])
    return samples


def native_bench(kerf, onnx, threads, input_files, cpu):
    cmd = [str(kerf), "bench", str(onnx), "--threads", str(threads), "--cpu", cpu]
    for f in input_files:
        cmd += ["--input", str(f)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
    m = re.search(r"^median: ([0-9.]+) ms", r.stdout, re.M)
    c = re.search(r"^compile: ([0-9.]+) ms", r.stdout, re.M)
    return (float(m.group(1)) if m else None), (float(c.group(1)) if c else None)


def fmt(v):
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ceiling(c, probe):
    """The host's two-thread scaling by one probe (0: registers, 1: memory, 2: L3)
    over a model's rounds: median (min–max)."""
    c = [x[probe] for x in c if x is not None]
    if not c:
        return "—"
    return f"{statistics.median(c):.2f} ({min(c):.2f}–{max(c):.2f})"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def bench_model(args, m, tmp):
    name, onnx, folder = model_paths(m)
    input_files = sorted(folder.glob("input_*.npy")) if Path(m).is_dir() else []
    sess1 = ort_session(onnx, 1)
    sess2 = ort_session(onnx, 2)
    metas = sess1.get_inputs()
    if input_files and len(input_files) == len(metas):
        inputs = [np.load(f) for f in input_files]
    else:
        input_files = []
        rng = np.random.default_rng(0)
        inputs = []
        for mi in metas:
            shape = [d if isinstance(d, int) else 1 for d in mi.shape]
            dt = {"tensor(float)": np.float32, "tensor(int64)": np.int64}.get(mi.type, np.float32)
            inputs.append(rng.standard_normal(shape).astype(dt))
    feed = {mi.name: x for mi, x in zip(metas, inputs)}
    work = tmp / name
    work.mkdir(parents=True, exist_ok=True)
    obj, so = work / "m.o", work / "m.so"
    t0 = time.perf_counter()
    r = subprocess.run([str(args.kerf), "compile", str(onnx), "--cpu", args.cpu, "--name", "m", "-o", str(obj)],
                       capture_output=True, text=True)
    compile_s = time.perf_counter() - t0
    if r.returncode != 0:
        return {"name": name, "error": (r.stderr.strip().splitlines() or ["compile failed"])[-1]}
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-pthread", "-I", str(REPO / "runtime/include"), str(obj),
                    str(REPO / "runtime/c/kerf_pool.c"), "-o", str(so)], check=True)
    k = KerfLib(so, inputs)
    # correctness against ORT (1 thread)
    k.set_threads(1)
    k.call()
    ref = sess1.run(None, feed)
    diff = max(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
               for a, b in zip(k.outputs, ref))
    out1 = [o.copy() for o in k.outputs]
    # calibrate the batch size: about args.seconds / rounds per engine per round
    engines = {
        "kerf1": lambda: (k.set_threads(1), k.call()),
        "ort1": lambda: sess1.run(None, feed),
        "kerf2": lambda: (k.set_threads(2), k.call()),
        "ort2": lambda: sess2.run(None, feed),
    }
    tract_diff = None
    tract_run = None
    if tract is not None and not args.no_tract:
        try:
            tm = tract.onnx().load(str(onnx)).into_model().into_runnable()
            tref = [t.to_numpy() for t in tm.run(inputs)]
            tract_diff = max(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
                             for a, b in zip(tref, ref))
            tract_run = lambda: tm.run(inputs)  # noqa: E731
        except Exception as e:  # tract declines some models; the table says so
            print(f"{name}: tract: {e}", file=sys.stderr)
    for fn in engines.values():
        for _ in range(3):
            fn()
    # kerf's thread count is set before a batch, outside the timed calls
    timed = {key: (k.call if key.startswith("kerf") else fn) for key, fn in engines.items()}
    host_scaling = []
    samples = alternate(timed, args, before=lambda key: key.startswith("kerf")
                        and k.set_threads(1 if key == "kerf1" else 2),
                        round_start=lambda: host_scaling.append(args.ceiling.measure()))
    # tract runs in its own rounds after the others: its kernels return with the upper halves of the
    # AVX registers dirty (no vzeroupper), and kerf's code, which has legacy-SSE register moves and
    # loads (Cranelift 0.135 emits movdqa/movdqu without VEX), then runs ~1.8x slower until some
    # library executes vzeroupper (ORT's kernels do). Measured on lstm_kws: kerf 0.086 ms after ORT,
    # 0.151 ms right after tract. See docs/performance.md.
    if tract_run is not None:
        for _ in range(3):
            tract_run()
        samples.update(alternate({"tract1": tract_run}, args))
    k.set_threads(2)
    k.call()
    same_threads = all(np.array_equal(a, b) for a, b in zip(k.outputs, out1))
    k.close()
    med = {key: statistics.median(v) / 1e6 for key, v in samples.items()}
    nat1, c1 = native_bench(args.kerf, onnx, 1, input_files, args.cpu)
    nat2, _ = native_bench(args.kerf, onnx, 2, input_files, args.cpu)
    return {"name": name, "med": med, "nat1": nat1, "nat2": nat2, "diff": diff, "compile_s": compile_s,
            "jit_ms": c1, "threads_equal": same_threads, "tract_diff": tract_diff, "ceiling": host_scaling}


def timing_args(doc, seconds):
    """The arguments every kerf-against-ORT timing script takes: models,
    the kerf binary, the table's file, seconds and rounds."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--kerf", default=str(REPO / "target/release/kerf"))
    ap.add_argument("--out", help="write the Markdown table here too")
    ap.add_argument("--seconds", type=float, default=seconds, help="timed seconds per engine per model")
    ap.add_argument("--rounds", type=int, default=10, help="alternation rounds")
    return ap


def main():
    ap = timing_args(__doc__, seconds=1.0)
    ap.add_argument("--no-tract", action="store_true", help="leave tract out even if installed")
    ap.add_argument("--cpu", default="native",
                    help="kerf's CPU preset (e.g. haswell: the AVX2 kernels on an AVX-512 host; ORT picks its own)")
    args = ap.parse_args()
    if not Path(args.kerf).is_file():
        sys.exit(f"{args.kerf} not found: cargo build --release -p kerf")
    models = args.models or default_models()
    tmp = Path(tempfile.mkdtemp(prefix="kerf-bench-"))
    clock = measured_clock(tmp)
    args.ceiling = Ceiling(tmp)
    rows = []
    for m in models:
        res = bench_model(args, m, tmp)
        rows.append(res)
        print(res, file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    lines = []
    lines.append(f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs, measured clock "
                 f"{clock:.2f} GHz (dependent-add loop); kerf --cpu {args.cpu}" if clock
                 else f"Machine: {cpu_model()}; kerf --cpu {args.cpu}")
    tv = f"tract {tract.version()}, " if tract is not None and not args.no_tract else "tract not installed, "
    lines.append(f"{tv}onnxruntime {ort.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    lines.append("")
    lines.append("Medians in ms. *ctypes*: kerf's object in a shared library called through ctypes, alternating "
                 "with ORT's `session.run` in the same process (same input). *native*: `kerf bench` (JIT, no Python). "
                 "Ratios kerf/ORT at the same thread count: < 1 means kerf is faster. "
                 "*tract*: tract's runnable model called from the same process, single-threaded; kerf/tract "
                 "compares kerf's ctypes time with it. *host 1t/2t*: what two threads gave a register-only "
                 "multiply-add loop on this machine at the start of each of the model's rounds, median (min–max) "
                 "(2.00 on two idle cores; below it the second core is shared or slower): the ceiling of the "
                 "1t/2t columns for compute-bound code. *host mem 1t/2t*: the same for streaming reads of 64 MiB "
                 "per thread (past the L3): the ceiling for memory-bound code. *host L3 1t/2t*: the same for reads "
                 "of 4 MiB per thread, 32 times (past the L2, inside the shared L3): the ceiling for kernels "
                 "whose weights are re-read from the L3.")
    lines.append("")
    lines.append("| model | kerf 1t (ctypes) | ORT 1t | ratio 1t | kerf 2t (ctypes) | ORT 2t | ratio 2t | "
                 "kerf 1t native | native/ORT 1t | kerf 2t native | native/ORT 2t | kerf 1t/2t | ORT 1t/2t | "
                 "host 1t/2t | host mem 1t/2t | host L3 1t/2t | compile s | max abs diff | 2t == 1t | tract 1t | kerf/tract 1t | tract diff |")
    lines.append("|---|" + "---:|" * 17 + "---|" + "---:|" * 3)
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {r['error']} |" + " |" * 20)
            continue
        md = r["med"]
        lines.append(
            f"| {r['name']} | {fmt(md['kerf1'])} | {fmt(md['ort1'])} | {ratio(md['kerf1'], md['ort1'])} | "
            f"{fmt(md['kerf2'])} | {fmt(md['ort2'])} | {ratio(md['kerf2'], md['ort2'])} | "
            f"{fmt(r['nat1'])} | {ratio(r['nat1'], md['ort1'])} | {fmt(r['nat2'])} | {ratio(r['nat2'], md['ort2'])} | "
            f"{ratio(md['kerf1'], md['kerf2'])} | {ratio(md['ort1'], md['ort2'])} | {ceiling(r['ceiling'], 0)} | "
            f"{ceiling(r['ceiling'], 1)} | {ceiling(r['ceiling'], 2)} | "
            f"{r['compile_s']:.2f} | {r['diff']:.1e} | "
            f"{'yes' if r['threads_equal'] else 'NO'} | {fmt(md.get('tract1'))} | "
            f"{ratio(md['kerf1'], md.get('tract1'))} | "
            f"{'—' if r['tract_diff'] is None else format(r['tract_diff'], '.1e')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
