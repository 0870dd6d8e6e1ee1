//! MaxPool, AveragePool (any number of spatial axes: 1-D, 2-D, 3-D, ...;
//! padding, dilation, ceil mode, count_include_pad) and the global pools.
//!
//! Windowed pools compute the valid tap range per output position and axis
//! (as Conv does), so padding never reads memory; the loops over output
//! positions and over taps are nested once per spatial axis at compile time.
//! MaxPool also runs on integer tensors (compared signed or unsigned as the
//! dtype says), AveragePool on f32 only. The global pools reduce each plane
//! with `f32x4` steps and a horizontal reduction.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use kerf_ir::{DType, Op};

use super::conv::{imax, tap_range};
use super::{Kernel, LResult};

/// How MaxPool compares elements of a dtype.
#[derive(Clone, Copy)]
enum Elem {
    F32,
    /// Integer of this Cranelift type, signed or not.
    Int(Type, bool),
}

impl Elem {
    fn of(d: DType) -> Option<Elem> {
        Some(match d {
            DType::F32 => Elem::F32,
            DType::I8 => Elem::Int(types::I8, true),
            DType::U8 => Elem::Int(types::I8, false),
            DType::I16 => Elem::Int(types::I16, true),
            DType::U16 => Elem::Int(types::I16, false),
            DType::I32 => Elem::Int(types::I32, true),
            DType::U32 => Elem::Int(types::I32, false),
            DType::I64 => Elem::Int(types::I64, true),
            DType::U64 => Elem::Int(types::I64, false),
            _ => return None,
        })
    }
    fn ty(self) -> Type {
        match self {
            Elem::F32 => types::F32,
            Elem::Int(t, _) => t,
        }
    }
    fn bytes(self) -> usize {
        self.ty().bytes() as usize
    }
    /// The identity of max: -inf or the smallest integer.
    fn lowest(self, k: &mut Kernel) -> Value {
        match self {
            Elem::F32 => k.fc(f32::NEG_INFINITY),
            Elem::Int(t, signed) => {
                let v = if !signed {
                    0
                } else {
                    match t.bits() {
                        8 => i8::MIN as i64,
                        16 => i16::MIN as i64,
                        32 => i32::MIN as i64,
                        _ => i64::MIN,
                    }
                };
                k.b.ins().iconst(t, v)
            }
        }
    }
    fn max(self, k: &mut Kernel, a: Value, b: Value) -> Value {
        match self {
            Elem::F32 => k.b.ins().fmax(a, b),
            Elem::Int(_, signed) => {
                let cc = if signed { IntCC::SignedGreaterThan } else { IntCC::UnsignedGreaterThan };
                let c = k.b.ins().icmp(cc, a, b);
                k.b.ins().select(c, a, b)
            }
        }
    }
}

/// Per spatial axis: input size, output size, kernel, stride, dilation,
/// begin pad, end pad.
#[derive(Clone, Copy)]
struct Axis {
    size: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    dil: usize,
    pb: usize,
    pe: usize,
}

pub fn pool(k: &mut Kernel) -> LResult {
    let (p, is_max) = match k.node.op.clone() {
        Op::MaxPool(p) => (p, true),
        Op::AveragePool(p) => (p, false),
        _ => return Err("not a pool".into()),
    };
    let dt = k.in_dtype(0);
    let elem = match Elem::of(dt) {
        Some(Elem::Int(..)) if !is_max => return Err(format!("AveragePool on {dt} is not supported (f32 only)")),
        Some(e) => e,
        None => return Err(format!("pooling {dt} is not supported")),
    };
    let w = &p.window;
    let x = k.in_shape(0).to_vec();
    let o = k.out_shape(0).to_vec();
    let r = w.rank();
    if x.len() != r + 2 || o.len() != r + 2 {
        return Err(format!("{r}-D window on input {x:?} / output {o:?}"));
    }
    let axes: Vec<Axis> = (0..r)
        .map(|i| Axis {
            size: x[2 + i],
            out: o[2 + i],
            kernel: w.kernel[i],
            stride: w.strides[i],
            dil: w.dilations[i],
            pb: w.pad_begin(i),
            pe: w.pad_end(i),
        })
        .collect();
    let in_plane: usize = x[2..].iter().product();
    let out_plane: usize = o[2..].iter().product();
    // Row-major element strides of the spatial axes of one plane.
    let in_strides: Vec<usize> = (0..r).map(|i| x[3 + i..].iter().product()).collect();
    let out_strides: Vec<usize> = (0..r).map(|i| o[3 + i..].iter().product()).collect();
    let planes = x[0] * x[1];
    let eb = elem.bytes();
    let xp = k.input(0);
    let out = k.output(0);
    let include_pad = p.count_include_pad;
    k.for_n(0, planes as i64, 1, |k, pl| {
        let xo = k.b.ins().imul_imm_s(pl, (in_plane * eb) as i64);
        let xb = k.b.ins().iadd(xp, xo);
        let oo = k.b.ins().imul_imm_s(pl, (out_plane * eb) as i64);
        let ob = k.b.ins().iadd(out, oo);
        let out_dims: Vec<usize> = axes.iter().map(|a| a.out).collect();
        k.nest(&out_dims, &mut |k, opos| {
            // Per axis: valid tap range and the input index of tap 0.
            let mut ranges = Vec::with_capacity(r);
            let mut origin = Vec::with_capacity(r);
            for (a, &oi) in axes.iter().zip(opos) {
                ranges.push(tap_range(k, oi, a.stride, a.pb, a.dil, a.size, a.kernel));
                let i0 = k.b.ins().imul_imm_s(oi, a.stride as i64);
                origin.push(k.b.ins().iadd_imm_s(i0, -(a.pb as i64)));
            }
            let init = if is_max { elem.lowest(k) } else { k.fc(0.0) };
            let base = k.ic(0);
            let acc = taps(k, &axes, &ranges, &origin, &in_strides, 0, base, init, &mut |k, e, a| {
                let v = k.ld_at(elem.ty(), xb, e, eb as i64, 0);
                if is_max {
                    elem.max(k, a, v)
                } else {
                    k.b.ins().fadd(a, v)
                }
            });
            let res = if is_max {
                acc
            } else {
                let mut cnt: Option<Value> = None;
                for (i, (a, &oi)) in axes.iter().zip(opos).enumerate() {
                    let c = if include_pad {
                        // taps inside the padded extent
                        let (lo, hi) = tap_range(k, oi, a.stride, 0, a.dil, a.size + a.pb + a.pe, a.kernel);
                        k.b.ins().isub(hi, lo)
                    } else {
                        k.b.ins().isub(ranges[i].1, ranges[i].0)
                    };
                    cnt = Some(match cnt {
                        None => c,
                        Some(p) => k.b.ins().imul(p, c),
                    });
                }
                let one = k.ic(1);
                let cnt = match cnt {
                    Some(c) => imax(k, c, one),
                    None => one,
                };
                let cf = k.b.ins().fcvt_from_sint(types::F32, cnt);
                k.b.ins().fdiv(acc, cf)
            };
            let pix = k.linear(opos, &out_strides);
            k.st_at(res, ob, pix, eb as i64, 0);
        });
    });
    Ok(())
}

