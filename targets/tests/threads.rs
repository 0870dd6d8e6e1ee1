#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The threading mechanism (`Kernel::parallel_range`, the entry's
//! `parallel_for` path, `kerf_runtime::ThreadPool`): kernels that declare a
//! split really go through `parallel_for`, tiny ones do not, and a threaded
//! run is bit-identical to a serial one (rt NULL) for any thread count and
//! any task order.

mod common;
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::Mutex;

use common::{reference, reverse_parallel_for};
use kerf_ir::{Graph, Tensor};
use kerf_runtime::{KerfRuntime, Model, ThreadPool, ABI_VERSION};
use kerf_targets::{jit_compile, CompileOptions};

fn run(m: &Model, inputs: &[Tensor], rt: Option<&KerfRuntime>) -> Vec<Vec<u8>> {
    let ins: Vec<&[u8]> = inputs.iter().map(|t| t.bytes()).collect();
    let mut outs: Vec<Vec<u8>> = m.info().outputs.iter().map(|t| vec![0u8; t.bytes]).collect();
    let mut arena = m.new_arena().unwrap();
    let mut ov: Vec<&mut [u8]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    // SAFETY: every runtime passed here is a pool's live runtime or uses
    // `reverse_parallel_for`, which honours the parallel_for contract.
    unsafe { m.run_with(&ins, &mut ov, &mut arena, rt) }.unwrap();
    outs
}

/// Runs `g` serially, through a recording runtime with 1..=5 threads and
/// through real pools; every run must give the serial bytes. Returns the
/// task counts seen by the recording runtime at 4 threads.
fn check_same(name: &str, g: &Graph, inputs: &[Tensor]) -> Vec<u32> {
    check_same_on(name, g, inputs, "native")
}

/// [`check_same`] for the CPU preset `cpu` (one the host runs).
fn check_same_on(name: &str, g: &Graph, inputs: &[Tensor], cpu: &str) -> Vec<u32> {
    let jm =
        jit_compile(g, &CompileOptions::parse("host", cpu, "t").unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let m = jm.model();
    let want = run(m, inputs, None);
    let mut seen = Vec::new();
    let calls_log: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    for threads in 1..=5u32 {
        let rt = KerfRuntime {
            abi_version: ABI_VERSION,
            num_threads: threads,
            parallel_for: Some(reverse_parallel_for),
            ctx: &calls_log as *const Mutex<Vec<u32>> as *mut c_void,
        };
        assert!(run(m, inputs, Some(&rt)) == want, "{name}: {threads} threads (reverse order) differ from serial");
        let calls = std::mem::take(&mut *calls_log.lock().unwrap());
        if threads == 1 {
            assert!(calls.is_empty(), "{name}: parallel_for called with num_threads = 1");
        }
        assert!(
            calls.iter().all(|&n| (2..=threads).contains(&n)),
            "{name}: task counts {calls:?} at {threads} threads"
        );
        if threads == 4 {
            seen = calls;
        }
    }
    // parallel_for NULL: serial
    let rt = KerfRuntime { abi_version: ABI_VERSION, num_threads: 8, parallel_for: None, ctx: std::ptr::null_mut() };
    assert!(run(m, inputs, Some(&rt)) == want, "{name}: parallel_for NULL");
    for threads in [2, 3] {
        let pool = ThreadPool::new(threads);
        for _ in 0..3 {
            assert!(run(m, inputs, Some(&pool.runtime())) == want, "{name}: pool of {threads}");
        }
    }
    seen
}

fn xs(n: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7919) % 97) as f32 / 24.0) - 2.0).collect()
}

