#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Helpers shared by the integration tests: JIT a text-format graph for the
//! host and run it on f32 inputs; compare with explicit tolerances.

pub mod cross;
pub mod qcase;

use std::ffi::c_void;
use std::sync::Mutex;

use kerf_ir::Tensor;
use kerf_runtime::{KerfRuntime, Model, TaskFn, ThreadPool, ABI_VERSION};
use kerf_targets::{jit_compile, CompileOptions, JitModel};

/// `g` compiled in-process for the host with the CPU preset `cpu`.
pub fn jit(g: &kerf_ir::Graph, cpu: &str) -> JitModel {
    jit_compile(g, &CompileOptions::parse("host", cpu, "t").unwrap()).unwrap_or_else(|e| panic!("{cpu}: {e}"))
}

/// The instructions of the micro-kernels `g`'s x86-64 object for `cpu`
/// holds: which kernels code calls is decided at compile time, so any
/// host checks it.
pub fn kernel_instructions(g: &kerf_ir::Graph, cpu: &str) -> Vec<iced_x86::Instruction> {
    kernels(g, cpu).into_iter().flatten().collect()
}

/// [`kernel_instructions`] per micro-kernel.
pub fn kernels(g: &kerf_ir::Graph, cpu: &str) -> Vec<Vec<iced_x86::Instruction>> {
    use iced_x86::{Decoder, DecoderOptions};
    use object::{Object, ObjectSection, ObjectSymbol};
    let o = CompileOptions::parse("x86_64-unknown-linux-gnu", cpu, "t").unwrap();
    let art = kerf_targets::compile_object(g, &o).unwrap();
    let f = object::File::parse(&*art.object).unwrap();
    let mut out = Vec::new();
    for s in f.symbols().filter(|s| s.name().is_ok_and(|n| n.starts_with("t_u"))) {
        let sec = f.section_by_index(s.section_index().unwrap()).unwrap();
        let data = sec.data().unwrap();
        let at = (s.address() - sec.address()) as usize;
        out.push(
            Decoder::with_ip(64, &data[at..at + s.size() as usize], 0, DecoderOptions::NONE).into_iter().collect(),
        );
    }
    out
}

pub fn run(text: &str, inputs: &[Tensor], cpu: &str) -> Vec<Vec<f32>> {
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let jm = jit(&g, cpu);
    let outs = run_guarded(jm.model(), inputs, None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    outs.iter().map(|o| o.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()).collect()
}

/// Runs `m` once on `inputs` with `rt` through the runtime's strictest
/// run ([`Model::run_guarded`]: aligned input copies, a poisoned arena,
/// every output between guard bytes no kernel may write) and returns every
/// output's bytes.
fn run_guarded(m: &Model, inputs: &[Tensor], rt: Option<&KerfRuntime>) -> Result<Vec<Vec<u8>>, String> {
    let views: Vec<&[u8]> = inputs.iter().map(Tensor::bytes).collect();
    // SAFETY: the runtimes passed are a pool's or use `reverse_parallel_for`.
    unsafe { m.run_guarded(&views, rt) }.map_err(|e| format!("run: {e}"))
}

pub fn close(name: &str, got: &[f32], want: &[f32], abs: f32, rel: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let m = want.iter().fold(0f32, |a, b| a.max(b.abs()));
    let tol = abs + rel * m;
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        assert!((x - y).abs() <= tol, "{name}: element {i}: got {x}, want {y} (tol {tol})");
    }
}

pub fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

pub fn list(v: &[f32]) -> String {
    let s: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", s.join(","))
}

pub fn xs(n: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7919) % 97) as f32 / 24.0) - 2.0).collect()
}

/// Evaluates `g` node by node with the IR's reference evaluator.
pub fn reference(g: &kerf_ir::Graph, inputs: &[Tensor]) -> Vec<Vec<f32>> {
    kerf_ir::eval::eval_graph(g, inputs).unwrap().iter().map(Tensor::to_f32_vec).collect()
}

