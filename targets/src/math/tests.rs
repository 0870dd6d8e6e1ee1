//! Accuracy and portability tests for the emitted math routines.
//!
//! Each routine is wrapped in a loop `fn(src: *const f32, dst: *mut f32, n: i64)` (scalar: one
//! element per iteration, vector: one f32x4 per iteration), JIT-compiled for the host and swept
//! against f64 references. Cross objects for AArch64 and riscv64 are checked for undefined
//! symbols and, when the cross toolchains and qemu are installed, linked into a C harness and run.

use super::*;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, BlockArg, Function, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Erf,
    Gelu,
    FloorNative,
    FloorSoft,
    Sin,
    Cos,
}

const ALL_OPS: [Op; 10] =
    [Op::Exp, Op::Log, Op::Tanh, Op::Sigmoid, Op::Erf, Op::Gelu, Op::FloorNative, Op::FloorSoft, Op::Sin, Op::Cos];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Erf => "erf",
            Op::Gelu => "gelu",
            Op::FloorNative => "floor_native",
            Op::FloorSoft => "floor_soft",
            Op::Sin => "sin",
            Op::Cos => "cos",
        }
    }

    fn emit(self, b: &mut FunctionBuilder, x: Value) -> Value {
        match self {
            Op::Exp => exp(b, x),
            Op::Log => log(b, x),
            Op::Tanh => tanh(b, x),
            Op::Sigmoid => sigmoid(b, x),
            Op::Erf => erf(b, x),
            Op::Gelu => gelu(b, x),
            Op::FloorNative => floor(b, x, true),
            Op::FloorSoft => floor(b, x, false),
            Op::Sin => sin(b, x),
            Op::Cos => cos(b, x),
        }
    }
}

fn symbol(op: Op, vector: bool) -> String {
    format!("kerf_math_{}_{}", op.name(), if vector { "f32x4" } else { "f32" })
}

/// Defines `symbol(op, vector)` in `module`: a loop applying `op` to `n` floats.
fn define<M: Module>(module: &mut M, op: Op, vector: bool) -> cranelift_module::FuncId {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(types::I64));
    let name = symbol(op, vector);
    let id = module.declare_function(&name, Linkage::Export, &sig).unwrap();
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.append_block_param(header, types::I64);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (src, dst, n) = (params[0], params[1], params[2]);
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().jump(header, &[BlockArg::Value(zero)]);

        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let more = b.ins().icmp(IntCC::SignedLessThan, i, n);
        b.ins().brif(more, body, &[], exit, &[]);

        b.switch_to_block(body);
        let off = b.ins().imul_imm_u(i, 4);
        let sa = b.ins().iadd(src, off);
        let da = b.ins().iadd(dst, off);
        // Rust's Vec<f32> is only 4-byte aligned: no `aligned` flag.
        let flags = MemFlagsData::new().with_notrap();
        let ty = if vector { types::F32X4 } else { types::F32 };
        let v = b.ins().load(ty, flags, sa, 0);
        let r = op.emit(&mut b, v);
        b.ins().store(flags, r, da, 0);
        let next = b.ins().iadd_imm_u(i, if vector { 4 } else { 1 });
        b.ins().jump(header, &[BlockArg::Value(next)]);

        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    id
}

fn flags(pic: bool) -> settings::Flags {
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").unwrap();
    fb.set("is_pic", if pic { "true" } else { "false" }).unwrap();
    settings::Flags::new(fb)
}

fn host_isa() -> OwnedTargetIsa {
    cranelift_native::builder().unwrap().finish(flags(false)).unwrap()
}

fn isa_for(triple: &str, pic: bool) -> OwnedTargetIsa {
    let triple = target_lexicon::Triple::from_str(triple).unwrap();
    cranelift_codegen::isa::lookup(triple).unwrap().finish(flags(pic)).unwrap()
}

type Kernel = unsafe extern "C" fn(*const f32, *mut f32, i64);