#[test]
fn large_reductions_split_and_match() {
    for (k, axes) in [("ReduceSum", "[1]"), ("ReduceMax", "[1]"), ("ReduceMean", "[1,2]"), ("ReduceL2", "[2]")] {
        let (shape, out) = match axes {
            "[1]" => ("f32[48,300,70]", "f32[48,1,70]"),
            "[1,2]" => ("f32[48,300,70]", "f32[48,1,1]"),
            _ => ("f32[48,300,70]", "f32[48,300,1]"),
        };
        let text = format!(
            "graph \"{k}\"\n  input %0 \"x\": {shape}\n  %1 = {k}{{axes={axes}, keepdims=true}}(%0): {out} @\"r\"\n  output \"y\" = %1\n"
        );
        let g = kerf_ir::text::parse(&text).unwrap();
        let x = Tensor::from_f32(vec![48, 300, 70], &xs(48 * 300 * 70)).unwrap();
        let calls = check_same(k, &g, std::slice::from_ref(&x));
        // 48 * 300 * 70 * 2 ≈ 2 M: split, at most 4 tasks at 4 threads
        assert_eq!(calls, vec![4], "{k}: expected one parallel_for of 4 tasks");
        // and the values are right (f64 reference, f32 tolerance)
        let jm = jit_compile(&g, &CompileOptions::host("t")).unwrap();
        let pool = ThreadPool::new(2);
        let got = kerf_runtime::f32_from_bytes(&run(jm.model(), &[x], Some(&pool.runtime()))[0]);
        let v = xs(48 * 300 * 70);
        if k == "ReduceSum" {
            for (o, gv) in got.iter().enumerate() {
                let (b, c) = (o / 70, o % 70);
                let s: f64 = (0..300).map(|r| v[(b * 300 + r) * 70 + c] as f64).sum();
                assert!((*gv as f64 - s).abs() <= 1e-3 * (1.0 + s.abs()), "{k} {o}: {gv} vs {s}");
            }
        }
    }
}

#[test]
fn tiny_kernels_are_not_split() {
    let text = "graph \"small\"\n  input %0 \"x\": f32[4,10]\n  %1 = ReduceSum{axes=[1], keepdims=true}(%0): f32[4,1] @\"r\"\n  output \"y\" = %1\n";
    let g = kerf_ir::text::parse(text).unwrap();
    let x = Tensor::from_f32(vec![4, 10], &xs(40)).unwrap();
    assert!(check_same("small", &g, &[x]).is_empty());
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/models").join(name)
}

/// Every fixture model: threaded runs equal the serial run bit for bit
/// (whichever of its kernels are split today).
#[test]
fn fixture_models_threaded_equal_serial() {
    let mut split_any = 0;
    for name in ["digits_mlp", "digits_cnn", "ds_cnn_kws", "lstm_kws", "gru_kws", "tiny_transformer"] {
        let dir = fixture(name);
        let g = kerf_onnx::load_model(&dir.join("model.onnx"), &Default::default()).unwrap();
        let inputs: Vec<Tensor> = g
            .inputs
            .iter()
            .map(|&v| {
                let t = g.ty(v);
                let n: usize = t.shape.iter().product();
                Tensor::from_f32(t.shape.clone(), &xs(n)).unwrap()
            })
            .collect();
        let calls = check_same(name, &g, &inputs);
        eprintln!("{name}: {} parallel_for calls at 4 threads", calls.len());
        split_any += calls.len();
    }
    let _ = split_any;
}

/// The pattern-pruned conv (`lower/conv_pattern.rs`) splits its output
/// channels; each task pads the image into its own scratch copy. Threaded
/// equals serial bit for bit (with the host's `native` preset: the
/// assembled AVX2 register tiles where the host has them), at stride 1
/// and at stride 2 (a phase-split image per task), with a residual and
/// Relu fused (the tiles' epilogue). Filters of equal length, and of very
/// unequal ones (some removed whole): tasks take ranges of work, not of
/// filters (`lower/conv_pattern/work.rs`). With an activation the tiles do
/// not fuse (LeakyRelu), and on `baseline` (the 128-bit passes fuse none),
/// each task applies the epilogue to its own channels: it once ran as a
/// pass over the whole output inside every task, adding the residual once
/// per task and clamping other tasks' partial sums; the values are checked
/// against the reference evaluator too.
#[test]
fn pattern_convs_split_over_output_channels() {
    for (st, h, w, uneven) in [(1, 20, 21, false), (2, 29, 30, false), (1, 20, 21, true), (2, 29, 30, true)] {
        for act in ["act=Relu", "act=LeakyRelu, act_alpha=0.1"] {
            pattern_conv_splits(st, (h, w), uneven, act);
        }
    }
}