/// Folds `f` over the valid taps of axes `d..`: `base` is the element offset
/// accumulated from the outer axes.
#[allow(clippy::too_many_arguments)]
fn taps(
    k: &mut Kernel,
    axes: &[Axis],
    ranges: &[(Value, Value)],
    origin: &[Value],
    strides: &[usize],
    d: usize,
    base: Value,
    acc: Value,
    f: &mut dyn FnMut(&mut Kernel, Value, Value) -> Value,
) -> Value {
    if d == axes.len() {
        return f(k, base, acc);
    }
    let (lo, hi) = ranges[d];
    let (dil, stride, o) = (axes[d].dil, strides[d], origin[d]);
    k.for_acc(lo, hi, 1, &[acc], |k, t, a| {
        let i = k.b.ins().imul_imm_s(t, dil as i64);
        let i = k.b.ins().iadd(i, o);
        let off = k.b.ins().imul_imm_s(i, stride as i64);
        let e = k.b.ins().iadd(base, off);
        vec![taps(k, axes, ranges, origin, strides, d + 1, e, a[0], f)]
    })[0]
}

/// Reduces `len` contiguous f32 at `p` with max or sum.
pub fn reduce_row(k: &mut Kernel, p: Value, len: usize, is_max: bool) -> Value {
    let l = k.lanes();
    let main = len / l * l;
    let vty = k.vty();
    let init = k.fsplat(vty, if is_max { f32::NEG_INFINITY } else { 0.0 });
    let acc = k.for_acc_n(0, main as i64, l as i64, &[init], |k, i, a| {
        let v = k.ld_at(vty, p, i, 4, 0);
        vec![if is_max { k.b.ins().fmax(a[0], v) } else { k.b.ins().fadd(a[0], v) }]
    });
    let mut s = if l > 1 {
        if is_max {
            k.hmax(acc[0])
        } else {
            k.hsum(acc[0])
        }
    } else {
        acc[0]
    };
    if l > 1 && main < len {
        s = k.for_acc_n(main as i64, len as i64, 1, &[s], |k, i, a| {
            let v = k.ld_at(types::F32, p, i, 4, 0);
            vec![if is_max { k.b.ins().fmax(a[0], v) } else { k.b.ins().fadd(a[0], v) }]
        })[0];
    }
    s
}

pub fn global(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let is_max = matches!(k.node.op, Op::GlobalMaxPool);
    let x = k.in_shape(0).to_vec();
    let planes = x[0] * x[1];
    let len: usize = x[2..].iter().product();
    let xp = k.input(0);
    let out = k.output(0);
    k.for_n(0, planes as i64, 1, |k, pl| {
        let xo = k.b.ins().imul_imm_s(pl, (len * 4) as i64);
        let xb = k.b.ins().iadd(xp, xo);
        let s = reduce_row(k, xb, len, is_max);
        let r = if is_max {
            s
        } else {
            let d = k.fc(len as f32);
            k.b.ins().fdiv(s, d)
        };
        k.st_at(r, out, pl, 4, 0);
    });
    Ok(())
}