/// All ops in both forms JIT-compiled with one ISA.
struct Jit {
    _module: JITModule,
    fns: Vec<(Op, bool, Kernel)>,
}

impl Jit {
    fn new(isa: OwnedTargetIsa, ops: &[Op]) -> Jit {
        let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let mut ids = Vec::new();
        for &op in ops {
            for vector in [false, true] {
                ids.push((op, vector, define(&mut module, op, vector)));
            }
        }
        module.finalize_definitions().unwrap();
        let fns = ids
            .into_iter()
            .map(|(op, vector, id)| {
                let p = module.get_finalized_function(id);
                // SAFETY: `define` built exactly this signature with the host calling convention.
                (op, vector, unsafe { std::mem::transmute::<*const u8, Kernel>(p) })
            })
            .collect();
        Jit { _module: module, fns }
    }

    fn run(&self, op: Op, vector: bool, xs: &[f32]) -> Vec<f32> {
        let f = self.fns.iter().find(|(o, v, _)| *o == op && *v == vector).unwrap().2;
        let mut src = xs.to_vec();
        while vector && !src.len().is_multiple_of(4) {
            src.push(0.0);
        }
        let mut dst = vec![0.0f32; src.len()];
        // SAFETY: both buffers hold `src.len()` floats, a multiple of 4 for the vector form.
        unsafe { f(src.as_ptr(), dst.as_mut_ptr(), src.len() as i64) };
        dst.truncate(xs.len());
        dst
    }
}

// ---------------------------------------------------------------- references

/// erf in f64: Taylor series below 2.5, continued fraction for erfc above (|err| < 1e-15).
fn erf64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        let mut term = a;
        let mut sum = a;
        let a2 = a * a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -a2 / n;
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if a < 27.0 {
        let mut f = a;
        for k in (1..=300).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    } else {
        1.0
    };
    r.copysign(x)
}

fn reference(op: Op, x: f32) -> f64 {
    let x = f64::from(x);
    match op {
        Op::Exp => x.exp(),
        Op::Log => x.ln(),
        Op::Tanh => x.tanh(),
        Op::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Op::Erf => erf64(x),
        // The limit at -inf is -0 (the plain formula gives -inf·0 = NaN).
        Op::Gelu if x == f64::NEG_INFINITY => -0.0,
        Op::Gelu => 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2)),
        Op::FloorNative | Op::FloorSoft => x.floor(),
        Op::Sin => x.sin(),
        Op::Cos => x.cos(),
    }
}

/// Error of `r` against `reference` in f32 ulps at the reference's magnitude; infinite when
/// the classes (NaN, inf) disagree with the correctly rounded result.
fn ulp_err(r: f32, reference: f64) -> f64 {
    if reference.is_nan() {
        return if r.is_nan() { 0.0 } else { f64::INFINITY };
    }
    let rounded = reference as f32;
    if rounded.is_infinite() || r.is_nan() || r.is_infinite() {
        return if r == rounded { 0.0 } else { f64::INFINITY };
    }
    let e = if reference == 0.0 { -126 } else { (((reference.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-126) };
    let ulp = (2.0f64).powi(e - 23);
    (f64::from(r) - reference).abs() / ulp
}

/// Absolute error, infinite when NaN-ness or infinities disagree. `scale_by_ref` divides by
/// max(1, |reference|) (used for gelu, which grows like x).
fn abs_err(r: f32, reference: f64, scale_by_ref: bool) -> f64 {
    if reference.is_nan() || r.is_nan() {
        return if reference.is_nan() && r.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if reference.is_infinite() || r.is_infinite() {
        return if f64::from(r) == reference { 0.0 } else { f64::INFINITY };
    }
    let d = (f64::from(r) - reference).abs();
    if scale_by_ref {
        d / reference.abs().max(1.0)
    } else {
        d
    }
}

// ---------------------------------------------------------------- inputs

fn linspace(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..n).map(|i| lo + (hi - lo) * (i as f32 / (n - 1) as f32)).collect()
}

/// Every `stride`-th bit pattern between the two (non-negative) floats, both signs if `both`.
fn bit_sweep(lo: f32, hi: f32, stride: u32, both: bool) -> Vec<f32> {
    let mut v = Vec::new();
    let mut b = lo.to_bits();
    while b <= hi.to_bits() {
        let x = f32::from_bits(b);
        v.push(x);
        if both {
            v.push(-x);
        }
        b = match b.checked_add(stride) {
            Some(n) => n,
            None => break,
        };
    }
    v
}

fn specials() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        1e-30,
        -1e-30,
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
        0.5,
        -0.5,
        88.72283,
        88.72284,
        -87.33654,
        -103.97208,
        -103.97209,
        -104.0,
        89.0,
        -110.0,
        1e10,
        -1e10,
    ]
}