fn pattern_conv_splits(st: usize, (h, w): (usize, usize), uneven: bool, act: &str) {
    let (n, c, o) = (2, 16, 32);
    let (oh, ow) = ((h - 1) / st + 1, (w - 1) / st + 1);
    let masks = [0b000_111_010u32, 0b001_010_101, 0b110_100_000, 0];
    // uneven: filter f keeps its first 2·(f mod 8) + 1 kernels, none when f is a multiple of 11
    let kept = |f: usize, ch: usize| !uneven || !f.is_multiple_of(11) && ch <= 2 * (f % 8);
    let vals = xs(o * c * 9);
    let weights: Vec<f32> = (0..o * c * 9)
        .map(|i| {
            let on = masks[(i / 9) % masks.len()] & (1 << (i % 9)) != 0 && kept(i / (9 * c), (i / 9) % c);
            if on {
                vals[i] * 0.3 + 0.05
            } else {
                0.0
            }
        })
        .collect();
    let list = |v: &[f32]| format!("[{}]", v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(","));
    let text = format!(
        "graph \"p\"\n  input %0 \"x\": f32[{n},{c},{h},{w}]\n  input %9 \"r\": f32[{n},{o},{oh},{ow}]\n  \
         const %1 \"w\": f32[{o},{c},3,3] = {}\n  const %2 \"b\": f32[{o}] = {}\n  \
         %3 = ConvFused{{kernel=[3,3], strides=[{st},{st}], dilations=[1,1], pads=[1,1,1,1], group=1, layer=\"c\", {act}, residual=true}}(%0, %1, %2, %9): f32[{n},{o},{oh},{ow}] @\"c\"\n  \
         output \"y\" = %3\n",
        list(&weights),
        list(&(0..o).map(|i| 0.01 * i as f32).collect::<Vec<_>>()),
    );
    let g = kerf_ir::text::parse(&text).unwrap();
    let weight = g.const_of(g.nodes[0].inputs[1]).unwrap();
    assert!(kerf_ir::Sparsity::detect(weight).is_some(), "the weight must read as pattern-pruned");
    let x = Tensor::from_f32(vec![n, c, h, w], &xs(n * c * h * w)).unwrap();
    let r = Tensor::from_f32(vec![n, o, oh, ow], &xs(n * o * oh * ow + 3)[3..]).unwrap();
    let name = format!("pattern conv, stride {st}, uneven {uneven}, {act}");
    let inputs = [x, r];
    let calls = check_same(&name, &g, &inputs);
    check_same_on(&format!("{name}, baseline"), &g, &inputs, "baseline");
    for cpu in ["native", "baseline"] {
        let jm = jit_compile(&g, &CompileOptions::parse("host", cpu, "t").unwrap()).unwrap();
        let pool = ThreadPool::new(3);
        assert_matches_reference(&g, &inputs, &run(jm.model(), &inputs, Some(&pool.runtime())));
    }
    // stride 2 runs on the pattern kernel only with AVX2 + FMA (the
    // register tiles); elsewhere the dense kernel splits its own way
    if st == 1 && !uneven {
        assert_eq!(calls, vec![4], "one parallel_for of 4 tasks at 4 threads");
    } else if st == 1 || host_has_avx2() {
        // (stride 2: a quarter of the work, so the cost split gives
        // fewer tasks; uneven: ranges of work, whatever their count)
        assert!(calls.len() == 1 && calls[0] >= 2, "stride {st}: {calls:?}: one parallel_for, split");
    } else {
        eprintln!("stride 2: the task count not checked: the host has no AVX2 + FMA, so the dense kernel runs");
    }
}

/// Whether the host's `native` code has the assembled AVX2 + FMA kernels
/// (the compiler's own decision, `CompileOptions::kernel_caps`).
fn host_has_avx2() -> bool {
    CompileOptions::parse("host", "native", "t").ok().and_then(|o| o.kernel_caps().ok()).is_some_and(|c| c.avx2)
}

/// An IR text line `const %seed "name": f32[shape] = [...]` (no newline)
/// of values in [-11, 11]/`div`, varied by `seed`.
fn const_line(name: &str, shape: &[usize], seed: usize, div: f32) -> String {
    let n: usize = shape.iter().product();
    let v: Vec<String> = (0..n).map(|i| format!("{:?}", (((i * 31 + seed * 17) % 23) as f32 - 11.0) / div)).collect();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("const %{seed} \"{name}\": f32[{}] = [{}]", dims.join(","), v.join(","))
}

