//! `Chain` steps (several f32 elementwise steps in one pass, `kerf_ir::op::ChainStep`)
//! and the chunked form that runs a chain's transcendental steps as AVX2
//! math streams ([`crate::ukernel::vmath`]).

use cranelift_codegen::ir::{InstBuilder, Type, Value};
use kerf_ir::op::ChainStep;
use kerf_ir::{Op, UnaryOp};

use super::elementwise::{binary_f, unary_f, unary_stream};
use super::epilogue::stream_prefix;
use super::{Kernel, LResult};
use crate::ukernel::vmath::VFn;

/// The steps of a `Chain` on `F32` or `F32X4` values: the same emitters as
/// the standalone unary/binary kernels, so a chain computes exactly what
/// its steps as separate nodes would (each step is rounded to f32 either way).
pub(crate) fn chain(k: &mut Kernel, steps: &[ChainStep], ty: Type, args: &[Value]) -> LResult<Value> {
    let acc = *args.first().ok_or("Chain without an input")?;
    chain_from(k, steps, ty, acc, args)
}

/// [`chain`]'s steps from the accumulator value `acc`.
fn chain_from(k: &mut Kernel, steps: &[ChainStep], ty: Type, mut acc: Value, args: &[Value]) -> LResult<Value> {
    for s in steps {
        acc = match *s {
            ChainStep::Unary(u) => unary_f(k, u, ty, acc)?,
            ChainStep::Binary { op, arg, swap } => {
                let y = *args.get(arg).ok_or_else(|| format!("chain step reads missing input {arg}"))?;
                let (a, b) = if swap { (y, acc) } else { (acc, y) };
                binary_f(k, op, ty, a, b, None)?
            }
        };
    }
    Ok(acc)
}

/// The AVX2 stream of a chain step ([`unary_stream`] of its op).
pub(super) fn step_stream(s: &ChainStep) -> Option<VFn> {
    match *s {
        ChainStep::Unary(u) => unary_stream(&Op::Unary(u)),
        ChainStep::Binary { .. } => None,
    }
}

/// The chain's operands at an element: `(kernel, type, element, which
/// inputs to load (the others are a dead constant; `None`: all))`.
pub(super) type LoadArgs<'a> = dyn Fn(&mut Kernel, Type, Value, Option<&dyn Fn(usize) -> bool>) -> Vec<Value> + 'a;

/// Steps of a chain run as one 128-bit pass, then the streamed step after
/// them (none after the last segment).
type Segment<'a> = (&'a [ChainStep], Option<(VFn, UnaryOp)>);

/// Elements per chunk of [`chain_streamed`]: its passes stay in L1.
const CHAIN_CHUNK: usize = 512;

/// A contiguous f32 chain row of `len` elements at `ob` whose steps
/// include transcendental unaries with AVX2 streams (SiLU's `Sigmoid
/// Mul($0,@)`): per chunk of [`CHAIN_CHUNK`] elements, the steps up to
/// each streamed one run as a 128-bit pass storing to a scratch chunk, the
/// stream applies that step in place (Cranelift's loop on the tail), and
/// the next pass continues from the stored values; only the last pass
/// writes the output, element by element after reading the inputs, so an
/// output sharing an input's buffer is safe (as in the one-pass loop; the
/// ONNX node tests `causal_conv_with_state_silu*` have that arena).
/// Every step rounds to f32 either way, so the bits are the fused loop's.
pub(super) fn chain_streamed(
    k: &mut Kernel,
    steps: &[ChainStep],
    len: usize,
    ob: Value,
    load_args: &LoadArgs,
) -> LResult {
    // segments: the steps before each streamed step, and that step
    let mut segs: Vec<Segment> = Vec::new();
    let mut from = 0;
    for (i, s) in steps.iter().enumerate() {
        if let (Some(f), ChainStep::Unary(u)) = (step_stream(s), s) {
            segs.push((&steps[from..i], Some((f, *u))));
            from = i + 1;
        }
    }
    segs.push((&steps[from..], None));
    // intermediate values go to a chunk of scratch, never to the output:
    // the output may share its buffer with an input the later passes read
    let tmp = k.task_scratch(CHAIN_CHUNK * 4);
    let last = segs.len() - 1;
    let mut failed: Option<String> = None;
    let mut chunk = |k: &mut Kernel, c: Value, n: usize| {
        for (i, &(seg, stream)) in segs.iter().enumerate() {
            k.for_vec(n, &mut |k, ty, j| {
                let e = k.b.ins().iadd(c, j);
                // the inputs this pass reads: x for the first, the steps' operands
                let used = |a: usize| {
                    i == 0 && a == 0 || seg.iter().any(|s| matches!(*s, ChainStep::Binary { arg, .. } if arg == a))
                };
                let args = load_args(k, ty, e, Some(&used));
                let acc = if i == 0 { args[0] } else { k.ld_at(ty, tmp, j, 4, 0) };
                match chain_from(k, seg, ty, acc, &args) {
                    Ok(v) if i == last => k.st_at(v, ob, e, 4, 0),
                    Ok(v) => k.st_at(v, tmp, j, 4, 0),
                    Err(err) => {
                        failed.get_or_insert(err);
                    }
                }
            });
            let Some((f, u)) = stream else { continue };
            let done = stream_prefix(k, Some(f), tmp, tmp, n);
            k.for_vec_from(done, n, &mut |k, ty, j| {
                let x = k.ld_at(ty, tmp, j, 4, 0);
                match unary_f(k, u, ty, x) {
                    Ok(v) => k.st_at(v, tmp, j, 4, 0),
                    Err(err) => {
                        failed.get_or_insert(err);
                    }
                }
            });
        }
    };
    let full = len / CHAIN_CHUNK;
    k.for_n(0, (full * CHAIN_CHUNK) as i64, CHAIN_CHUNK as i64, |k, c| chunk(k, c, CHAIN_CHUNK));
    if !len.is_multiple_of(CHAIN_CHUNK) {
        let c = k.ic((full * CHAIN_CHUNK) as i64);
        chunk(k, c, len % CHAIN_CHUNK);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