/// Inputs for `op`: its useful range densely, all exponents sparsely, and the special values.
fn inputs(op: Op) -> Vec<f32> {
    if matches!(op, Op::Sin | Op::Cos) {
        // the documented range only, densely near 0 and at every exponent, plus non-finite
        let lim = SIN_COS_MAX_ARG;
        let mut v: Vec<f32> = specials().into_iter().filter(|x| !x.is_finite() || x.abs() <= lim).collect();
        v.extend(linspace(-10.0, 10.0, 1_000_000));
        v.extend(linspace(-lim, lim, 1_000_000));
        v.extend(bit_sweep(1e-45, lim, 1021, true));
        return v;
    }
    let mut v = specials();
    match op {
        Op::Exp => {
            v.extend(linspace(-87.0, 88.0, 1_000_000));
            v.extend(bit_sweep(88.0, 89.0, 1, false)); // overflow boundary, exhaustively
            v.extend(bit_sweep(87.0, 104.0, 7, false).into_iter().map(|x| -x)); // subnormal results
        }
        Op::Log => {
            v.extend(bit_sweep(1e-45, f32::MAX, 1021, false)); // all positive floats
            v.extend(bit_sweep(0.5, 2.0, 3, false)); // near 1 densely
        }
        _ => {
            v.extend(linspace(-20.0, 20.0, 1_000_000));
            v.extend(bit_sweep(1e-45, 1.0, 1021, true)); // small magnitudes
        }
    }
    v.extend(bit_sweep(1e-45, f32::MAX, 4099, true)); // every exponent, both signs
    v
}

struct Worst {
    err: f64,
    x: f32,
    got: f32,
    want: f64,
}

fn worst(op: Op, xs: &[f32], ys: &[f32], metric: impl Fn(f32, f64) -> f64) -> Worst {
    let mut w = Worst { err: -1.0, x: 0.0, got: 0.0, want: 0.0 };
    for (&x, &y) in xs.iter().zip(ys) {
        let want = reference(op, x);
        let e = metric(y, want);
        if e > w.err || e.is_nan() {
            w = Worst { err: e, x, got: y, want };
        }
    }
    w
}