/// Inputs for every graph input of `g`: [`xs`] scaled by `scale`.
fn graph_inputs(g: &Graph, scale: f32) -> Vec<Tensor> {
    g.inputs
        .iter()
        .map(|&v| {
            let t = g.ty(v);
            let n: usize = t.shape.iter().product();
            let x: Vec<f32> = xs(n).iter().map(|v| v * scale).collect();
            Tensor::from_f32(t.shape.clone(), &x).unwrap()
        })
        .collect()
}

/// Every output of `outs` within 1e-4·(1 + |ref|) of the reference evaluator.
fn assert_matches_reference(g: &Graph, inputs: &[Tensor], outs: &[Vec<u8>]) {
    for (i, (got, want)) in outs.iter().zip(reference(g, inputs)).enumerate() {
        let got = kerf_runtime::f32_from_bytes(got);
        for (j, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "output {i} element {j}: {a} vs {b}");
        }
    }
}

/// MatMul / Gemm kernels split over rows (each task tiles its range with
/// 12- and 4-row blocks; the 2 rows past the last 4-row unit of a 50-row
/// product go to the last task) with every epilogue path: column bias,
/// residual, in-register (HardSwish) and per-block (Gelu) activations, Gemm's alpha with a
/// run-time B (private per-task panels), beta and a per-row C, batched
/// run-time B. Threaded equals serial bit for bit, and the values match
/// the reference evaluator.
#[test]
fn matrix_products_split_and_match() {
    let konst = |name: &str, shape: &[usize], seed: usize| const_line(name, shape, seed, 40.0) + "\n";
    let text = format!(
        "graph \"mm\"\n  input %0 \"x\": f32[2,50,64]\n  input %1 \"r\": f32[2,50,96]\n  input %2 \"at\": f32[96,64]\n  \
         input %3 \"bt\": f32[96,80]\n  {}  {}  {}  \
         %7 = MatMulFused{{layer=\"m\", act=HardSwish, residual=true}}(%0, %4, %5, %1): f32[2,50,96] @\"m\"\n  \
         %8 = Transpose{{perm=[0,2,1]}}(%7): f32[2,96,50] @\"t\"\n  \
         %9 = MatMul{{layer=\"bm\"}}(%7, %8): f32[2,50,50] @\"bm\"\n  \
         %10 = GemmFused{{alpha=0.5, beta=2.0, trans_a=true, trans_b=false, layer=\"g\", act=Gelu, act_tanh=false, residual=false}}(%2, %3, %6): f32[64,80] @\"g\"\n  \
         output \"y\" = %7\n  output \"z\" = %9\n  output \"w\" = %10\n",
        konst("w", &[64, 96], 4),
        konst("b", &[96], 5),
        konst("c", &[64, 1], 6),
    );
    let g = kerf_ir::text::parse(&text).unwrap();
    let inputs = graph_inputs(&g, 0.25);
    let calls = check_same("mm", &g, &inputs);
    assert_eq!(calls.len(), 3, "every product split: {calls:?}");
    let jm = jit_compile(&g, &CompileOptions::host("t")).unwrap();
    let pool = ThreadPool::new(2);
    assert_matches_reference(&g, &inputs, &run(jm.model(), &inputs, Some(&pool.runtime())));
}

/// One-row products split over column chunks (`matmul/cols.rs`): a
/// classifier-shaped Gemm with a per-column bias, a residual and a
/// per-block activation (Gelu), 520 columns (eight chunks of 64 and a
/// partial one of 8, the latter only in the last task), and a one-pixel 1x1
/// conv (the same engine) with Relu; the weights are constants (a
/// run-time B is not split: every task would pack all of it).
/// Threaded equals serial bit for bit; the values match the reference
/// evaluator.
#[test]
fn one_row_products_split_over_columns() {
    let text = format!(
        "graph \"fc\"\n  input %0 \"x\": f32[1,1000]\n  input %1 \"r\": f32[1,520]\n  const %2 \"w\": f32[1000,520] = iota(-0.2, 0.0000008)\n  \
         input %6 \"p\": f32[1,800,1,1]\n  const %7 \"cw\": f32[520,800,1,1] = iota(0.15, -0.0000007)\n  {}\n  {}\n  \
         %4 = GemmFused{{alpha=1.0, beta=1.0, trans_a=false, trans_b=false, layer=\"g\", act=Gelu, act_tanh=false, residual=true}}(%0, %2, %3, %1): f32[1,520] @\"g\"\n  \
         %9 = ConvFused{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"c\", act=Relu, residual=false}}(%6, %7, %8): f32[1,520,1,1] @\"c\"\n  \
         output \"y\" = %4\n  output \"z\" = %9\n",
        const_line("b", &[520], 3, 40.0),
        const_line("cb", &[520], 8, 40.0),
    );
    let g = kerf_ir::text::parse(&text).unwrap();
    let inputs = graph_inputs(&g, 1.0 / 16.0);
    let calls = check_same("fc", &g, &inputs);
    assert_eq!(calls.len(), 2, "both products split: {calls:?}");
    let outs = run(jit_compile(&g, &CompileOptions::host("t")).unwrap().model(), &inputs, None);
    assert_matches_reference(&g, &inputs, &outs);
}

