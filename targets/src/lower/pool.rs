//! MaxPool, AveragePool (any number of spatial axes: 1-D, 2-D, 3-D, ...;
//! padding, dilation, ceil mode, count_include_pad) and the global pools.
//!
//! Windowed pools compute the valid tap range per output position and axis
//! (as Conv does), so padding never reads memory; the loops over output
//! positions and over taps are nested once per spatial axis at compile time.
//! MaxPool also runs on integer tensors (compared signed or unsigned as the
//! dtype says), AveragePool on f32 only. The global pools reduce each plane
//! with `f32x4` steps and a horizontal reduction.
//!
//! 2-D f32 pools and byte MaxPools (u8/i8: the `int8-maxpool` rule's
//! pool between an integer conv and the next one's quantiser) with
//! dilation 1 (the CNN case: ResNet/SqueezeNet MaxPool) take `Fast2d`
//! instead: padding resolved at compile time (interior without bounds
//! checks + unrolled border columns), hoisted row pointers, and 128-bit
//! vectors over output columns for strides 1 and 2 when SIMD is available
//! (4 floats or 16 bytes; scalar interior otherwise, e.g. rv64gc); with
//! AVX2, f32 MaxPool's interior rows first run 8 outputs per `ymm` (16 per
//! `zmm` with AVX-512) on an assembled pass (`ukernel::pool`, the same
//! fold). Its results are bit-identical to the generic path.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Immediate, InstBuilder, MemFlagsData, SigRef, Type, Value};
use kerf_ir::{DType, Op};

use super::conv_geo::tap_range;
use super::loops::imax;
use super::{Family, Kernel, LResult};
use crate::ukernel::avx512::{byte_pool_rows, BytePoolRows};
use crate::ukernel::pool::{max_pool_row, PoolRow};

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
        let vector = k.b.func.dfg.value_type(a).is_vector();
        match self {
            Elem::F32 => max_f32(k, a, b),
            Elem::Int(_, true) if vector => k.b.ins().smax(a, b),
            Elem::Int(_, false) if vector => k.b.ins().umax(a, b),
            Elem::Int(_, signed) => {
                let cc = if signed { IntCC::SignedGreaterThan } else { IntCC::UnsignedGreaterThan };
                let c = k.b.ins().icmp(cc, a, b);
                k.b.ins().select(c, a, b)
            }
        }
    }
}

/// MaxPool's step on f32 (scalar or vector): NaN (all bits set) when either
/// operand is NaN, else `a < v ? v : a`, so equal values (zeros of either
/// sign among them) keep the earlier tap's. On x86-64 a vector step is one
/// `maxps`, one `cmpunordps` and one `orps`; Cranelift's `fmax`, which also
/// orders `-0 < +0`, is a sequence of about eight. Every MaxPool path
/// (generic and `Fast2d`, vector body and scalar columns) takes this step,
/// so they agree bit for bit.
fn max_f32(k: &mut Kernel, a: Value, v: Value) -> Value {
    let ty = k.b.func.dfg.value_type(a);
    if ty.is_vector() {
        let le = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
        let m = super::epilogue::sel_lt(k, ty, a, v, v, a);
        let nan = k.b.ins().fcmp(FloatCC::Unordered, a, v);
        let nan = k.b.ins().bitcast(ty, le, nan);
        return k.b.ins().bor(m, nan);
    }
    let lt = k.b.ins().fcmp(FloatCC::LessThan, a, v);
    let m = k.b.ins().select(lt, v, a);
    let nan = k.b.ins().fcmp(FloatCC::Unordered, a, v);
    let all = k.b.ins().f32const(f32::from_bits(u32::MAX));
    k.b.ins().select(nan, all, m)
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

/// Lowers `MaxPool` and `AveragePool` (the `Fast2d` path when it applies, see the module docs).
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
    if let Some(mut f) = Fast2d::new(&axes, elem, is_max, include_pad) {
        f.wide = f.wide_passes(k)?;
        f.byte_rows = f.byte_pass(k)?;
        let taps: usize = axes.iter().map(|a| a.kernel).product();
        let (lo, hi) = k.parallel_range(planes, 1, (out_plane * taps + in_plane) as u64)?;
        k.for_dyn(lo, hi, 1, |k, pl| {
            let xo = k.b.ins().imul_imm_s(pl, (in_plane * eb) as i64);
            let xb = k.b.ins().iadd(xp, xo);
            let oo = k.b.ins().imul_imm_s(pl, (out_plane * eb) as i64);
            let ob = k.b.ins().iadd(out, oo);
            f.plane(k, xb, ob);
        });
        return Ok(());
    }
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
                let cf = average_divisor(k, &axes, opos, &ranges, include_pad);
                k.b.ins().fdiv(acc, cf)
            };
            let pix = k.linear(opos, &out_strides);
            k.st_at(res, ob, pix, eb as i64, 0);
        });
    });
    Ok(())
}