/// Sweeps `op` in both forms, checks the forms agree bit for bit, returns the worst error.
fn sweep(jit: &Jit, op: Op, metric: impl Fn(f32, f64) -> f64 + Copy) -> f64 {
    let xs = inputs(op);
    let s = jit.run(op, false, &xs);
    let v = jit.run(op, true, &xs);
    for ((&x, &a), &b) in xs.iter().zip(&s).zip(&v) {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{}: scalar {a:e} ({:#x}) vs vector {b:e} ({:#x}) at x = {x:e}",
            op.name(),
            a.to_bits(),
            b.to_bits()
        );
    }
    let w = worst(op, &xs, &s, metric);
    eprintln!(
        "{}: {} points, max error {:e} at x = {:e} (got {:e}, want {:e})",
        op.name(),
        xs.len(),
        w.err,
        w.x,
        w.got,
        w.want
    );
    w.err
}

// ---------------------------------------------------------------- host accuracy

#[test]
fn exp_is_within_documented_ulp() {
    let jit = Jit::new(host_isa(), &[Op::Exp]);
    let e = sweep(&jit, Op::Exp, ulp_err);
    assert!(e <= f64::from(MAX_ULP_EXP), "exp: {e} ulp > {MAX_ULP_EXP}");
    let r = jit.run(Op::Exp, false, &[0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1.0, 100.0, -200.0]);
    assert_eq!(r[..2], [1.0, 1.0]);
    assert_eq!(r[2], f32::INFINITY);
    assert_eq!(r[3].to_bits(), 0);
    assert!((r[4] - std::f32::consts::E).abs() <= f32::EPSILON * 3.0);
    assert_eq!(r[5], f32::INFINITY);
    assert_eq!(r[6].to_bits(), 0);
}

#[test]
fn log_is_within_documented_ulp() {
    let jit = Jit::new(host_isa(), &[Op::Log]);
    let e = sweep(&jit, Op::Log, ulp_err);
    assert!(e <= f64::from(MAX_ULP_LOG), "log: {e} ulp > {MAX_ULP_LOG}");
    let r = jit.run(Op::Log, true, &[0.0, -0.0, -1.0, f32::INFINITY, f32::NAN, 1.0, f32::NEG_INFINITY, 1e-45]);
    assert_eq!(r[0], f32::NEG_INFINITY);
    assert_eq!(r[1], f32::NEG_INFINITY);
    assert!(r[2].is_nan());
    assert_eq!(r[3], f32::INFINITY);
    assert!(r[4].is_nan());
    assert_eq!(r[5].to_bits(), 0);
    assert!(r[6].is_nan());
    assert!((r[7] + 103.27893).abs() < 1e-4, "log(min subnormal) = {}", r[7]);
}

#[test]
fn tanh_sigmoid_erf_gelu_within_documented_abs_error() {
    let jit = Jit::new(host_isa(), &[Op::Tanh, Op::Sigmoid, Op::Erf, Op::Gelu]);
    let abs = |r, w| abs_err(r, w, false);
    let e = sweep(&jit, Op::Tanh, abs);
    assert!(e <= f64::from(MAX_ABS_ERR_TANH), "tanh: {e:e}");
    let e = sweep(&jit, Op::Sigmoid, abs);
    assert!(e <= f64::from(MAX_ABS_ERR_SIGMOID), "sigmoid: {e:e}");
    let e = sweep(&jit, Op::Erf, abs);
    assert!(e <= f64::from(MAX_ABS_ERR_ERF), "erf: {e:e}");
    let e = sweep(&jit, Op::Gelu, |r, w| abs_err(r, w, true));
    assert!(e <= f64::from(MAX_ABS_ERR_GELU), "gelu: {e:e}");

    let xs = [f32::INFINITY, f32::NEG_INFINITY, -0.0, 20.0, -20.0];
    let t = jit.run(Op::Tanh, true, &xs);
    assert_eq!(t, [1.0, -1.0, -0.0, 1.0, -1.0]);
    assert_eq!(t[2].to_bits(), (-0.0f32).to_bits());
    assert_eq!(jit.run(Op::Sigmoid, true, &xs), [1.0, 0.0, 0.5, 1.0, 2.0611537e-9]);
    let e = jit.run(Op::Erf, false, &xs);
    assert_eq!(e, [1.0, -1.0, -0.0, 1.0, -1.0]);
    assert_eq!(e[2].to_bits(), (-0.0f32).to_bits());
    let g = jit.run(Op::Gelu, false, &xs);
    assert_eq!(g[..4], [f32::INFINITY, 0.0, 0.0, 20.0]);
    assert!(g[4].abs() < 1e-30);
}

#[test]
fn sin_cos_within_documented_abs_error() {
    let jit = Jit::new(host_isa(), &[Op::Sin, Op::Cos]);
    for op in [Op::Sin, Op::Cos] {
        let e = sweep(&jit, op, |r, w| abs_err(r, w, false));
        assert!(e <= f64::from(MAX_ABS_ERR_SIN_COS), "{}: {e:e}", op.name());
    }
    let xs = [0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -3e9];
    let s = jit.run(Op::Sin, true, &xs);
    let c = jit.run(Op::Cos, false, &xs);
    assert_eq!((s[0], c[0]), (0.0, 1.0));
    for i in 1..4 {
        assert!(s[i].is_nan() && c[i].is_nan(), "non-finite input {}: sin {} cos {}", xs[i], s[i], c[i]);
    }
    // outside the accurate range: still bounded
    for i in 4..6 {
        assert!(s[i].abs() <= 1.0 && c[i].abs() <= 1.0, "x = {}: sin {} cos {}", xs[i], s[i], c[i]);
    }
}

/// Every f32 bit pattern through the vector form (about 20 minutes for all six in release
/// mode): `cargo test -p kerf-targets --release --lib exhaustive -- --ignored --nocapture`.
#[test]
#[ignore = "exhaustive: minutes of CPU"]
fn exhaustive_all_floats() {
    let ops = [Op::Exp, Op::Log, Op::Tanh, Op::Sigmoid, Op::Erf, Op::Gelu];
    let jit = Jit::new(host_isa(), &ops);
    let limits = [
        f64::from(MAX_ULP_EXP),
        f64::from(MAX_ULP_LOG),
        f64::from(MAX_ABS_ERR_TANH),
        f64::from(MAX_ABS_ERR_SIGMOID),
        f64::from(MAX_ABS_ERR_ERF),
        f64::from(MAX_ABS_ERR_GELU),
    ];
    for (op, limit) in ops.into_iter().zip(limits) {
        let metric = |r: f32, w: f64| match op {
            Op::Exp | Op::Log => ulp_err(r, w),
            _ => abs_err(r, w, op == Op::Gelu),
        };
        let mut worst_all = Worst { err: -1.0, x: 0.0, got: 0.0, want: 0.0 };
        const CHUNK: u64 = 1 << 22;
        let mut start = 0u64;
        while start < 1u64 << 32 {
            let xs: Vec<f32> = (start..start + CHUNK).map(|b| f32::from_bits(b as u32)).collect();
            let ys = jit.run(op, true, &xs);
            let w = worst(op, &xs, &ys, metric);
            if w.err > worst_all.err {
                worst_all = w;
            }
            start += CHUNK;
        }
        let w = worst_all;
        eprintln!(
            "{} exhaustive: max error {:e} at x = {:e} (got {:e}, want {:e})",
            op.name(),
            w.err,
            w.x,
            w.got,
            w.want
        );
        assert!(w.err <= limit, "{}: {:e} > {limit:e}", op.name(), w.err);
    }
}

/// Throughput of each routine on the host (informational, no assertion on speed):
/// `cargo test -p kerf-targets --release --lib math_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark"]
fn math_throughput() {
    let jit = Jit::new(host_isa(), &ALL_OPS);
    let xs = linspace(-10.0, 10.0, 1 << 16);
    for op in ALL_OPS {
        for vector in [false, true] {
            let f = jit.fns.iter().find(|(o, v, _)| *o == op && *v == vector).unwrap().2;
            let mut dst = vec![0.0f32; xs.len()];
            let reps = 200;
            let t0 = std::time::Instant::now();
            for _ in 0..reps {
                // SAFETY: both buffers hold xs.len() floats, a multiple of 4.
                unsafe { f(xs.as_ptr(), dst.as_mut_ptr(), xs.len() as i64) };
            }
            let ns = t0.elapsed().as_secs_f64() * 1e9 / (reps * xs.len()) as f64;
            eprintln!("{:>12} {:>5}: {ns:.3} ns/element", op.name(), if vector { "f32x4" } else { "f32" });
        }
    }
}

#[test]
fn reference_erf_matches_known_values() {
    for (x, want) in [
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (2.5, 0.999_593_047_982_555),
        (3.0, 0.999_977_909_503_001_4),
        (-1.5, -0.966_105_146_475_310_7),
    ] {
        assert!((erf64(x) - want).abs() < 1e-15, "erf64({x}) = {} want {want}", erf64(x));
    }
    let erfc5 = 1.0 - erf64(5.0);
    assert!((erfc5 - 1.537_459_794_428_035e-12).abs() < 1e-16, "erfc(5) = {erfc5:e}");
}

#[test]
fn floor_is_exact_in_both_modes() {
    let jit = Jit::new(host_isa(), &[Op::FloorNative, Op::FloorSoft]);
    let mut xs = specials();
    xs.extend(linspace(-10.0, 10.0, 100_001));
    xs.extend([8_388_607.5, -8_388_607.5, 8_388_608.0, -8_388_609.0, 2.5e9, -2.5e9, 0.999_999_94, -0.999_999_94]);
    xs.extend(bit_sweep(1e-45, f32::MAX, 65_537, true));
    for op in [Op::FloorNative, Op::FloorSoft] {
        for vector in [false, true] {
            let r = jit.run(op, vector, &xs);
            for (&x, &y) in xs.iter().zip(&r) {
                let want = x.floor();
                assert!(
                    y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                    "{} vector={vector}: floor({x:e}) = {y:e}, want {want:e}",
                    op.name()
                );
            }
        }
    }
}

/// Baseline x86-64 (SSE2 only, no SSE4.1/AVX/FMA) lowers every routine and computes the same
/// bits as the host-tuned ISA (the operation sequence is plain IEEE arithmetic).
#[test]
fn baseline_x86_64_matches_host_bit_for_bit() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let ops = [Op::Exp, Op::Log, Op::Tanh, Op::Sigmoid, Op::Erf, Op::Gelu, Op::FloorSoft];
    let base = Jit::new(isa_for("x86_64-unknown-linux-gnu", false), &ops);
    let native = Jit::new(host_isa(), &ops);
    let mut xs = specials();
    xs.extend(linspace(-30.0, 30.0, 200_001));
    xs.extend(bit_sweep(1e-45, f32::MAX, 40_009, true));
    for op in ops {
        for vector in [false, true] {
            let a = base.run(op, vector, &xs);
            let b = native.run(op, vector, &xs);
            for ((&x, &p), &q) in xs.iter().zip(&a).zip(&b) {
                assert!(
                    p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                    "{} vector={vector} at {x:e}: baseline {p:e} vs host {q:e}",
                    op.name()
                );
            }
        }
    }
}