/// Pointwise convs on small planes (`conv_lanes`: the output channels in
/// the lanes, then a transposing pass) split over pixels: 2 images of 7×7
/// (the 49th pixel in the last task's scalar tail), a residual with Clip in
/// the pass, and Relu in the product's store. Threaded equals serial bit for
/// bit; the values match the reference evaluator.
#[test]
fn pointwise_convs_on_small_planes_split_and_match() {
    let konst = |seed: usize, shape: &[usize]| const_line(&format!("c{seed}"), shape, seed, 80.0) + "\n  ";
    let text = format!(
        "graph \"pw\"\n  input %0 \"x\": f32[2,96,7,7]\n  input %1 \"r\": f32[2,64,7,7]\n  {}{}{}{}\
         %6 = ConvFused{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"a\", act=Clip, act_min=0.0, act_max=6.0, residual=true}}(%0, %2, %3, %1): f32[2,64,7,7] @\"a\"\n  \
         %7 = ConvFused{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"b\", act=Relu, residual=false}}(%6, %4, %5): f32[2,96,7,7] @\"b\"\n  \
         output \"y\" = %7\n",
        konst(2, &[64, 96, 1, 1]),
        konst(3, &[64]),
        konst(4, &[96, 64, 1, 1]),
        konst(5, &[96]),
    );
    let g = kerf_ir::text::parse(&text).unwrap();
    let inputs = graph_inputs(&g, 1.0);
    let calls = check_same("pw", &g, &inputs);
    assert_eq!(calls.len(), 2, "both convs split: {calls:?}");
    let outs = run(jit_compile(&g, &CompileOptions::host("t")).unwrap().model(), &inputs, None);
    assert_matches_reference(&g, &inputs, &outs);
}

/// A 3x3 `QConv` (Relu, residual, `x_zp = 7`) of a u8 input `[n, c, h, w]`
/// with i8 weights `w` (`m` output channels) at `stride`, and its inputs.
fn qconv_case(n: usize, c: usize, hw: (usize, usize), m: usize, stride: usize, w: &[i64]) -> (Graph, Vec<Tensor>) {
    let (text, inputs) = qconv_case_text(n, c, hw, m, stride, w);
    (kerf_ir::text::parse(&text).unwrap(), inputs)
}

/// [`qconv_case`]'s graph as IR text.
fn qconv_case_text(
    n: usize,
    c: usize,
    (h, wd): (usize, usize),
    m: usize,
    stride: usize,
    w: &[i64],
) -> (String, Vec<Tensor>) {
    let (oh, ow) = ((h - 3) / stride + 1, (wd - 3) / stride + 1);
    let list = |v: Vec<String>| v.join(",");
    let text = format!(
        "graph \"q\"\n  input %0 \"x\": u8[{n},{c},{h},{wd}]\n  input %9 \"r\": f32[{n},{m},{oh},{ow}]\n  const %1 \"w\": i8[{m},{c},3,3] = [{}]\n  const %2 \"s\": f32[{m}] = [{}]\n  const %3 \"b\": f32[{m}] = [{}]\n  %4 = QConv{{kernel=[3,3], strides=[{stride},{stride}], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"c\", act=Relu, residual=true, x_scale=0.02, x_zp=7}}(%0, %1, %2, %3, %9): f32[{n},{m},{oh},{ow}] @\"c\"\n  output \"y\" = %4\n",
        list(w.iter().map(|v| v.to_string()).collect()),
        list((0..m).map(|i| format!("{:?}", 0.001 + 0.0001 * i as f32)).collect()),
        list((0..m).map(|i| format!("{:?}", 0.1 * i as f32 - 1.0)).collect()),
    );
    let x: Vec<u8> = (0..n * c * h * wd).map(|i| ((i * 31) % 256) as u8).collect();
    let inputs = vec![
        Tensor::from_bytes(kerf_ir::DType::U8, vec![n, c, h, wd], x).unwrap(),
        Tensor::from_f32(vec![n, m, oh, ow], &xs(n * m * oh * ow)).unwrap(),
    ];
    (text, inputs)
}