/// AveragePool's divisor at output position `opos` (f32): the number of
/// taps inside the input (`ranges`, each axis's valid tap range), or with
/// `count_include_pad` inside the padded extent; at least 1.
fn average_divisor(
    k: &mut Kernel,
    axes: &[Axis],
    opos: &[Value],
    ranges: &[(Value, Value)],
    include_pad: bool,
) -> Value {
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
    k.b.ins().fcvt_from_sint(types::F32, cnt)
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

/// Lowers `GlobalAveragePool` / `GlobalMaxPool` (f32): one reduction per `(n, c)` plane.
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

/// Where the input rows of one output row come from: `Fixed` hoisted row
/// pointers (interior rows: every kernel row is valid), or `Dyn` (border
/// rows: valid taps `lo..hi`, `base` points at the row of tap 0, which may
/// lie outside the plane and is never dereferenced outside `lo..hi`).
enum Rows {
    Fixed(Vec<Value>),
    Dyn { lo: Value, hi: Value, base: Value, row_bytes: i64 },
}

/// Folds one input row (given its pointer) into the accumulators.
type RowFn<'a> = dyn FnMut(&mut Kernel, Value, &[Value]) -> Vec<Value> + 'a;

impl Rows {
    /// Folds `f(k, row_ptr, acc)` over the valid input rows in order.
    fn fold(&self, k: &mut Kernel, acc: &[Value], f: &mut RowFn<'_>) -> Vec<Value> {
        match self {
            Rows::Fixed(ps) => {
                let mut a = acc.to_vec();
                for &p in ps {
                    a = f(k, p, &a);
                }
                a
            }
            Rows::Dyn { lo, hi, base, row_bytes } => k.for_acc(*lo, *hi, 1, acc, |k, t, a| {
                let off = k.b.ins().imul_imm_s(t, *row_bytes);
                let p = k.b.ins().iadd(*base, off);
                f(k, p, a)
            }),
        }
    }
}

/// The 2-D fast path (dilation 1; f32, or a MaxPool of bytes): the output
/// columns are split at compile time into border columns (exact tap
/// ranges, unrolled) and an interior where every kernel column is valid,
/// so the interior needs no bounds checks; interior rows likewise get
/// hoisted row pointers and fully unrolled taps. With SIMD, interior
/// columns run one 128-bit vector of outputs at a time, 4 floats or 16
/// bytes (stride 1: unaligned loads; stride 2: two loads deinterleaved, by
/// a shuffle of floats, or for bytes as 16-bit lanes masked or shifted and
/// narrowed, which SSE2 has). Taps are folded in the same row-major order
/// and from the same initial value as the generic path, so results are
/// bit-identical to it (the f32 step propagates NaN like ONNX max).
struct Fast2d {
    h: Axis,
    w: Axis,
    elem: Elem,
    is_max: bool,
    include_pad: bool,
    /// With AVX2, MaxPool's interior rows run on the assembled row passes
    /// ([`max_pool_row`]) in groups of 16 outputs (AVX-512), then of 8:
    /// each pass that some group uses, widest first.
    wide: Vec<RowPass>,
    /// With AVX-512BW (and VBMI at stride 2), a byte MaxPool's interior rows run on one
    /// call of the assembled pass ([`byte_pool_rows`]) per plane, border
    /// columns included: its code and signature.
    byte_rows: Option<(Value, SigRef)>,
}

/// An assembled MaxPool row pass in an interior row: its code and
/// signature, outputs per group, and the groups it runs (the same in
/// every interior row).
#[derive(Clone, Copy)]
struct RowPass {
    code: Value,
    sig: SigRef,
    lanes: usize,
    groups: usize,
}

/// One past the last input a group of `lanes` outputs from output `o` reads
/// on the row axis `w` (stride 1 or 2): the 128-bit pass's groups of 4
/// floats or 16 bytes and the assembled pass's of 8 or 16 floats
/// (`ukernel::pool`) alike ([`kerf_ir::pool_group_reach`], which the
/// `int8-maxpool` rule's [`kerf_ir::byte_pool_rows_fit`] shares).
fn reach(w: &Axis, o: usize, lanes: usize) -> i64 {
    kerf_ir::pool_group_reach(w.kernel, w.stride, w.pb, o, lanes)
}

/// Output positions `o` whose whole window lies inside `0..size` on axis `a`.
fn interior(a: &Axis) -> (usize, usize) {
    let (lo, hi) = kerf_ir::pool_row_interior(a.size, a.kernel, a.stride, a.pb);
    let hi = hi.min(a.out);
    (lo.min(hi), hi)
}

/// Compile-time valid taps `lo..hi` of output `o` on axis `a` (dilation 1),
/// and the tap count that AveragePool divides by on this axis.
fn col_taps(a: &Axis, o: usize, include_pad: bool) -> (usize, usize, usize) {
    let start = (o * a.stride) as i64 - a.pb as i64;
    let lo = (-start).clamp(0, a.kernel as i64) as usize;
    let hi = (a.size as i64 - start).clamp(lo as i64, a.kernel as i64) as usize;
    let cnt = if include_pad { (a.size + a.pb + a.pe).saturating_sub(o * a.stride).min(a.kernel) } else { hi - lo };
    (lo, hi, cnt)
}

impl Fast2d {
    /// `None` when the fast path does not apply (the generic path is used).
    fn new(axes: &[Axis], elem: Elem, is_max: bool, include_pad: bool) -> Option<Fast2d> {
        let bytes = is_max && elem.bytes() == 1;
        if axes.len() != 2 || !(matches!(elem, Elem::F32) || bytes) || axes.iter().any(|a| a.dil != 1 || a.kernel > 16)
        {
            return None;
        }
        let (h, w) = (axes[0], axes[1]);
        let (c0, c1) = interior(&w);
        // border columns are unrolled: keep the code bounded
        if c0 + (w.out - c1) > 32 {
            return None;
        }
        Some(Fast2d { h, w, elem, is_max, include_pad, wide: Vec::new(), byte_rows: None })
    }

    fn combine(&self, k: &mut Kernel, a: Value, v: Value) -> Value {
        if self.is_max {
            self.elem.max(k, a, v)
        } else {
            k.b.ins().fadd(a, v)
        }
    }

    /// The fold's initial value, a scalar or (`vector`) a 128-bit vector.
    fn init(&self, k: &mut Kernel, vector: bool) -> Value {
        let ty = self.ty(vector);
        match self.elem {
            Elem::F32 => k.fsplat(ty, if self.is_max { f32::NEG_INFINITY } else { 0.0 }),
            Elem::Int(..) => {
                let low = self.elem.lowest(k);
                if vector {
                    k.b.ins().splat(ty, low)
                } else {
                    low
                }
            }
        }
    }

    /// The element type, or the 128-bit vector of it.
    fn ty(&self, vector: bool) -> Type {
        let t = self.elem.ty();
        if vector {
            t.by(self.lanes() as u32).unwrap_or(t)
        } else {
            t
        }
    }

    /// Outputs per 128-bit vector: 4 floats or 16 bytes.
    fn lanes(&self) -> usize {
        16 / self.elem.bytes()
    }

    /// Turns a sum into a mean: `rcnt` (runtime row count) × `ccnt` taps, at least 1.
    fn finish(&self, k: &mut Kernel, acc: Value, rcnt: Value, ccnt: usize) -> Value {
        if self.is_max {
            return acc;
        }
        let c = k.b.ins().imul_imm_s(rcnt, ccnt as i64);
        let one = k.ic(1);
        let c = imax(k, c, one);
        let cf = k.b.ins().fcvt_from_sint(types::F32, c);
        let ty = k.b.func.dfg.value_type(acc);
        let cf = if ty == types::F32 { cf } else { k.b.ins().splat(ty, cf) };
        k.b.ins().fdiv(acc, cf)
    }

    /// Emits one plane: `xb`/`ob` point at the input/output plane.
    fn plane(&self, k: &mut Kernel, xb: Value, ob: Value) {
        let (h, w) = (self.h, self.w);
        let row_bytes = (w.size * self.elem.bytes()) as i64;
        let (r0, r1) = interior(&h);
        // interior rows: the assembled byte pass, or hoisted row pointers,
        // kh taps, constant count
        if let Some((code, sig)) = self.byte_rows {
            let src = k.add_c(xb, (r0 * h.stride) as i64 * row_bytes - (h.pb as i64) * row_bytes);
            let dst = k.add_c(ob, (r0 * w.out) as i64 * self.elem.bytes() as i64);
            let rows = k.ic((r1 - r0) as i64);
            k.b.ins().call_indirect(sig, code, &[src, dst, rows]);
        } else {
            k.for_n(r0 as i64, r1 as i64, 1, |k, oh| {
                let top = k.b.ins().imul_imm_s(oh, (h.stride as i64) * row_bytes);
                let top = k.b.ins().iadd(xb, top);
                let ps: Vec<Value> =
                    (0..h.kernel).map(|t| k.add_c(top, (t as i64 - h.pb as i64) * row_bytes)).collect();
                let rcnt = k.ic(h.kernel as i64);
                self.row(k, &Rows::Fixed(ps), rcnt, ob, oh);
            });
        }
        // border rows: runtime tap range (as the generic path computes it)
        for (lo, hi) in [(0, r0), (r1, h.out)] {
            k.for_n(lo as i64, hi as i64, 1, |k, oh| {
                let (tlo, thi) = tap_range(k, oh, h.stride, h.pb, 1, h.size, h.kernel);
                let rcnt = if self.include_pad {
                    let (a, b) = tap_range(k, oh, h.stride, 0, 1, h.size + h.pb + h.pe, h.kernel);
                    k.b.ins().isub(b, a)
                } else {
                    k.b.ins().isub(thi, tlo)
                };
                // row of tap 0: oh*sh - pb
                let top = k.b.ins().imul_imm_s(oh, (h.stride as i64) * row_bytes);
                let top = k.b.ins().iadd(xb, top);
                let base = k.add_c(top, -(h.pb as i64) * row_bytes);
                self.row(k, &Rows::Dyn { lo: tlo, hi: thi, base, row_bytes }, rcnt, ob, oh);
            });
        }
    }

    /// The assembled MaxPool row passes where they apply (AVX2, stride 1
    /// or 2 along the row) and some interior row's group uses them: `zmm`
    /// groups of 16 with AVX-512, then `ymm` groups of 8 for what remains
    /// (SqueezeNet's 13-wide pool has no group of 16).
    fn wide_passes(&self, k: &mut Kernel) -> LResult<Vec<RowPass>> {
        let f32_max = self.is_max && matches!(self.elem, Elem::F32);
        if !(f32_max && k.caps.avx2 && (self.w.stride == 1 || self.w.stride == 2)) {
            return Ok(Vec::new());
        }
        let (mut c, c1) = interior(&self.w);
        let widths: &[usize] = if k.caps.avx512 { &[16, 8] } else { &[8] };
        let mut passes = Vec::new();
        for &lanes in widths {
            let n = self.groups(c, c1, lanes);
            if n == 0 {
                continue;
            }
            let (w, zmm) = (self.w, lanes == 16);
            let p = PoolRow { kh: self.h.kernel, kw: w.kernel, stride: w.stride, row_bytes: 4 * w.size, zmm };
            let code = max_pool_row(&p).map_err(|e| format!("internal: MaxPool row pass: {e}"))?;
            let family = if zmm { Family::Avx512 } else { Family::Avx2 };
            passes.push(RowPass { code: k.code(family, code), sig: k.ukernel_sig(3), lanes, groups: n });
            c += lanes * n;
        }
        Ok(passes)
    }

    /// The assembled byte pass ([`byte_pool_rows`]) where it applies: a
    /// MaxPool of u8 or i8, AVX-512BW (which `Caps::vnni` vouches for) and,
    /// at stride 2, VBMI (`vpermt2b`), some interior row, rows it takes
    /// (`None` from it where not).
    fn byte_pass(&self, k: &mut Kernel) -> LResult<Option<(Value, SigRef)>> {
        let (r0, r1) = interior(&self.h);
        let signed = match self.elem {
            Elem::Int(t, signed) if t == types::I8 && self.is_max => signed,
            _ => return Ok(None),
        };
        let (h, w) = (self.h, self.w);
        let p = BytePoolRows {
            kh: h.kernel,
            kw: w.kernel,
            stride: w.stride,
            pad: w.pb,
            in_w: w.size,
            out_w: w.out,
            row_step: h.stride * w.size,
            signed,
        };
        let isa = if w.stride == 1 { k.caps.vnni } else { k.caps.vbmi };
        if !isa || r0 >= r1 {
            return Ok(None);
        }
        let Some(code) = byte_pool_rows(&p).map_err(|e| format!("internal: byte MaxPool rows: {e}"))? else {
            return Ok(None);
        };
        let code = k.code(Family::Avx512, code);
        Ok(Some((code, k.ukernel_sig(3))))
    }

    /// Groups of `lanes` outputs from `c0` within `..c1` whose reads stay
    /// in the row ([`reach`]).
    fn groups(&self, c0: usize, c1: usize, lanes: usize) -> usize {
        let mut n = 0;
        while c0 + lanes * (n + 1) <= c1 && reach(&self.w, c0 + lanes * n, lanes) <= self.w.size as i64 {
            n += 1;
        }
        n
    }

    /// Output columns `c0..` of an interior row (every one starts at the
    /// same `c0`) on the assembled passes, widest groups first; returns
    /// the first column they leave.
    fn wide_cols(&self, k: &mut Kernel, rows: &Rows, orow: Value, c0: usize) -> usize {
        let Rows::Fixed(ps) = rows else { return c0 };
        let w = self.w;
        let mut c = c0;
        for p in &self.wide {
            let src = k.add_c(ps[0], 4 * ((c * w.stride) as i64 - w.pb as i64));
            let dst = k.add_c(orow, 4 * c as i64);
            let groups = k.ic(p.groups as i64);
            k.b.ins().call_indirect(p.sig, p.code, &[src, dst, groups]);
            c += p.lanes * p.groups;
        }
        c
    }

    /// Emits all output columns of output row `oh`.
    fn row(&self, k: &mut Kernel, rows: &Rows, rcnt: Value, ob: Value, oh: Value) {
        let w = self.w;
        let (eb, ty) = (self.elem.bytes() as i64, self.elem.ty());
        let oo = k.b.ins().imul_imm_s(oh, w.out as i64 * eb);
        let orow = k.b.ins().iadd(ob, oo);
        let (c0, c1) = interior(&w);
        // the assembled pass's interior c0..cw, then 128-bit vectors cw..cv
        let cw = self.wide_cols(k, rows, orow, c0);
        // vector interior cw..cv: groups of a vector's outputs whose loads stay in the row
        let mut cv = cw;
        let lanes = self.lanes();
        if k.caps.simd && (w.stride == 1 || w.stride == 2) {
            let n = self.groups(cw, c1, lanes);
            if n > 0 {
                self.vec_cols(k, rows, rcnt, orow, cw, n);
                cv = cw + lanes * n;
            }
        }
        // scalar interior cv..c1: runtime loop, unrolled kernel columns
        let kw = w.kernel;
        k.for_n(cv as i64, c1 as i64, 1, |k, oc| {
            let ic = k.b.ins().imul_imm_s(oc, w.stride as i64 * eb);
            let init = self.init(k, false);
            let acc = rows.fold(k, &[init], &mut |k, rp, a| {
                let p = k.b.ins().iadd(rp, ic);
                let mut a = a[0];
                for t in 0..kw {
                    let v = k.ld(ty, p, ((t as i64 - w.pb as i64) * eb) as i32);
                    a = self.combine(k, a, v);
                }
                vec![a]
            })[0];
            let r = self.finish(k, acc, rcnt, kw);
            k.st_at(r, orow, oc, eb, 0);
        });
        // border columns: exact compile-time tap ranges
        for oc in (0..c0).chain(c1..w.out) {
            let (lo, hi, cnt) = col_taps(&w, oc, self.include_pad);
            let start = (oc * w.stride) as i64 - w.pb as i64;
            let init = self.init(k, false);
            let acc = rows.fold(k, &[init], &mut |k, rp, a| {
                let mut a = a[0];
                for t in lo..hi {
                    let v = k.ld(ty, rp, ((start + t as i64) * eb) as i32);
                    a = self.combine(k, a, v);
                }
                vec![a]
            })[0];
            let r = self.finish(k, acc, rcnt, cnt);
            k.st(r, orow, (oc as i64 * eb) as i32);
        }
    }

    /// `n` groups of a vector's interior outputs (4 floats or 16 bytes)
    /// starting at output column `c0`.
    fn vec_cols(&self, k: &mut Kernel, rows: &Rows, rcnt: Value, orow: Value, c0: usize, n: usize) {
        let w = self.w;
        let kw = w.kernel;
        let (eb, lanes) = (self.elem.bytes() as i64, self.lanes() as i64);
        // the float shuffles' lane masks (bytes narrow 16-bit lanes instead)
        let masks = match self.elem {
            Elem::F32 if w.stride == 2 => Some((k.lane_mask(&[0, 2, 4, 6]), k.lane_mask(&[1, 3, 5, 7]))),
            _ => None,
        };
        k.for_n(0, n as i64, 1, |k, g| {
            // input element of tap 0 for the group's first output, relative to the row
            let ic = k.b.ins().imul_imm_s(g, lanes * w.stride as i64 * eb);
            let first = (c0 * w.stride) as i64 - w.pb as i64;
            let init = self.init(k, true);
            let acc = rows.fold(k, &[init], &mut |k, rp, a| {
                let p = k.b.ins().iadd(rp, ic);
                let mut a = a[0];
                if w.stride == 1 {
                    for t in 0..kw {
                        let v = k.ld(self.ty(true), p, ((first + t as i64) * eb) as i32);
                        a = self.combine(k, a, v);
                    }
                } else {
                    // taps 2j and 2j+1 are the even/odd elements of two vectors from first+2j
                    for j in 0..kw.div_ceil(2) {
                        let off = ((first + 2 * j as i64) * eb) as i32;
                        let lo = k.ld(types::I8X16, p, off);
                        let hi = k.ld(types::I8X16, p, off + 16);
                        let (even, odd) = self.deinterleave(k, (lo, hi), masks, 2 * j + 1 < kw);
                        a = self.combine(k, a, even);
                        if let Some(odd) = odd {
                            a = self.combine(k, a, odd);
                        }
                    }
                }
                vec![a]
            })[0];
            let r = self.finish(k, acc, rcnt, kw);
            let oc = k.b.ins().imul_imm_s(g, 16);
            let dst = k.b.ins().iadd(orow, oc);
            k.st(r, dst, (c0 as i64 * eb) as i32);
        });
    }

    /// The even elements of the 32 bytes `lo`, `hi` as one vector of the
    /// element type, and (`odd`) the odd ones. Floats by a shuffle with the
    /// `masks` (even, odd); bytes as 16-bit lanes, the even byte the low
    /// half (masked), the odd one the high half (shifted down), each
    /// narrowed with unsigned saturation, exact for values below 256
    /// (`packuswb` on SSE2).
    fn deinterleave(
        &self,
        k: &mut Kernel,
        (lo, hi): (Value, Value),
        masks: Option<(Immediate, Immediate)>,
        odd: bool,
    ) -> (Value, Option<Value>) {
        let le = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
        if let Some((even_mask, odd_mask)) = masks {
            let pick = |k: &mut Kernel, m: Immediate| {
                let s = k.b.ins().shuffle(lo, hi, m);
                k.b.ins().bitcast(types::F32X4, le, s)
            };
            let even = pick(k, even_mask);
            return (even, odd.then(|| pick(k, odd_mask)));
        }
        let (lo, hi) = (k.b.ins().bitcast(types::I16X8, le, lo), k.b.ins().bitcast(types::I16X8, le, hi));
        let ty = self.ty(true);
        let narrow = |k: &mut Kernel, a: Value, b: Value| {
            let v = k.b.ins().unarrow(a, b);
            k.b.ins().bitcast(ty, le, v)
        };
        let mask = k.b.ins().iconst(types::I16, 0xff);
        let mask = k.b.ins().splat(types::I16X8, mask);
        let (el, eh) = (k.b.ins().band(lo, mask), k.b.ins().band(hi, mask));
        let even = narrow(k, el, eh);
        let odd = odd.then(|| {
            let (ol, oh) = (k.b.ins().ushr_imm_u(lo, 8), k.b.ins().ushr_imm_u(hi, 8));
            narrow(k, ol, oh)
        });
        (even, odd)
    }
}