/// Records each `parallel_for`'s task count in `*ctx` (a
/// `Mutex<Vec<u32>>`), runs the tasks in reverse order.
pub unsafe extern "C" fn reverse_parallel_for(ctx: *mut c_void, n: u32, task: TaskFn, arg: *mut c_void) {
    // SAFETY: every runtime built with this function points ctx at a
    // `Mutex<Vec<u32>>` that outlives the run.
    let calls = unsafe { &*(ctx as *const Mutex<Vec<u32>>) };
    calls.lock().unwrap().push(n);
    for i in (0..n).rev() {
        // SAFETY: generated code's contract for parallel_for.
        unsafe { task(arg, i) };
    }
}

pub fn run_rt(m: &Model, inputs: &[Tensor], rt: Option<&KerfRuntime>) -> Vec<u8> {
    run_guarded(m, inputs, rt).unwrap_or_else(|e| panic!("{e}")).swap_remove(0)
}

/// Threaded runs equal the serial run bit for bit; the kernel is split.
pub fn threaded_equals_serial(name: &str, text: &str, inputs: &[Tensor]) {
    let g = kerf_ir::text::parse(text).unwrap();
    let jm = jit_compile(&g, &CompileOptions::parse("host", "native", "t").unwrap()).unwrap();
    let m = jm.model();
    let want = run_rt(m, inputs, None);
    let log: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    for threads in 1..=5u32 {
        let rt = KerfRuntime {
            abi_version: ABI_VERSION,
            num_threads: threads,
            parallel_for: Some(reverse_parallel_for),
            ctx: &log as *const Mutex<Vec<u32>> as *mut c_void,
        };
        assert!(run_rt(m, inputs, Some(&rt)) == want, "{name}: {threads} threads differ from serial");
        let calls = std::mem::take(&mut *log.lock().unwrap());
        if threads >= 2 {
            assert!(!calls.is_empty(), "{name}: not split at {threads} threads");
        }
    }
    for threads in [2, 3] {
        let pool = ThreadPool::new(threads);
        assert!(run_rt(m, inputs, Some(&pool.runtime())) == want, "{name}: pool of {threads}");
    }
}

/// A 2-D pool's geometry over `c` planes of `h × w`: window, strides,
/// dilations, padding before (rows, columns), output plane.
pub struct PoolGeo {
    pub c: usize,
    pub hw: (usize, usize),
    pub kernel: (usize, usize),
    pub strides: (usize, usize),
    pub dilations: (usize, usize),
    pub pads: (usize, usize),
    pub out: (usize, usize),
}

/// MaxPool of u8 (or, `signed`, i8) codes by its definition: per output
/// the maximum over the taps inside the plane, the dtype's lowest value
/// where there are none (the reference evaluator has no MaxPool).
pub fn byte_max_pool(x: &[u8], signed: bool, g: &PoolGeo) -> Vec<u8> {
    let value = |b: u8| if signed { i32::from(b as i8) } else { i32::from(b) };
    let ((h, w), (kh, kw), (sh, sw), (dh, dw), (ph, pw), (oh, ow)) =
        (g.hw, g.kernel, g.strides, g.dilations, g.pads, g.out);
    let mut want = Vec::with_capacity(g.c * oh * ow);
    for ch in 0..g.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = if signed { -128 } else { 0 };
                for ky in 0..kh {
                    for kx in 0..kw {
                        let (y, x0) = ((oy * sh + ky * dh) as i64 - ph as i64, (ox * sw + kx * dw) as i64 - pw as i64);
                        if (0..h as i64).contains(&y) && (0..w as i64).contains(&x0) {
                            acc = acc.max(value(x[(ch * h + y as usize) * w + x0 as usize]));
                        }
                    }
                }
                want.push(acc as u8);
            }
        }
    }
    want
}