/// The integer conv splits over (image, group, 8-pixel unit) tasks, each
/// packing its own input panels: threaded equals serial bit for bit, with
/// 8-bit weights (16-bit pairs without VNNI) and 7-bit ones (the byte tile
/// on AVX2, whose whole units run in pairs on the wide tile without VNNI:
/// 47 whole units, an odd one left), a partial last unit and a residual,
/// Relu epilogue.
#[test]
fn integer_convs_split_and_match() {
    for qmax in [127i64, 63] {
        let w: Vec<i64> = (0..24 * 16 * 9).map(|i| ((i * 7919) % (2 * qmax as usize + 1)) as i64 - qmax).collect();
        let (g, inputs) = qconv_case(1, 16, (22, 21), 24, 1, &w);
        let calls = check_same(&format!("qconv ±{qmax}"), &g, &inputs);
        assert!(!calls.is_empty(), "qconv ±{qmax}: not split");
        // an AVX-512 VNNI host's `native` runs 16-pixel units: the pairs of
        // AVX2's wide tile are `haswell`'s
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if cfg!(target_arch = "x86_64") && avx2 {
            let calls = check_same_on(&format!("qconv ±{qmax} (haswell)"), &g, &inputs, "haswell");
            assert!(!calls.is_empty(), "qconv ±{qmax} (haswell): not split");
        } else {
            eprintln!("qconv ±{qmax}: haswell not run here (the host lacks AVX2 + FMA)");
        }
    }
}

/// The integer pattern kernel (`lower/qconv_pattern.rs`: weights pruned
/// with one pattern per quad of input channels, 7-bit codes) splits its
/// output channels, each task interleaving its own quad image: threaded
/// equals serial bit for bit, at stride 1 and 2, with a residual and Relu,
/// and with a u8 output.
#[test]
fn integer_pattern_convs_split_and_match() {
    // a quad keeps taps 1, 3, 4, 5 (the plus without its bottom) or is removed
    let w: Vec<i64> = (0..32 * 64 * 9)
        .map(|i| {
            let (unit, tap) = (i / (4 * 9), i % 9);
            let kept = unit % 3 != 1 && [1, 3, 4, 5].contains(&tap);
            if kept {
                ((i * 7919) % 127) as i64 - 63
            } else {
                0
            }
        })
        .collect();
    for stride in [1, 2] {
        let (g, inputs) = qconv_case(2, 64, (30, 29), 32, stride, &w);
        let calls = check_same(&format!("integer pattern conv, stride {stride}"), &g, &inputs);
        assert!(!calls.is_empty(), "stride {stride}: not split");
    }
    // a u8 output (the tiles' requantising store; no residual): with 256
    // input channels several channel blocks, whose partial sums each task
    // keeps in its own scratch
    for (c, stride) in [(64, 1), (256, 1), (256, 2)] {
        let w: Vec<i64> = (0..32 * c * 9).map(|i| w[i % w.len()]).collect();
        let (text, inputs) = qconv_case_text(2, c, (30, 29), 32, stride, &w);
        let text = text
            .replace("residual=true", "residual=false")
            .replace("x_zp=7}", "x_zp=7, out=quant, out_scale=0.05, out_zp=3}")
            .replace(", %9): f32[", "): u8[");
        let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("out=quant") && text.contains("): u8["), "{text}");
        let calls = check_same(&format!("integer pattern conv, u8 out, {c} channels, stride {stride}"), &g, &inputs);
        assert!(!calls.is_empty(), "u8 out, {c} channels, stride {stride}: not split");
    }
}