// ---------------------------------------------------------------- cross objects

/// Builds an object with every op (vector forms only where the target has 128-bit vectors).
fn cross_object(triple: &str, vector: bool, ops: &[Op]) -> Vec<u8> {
    let isa = isa_for(triple, true);
    let builder = ObjectBuilder::new(isa, "kerf_math", default_libcall_names()).unwrap();
    let mut module = ObjectModule::new(builder);
    for &op in ops {
        define(&mut module, op, false);
        if vector {
            define(&mut module, op, true);
        }
    }
    module.finish().emit().unwrap()
}

fn undefined_symbols(bytes: &[u8]) -> Vec<String> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(bytes).unwrap();
    file.symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        .map(|s| s.name().unwrap_or("?").to_string())
        .collect()
}

fn defined_symbols(bytes: &[u8]) -> Vec<String> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(bytes).unwrap();
    file.symbols().filter(|s| s.is_definition()).map(|s| s.name().unwrap_or("?").to_string()).collect()
}

const CROSS: [(&str, bool); 3] =
    [("aarch64-unknown-linux-gnu", true), ("riscv64gc-unknown-linux-gnu", false), ("x86_64-unknown-linux-gnu", true)];

#[test]
fn cross_objects_have_no_undefined_symbols() {
    for (triple, vector) in CROSS {
        // Baseline x86-64 has no SSE4.1 `roundps`: only the soft floor there.
        let ops: Vec<Op> =
            ALL_OPS.iter().copied().filter(|&o| !(o == Op::FloorNative && triple.starts_with("x86_64"))).collect();
        let obj = cross_object(triple, vector, &ops);
        assert_eq!(undefined_symbols(&obj), Vec::<String>::new(), "{triple}");
        let defined = defined_symbols(&obj);
        for &op in &ops {
            assert!(defined.contains(&symbol(op, false)), "{triple}: {} missing", symbol(op, false));
            assert_eq!(defined.contains(&symbol(op, true)), vector, "{triple}: {}", symbol(op, true));
        }
    }
}

// ---------------------------------------------------------------- qemu

const HARNESS: &str = include_str!("harness.c");

fn have(tool: &str) -> bool {
    std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Links the emitted routines into `harness.c` with the cross GCC and runs it under qemu.
/// Skipped (with a message) when the toolchain is missing, unless KERF_REQUIRE_CROSS=1.
fn run_under_qemu(triple: &str, gcc: &str, qemu: &str, sysroot: &str, vector: bool) {
    if !have(gcc) || !have(qemu) {
        assert!(std::env::var("KERF_REQUIRE_CROSS").is_err(), "{gcc} or {qemu} missing");
        eprintln!("skipping {triple}: {gcc} or {qemu} not installed");
        return;
    }
    let ops = [Op::Exp, Op::Log, Op::Tanh, Op::Sigmoid, Op::Erf, Op::Gelu, Op::FloorNative, Op::FloorSoft];
    let obj = cross_object(triple, vector, &ops);
    let dir = std::env::temp_dir().join(format!("kerf-math-{triple}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("math.o"), obj).unwrap();
    std::fs::write(dir.join("harness.c"), HARNESS).unwrap();
    let out = std::process::Command::new(gcc)
        .current_dir(&dir)
        .args(["-O1", "-static", if vector { "-DKERF_VECTOR=1" } else { "-DKERF_VECTOR=0" }])
        .args(["harness.c", "math.o", "-lm", "-o", "harness"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{gcc}: {}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(qemu).current_dir(&dir).args(["-L", sysroot, "./harness"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{triple}:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{triple}: harness failed");
    let _ = std::fs::remove_dir_all(&dir);
    let mut seen = 0;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else { continue };
        let v: f64 = value.parse().unwrap();
        let limit = match name {
            "exp_ulp" => f64::from(MAX_ULP_EXP),
            "log_ulp" => f64::from(MAX_ULP_LOG),
            "tanh_abs" => f64::from(MAX_ABS_ERR_TANH),
            "sigmoid_abs" => f64::from(MAX_ABS_ERR_SIGMOID),
            "erf_abs" => f64::from(MAX_ABS_ERR_ERF),
            "gelu_rel" => f64::from(MAX_ABS_ERR_GELU),
            "floor_wrong" | "vector_mismatch" | "special_wrong" => 0.0,
            other => panic!("{triple}: unexpected harness line {other}"),
        };
        assert!(v <= limit, "{triple}: {name} = {v:e} > {limit:e}");
        seen += 1;
    }
    assert_eq!(seen, 9, "{triple}: harness printed {seen} of 9 results");
}

#[test]
fn aarch64_under_qemu() {
    run_under_qemu(
        "aarch64-unknown-linux-gnu",
        "aarch64-linux-gnu-gcc",
        "qemu-aarch64",
        "/usr/aarch64-linux-gnu",
        true,
    );
}

#[test]
fn riscv64_under_qemu() {
    run_under_qemu(
        "riscv64gc-unknown-linux-gnu",
        "riscv64-linux-gnu-gcc",
        "qemu-riscv64",
        "/usr/riscv64-linux-gnu",
        false,
    );
}
