//! Data movement: copies, Transpose, Concat, Split, Slice, Gather, Expand,
//! Tile, Pad and Resize (nearest; linear and cubic are in `resize`).
//!
//! Most are one *strided copy*: a loop nest over the destination shape with
//! per-axis element strides (possibly negative or zero) into the source and
//! destination; contiguous innermost runs of 4-byte elements move as
//! 16-byte vectors. Dtype-agnostic: elements are moved as integers of their
//! size.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use kerf_ir::op::{CoordMode, NearestMode, PadMode, ResizeMode};
use kerf_ir::{DType, Op};

use super::{Kernel, LResult};
use crate::ukernel::avx512::PadPlanes;

fn int_ty(size: usize) -> Type {
    match size {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

fn strides_i(shape: &[usize]) -> Vec<i64> {
    kerf_ir::eval::strides(shape).iter().map(|&s| s as i64).collect()
}

/// Copies `shape` elements of `esize` bytes: element `idx` goes from
/// `src[soff + Σ idx·ss]` to `dst[doff + Σ idx·ds]`.
#[allow(clippy::too_many_arguments)]
pub fn strided_copy(
    k: &mut Kernel,
    esize: usize,
    shape: &[usize],
    src: Value,
    soff: i64,
    ss: &[i64],
    dst: Value,
    doff: i64,
    ds: &[i64],
) {
    if shape.contains(&0) {
        return;
    }
    // merge contiguous axes, drop size-1 axes
    let mut sh: Vec<usize> = Vec::new();
    let (mut s2, mut d2): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    for a in 0..shape.len() {
        if shape[a] == 1 {
            continue;
        }
        if let (Some(&ls), Some(&ld)) = (s2.last(), d2.last()) {
            if ls == ss[a] * shape[a] as i64 && ld == ds[a] * shape[a] as i64 {
                let last = sh.len() - 1;
                sh[last] *= shape[a];
                let (i, j) = (s2.len() - 1, d2.len() - 1);
                s2[i] = ss[a];
                d2[j] = ds[a];
                continue;
            }
        }
        sh.push(shape[a]);
        s2.push(ss[a]);
        d2.push(ds[a]);
    }
    if sh.is_empty() {
        sh.push(1);
        s2.push(1);
        d2.push(1);
    }
    // a short innermost axis (a pixel shuffle's 2) makes the loop nest's
    // overhead per element: run a long axis that one side walks with unit
    // stride innermost instead (the loop order moves nothing differently)
    let r = sh.len();
    if sh[r - 1] < 8 {
        if let Some(a) = (0..r - 1).rev().find(|&a| sh[a] >= 8 && (s2[a] == 1 || d2[a] == 1)) {
            sh.swap(a, r - 1);
            s2.swap(a, r - 1);
            d2.swap(a, r - 1);
        }
    }
    if let Some(b) = interleaved_pair(&sh, &s2, &d2, esize, k.caps.simd) {
        return interleave(k, esize, (&sh, &s2, &d2, b), (src, soff), (dst, doff));
    }
    let inner = sh[r - 1];
    let (si, di) = (s2[r - 1], d2[r - 1]);
    let ity = int_ty(esize);
    let e = esize as i64;
    k.nest(&sh[..r - 1], &mut |k, idx| {
        let so = lin_i(k, idx, &s2[..r - 1], soff);
        let dof = lin_i(k, idx, &d2[..r - 1], doff);
        let sb = k.addr(src, so, e);
        let db = k.addr(dst, dof, e);
        if si == 1 && di == 1 && k.caps.simd {
            copy_bytes(k, sb, db, inner * esize);
        } else {
            k.for_n(0, inner as i64, 1, |k, j| {
                let v = k.ld_at(ity, sb, j, si * e, 0);
                k.st_at(v, db, j, di * e, 0);
            });
        }
    });
}

/// The axis `b` of a copy that interleaves two source rows (a pixel
/// shuffle's or a 2x2 upsampling's last step): the innermost axis reads
/// contiguously and writes every second element, and `b`, of extent 2,
/// writes the elements between. Lanes of 1, 2 or 4 bytes, a vector of
/// them at least, on targets with SIMD.
fn interleaved_pair(sh: &[usize], ss: &[i64], ds: &[i64], esize: usize, simd: bool) -> Option<usize> {
    let r = sh.len();
    let fits = simd && r >= 2 && matches!(esize, 1 | 2 | 4) && sh[r - 1] * esize >= 16;
    if !fits || ss[r - 1] != 1 || ds[r - 1] != 2 {
        return None;
    }
    (0..r - 1).find(|&b| sh[b] == 2 && ds[b] == 1)
}

/// [`strided_copy`] of an interleaving copy ([`interleaved_pair`]): per
/// outer index, 16 bytes of each source row become 32 interleaved bytes
/// (two byte shuffles, `punpckl`/`punpckh` on x86; [`COPY_UNROLL`] per
/// loop trip), the tail as one more such step ending at the rows' last
/// element.
fn interleave(
    k: &mut Kernel,
    esize: usize,
    (sh, ss, ds, b): (&[usize], &[i64], &[i64], usize),
    (src, soff): (Value, i64),
    (dst, doff): (Value, i64),
) {
    let r = sh.len();
    let outer: Vec<usize> = (0..r - 1).filter(|&a| a != b).collect();
    let dims: Vec<usize> = outer.iter().map(|&a| sh[a]).collect();
    let (os, od): (Vec<i64>, Vec<i64>) = outer.iter().map(|&a| (ss[a], ds[a])).unzip();
    let (inner, e, lanes) = (sh[r - 1], esize as i64, 16 / esize);
    let vecs = inner / lanes;
    let lane = |i: usize| (0..esize).map(move |x| (i * esize + x) as u8);
    let lo: Vec<u8> = (0..lanes / 2).flat_map(|i| lane(i).chain(lane(lanes + i))).collect();
    let hi: Vec<u8> = (lanes / 2..lanes).flat_map(|i| lane(i).chain(lane(lanes + i))).collect();
    let mut mask = |m: &[u8]| k.b.func.dfg.immediates.push(cranelift_codegen::ir::ConstantData::from(m));
    let (lo, hi) = (mask(&lo), mask(&hi));
    k.nest(&dims, &mut |k, idx| {
        let so = lin_i(k, idx, &os, soff);
        let dof = lin_i(k, idx, &od, doff);
        let a = k.addr(src, so, e);
        let c = k.add_c(a, ss[b] * e);
        let d = k.addr(dst, dof, e);
        // 16 bytes of each row from `t·16 + at` into 32 bytes from `t·32 + 2·at`
        let zip = |k: &mut Kernel, t: Value, at: i32| {
            let va = k.ld_at(types::I8X16, a, t, 16, at);
            let vc = k.ld_at(types::I8X16, c, t, 16, at);
            let (zl, zh) = (k.b.ins().shuffle(va, vc, lo), k.b.ins().shuffle(va, vc, hi));
            k.st_at(zl, d, t, 32, 2 * at);
            k.st_at(zh, d, t, 32, 2 * at + 16);
        };
        k.for_unrolled(vecs, COPY_UNROLL, &mut |k, t, j| zip(k, t, (16 * j) as i32));
        if !inner.is_multiple_of(lanes) {
            // the tail as one more step ending at each row's last element:
            // the outputs it overlaps get the same values again (source and
            // destination are distinct buffers)
            let zero = k.ic(0);
            zip(k, zero, ((inner - lanes) * esize) as i32);
        }
    });
}

/// 16-byte steps a row copy makes per loop trip ([`Kernel::for_unrolled`];
/// rows of up to that many make no loop).
const COPY_UNROLL: usize = 8;

/// Copies `n` contiguous bytes: 16-byte vectors ([`COPY_UNROLL`] per
/// loop trip), then the rest in 8-, 4-, 2- and 1-byte moves (unrolled:
/// `n` is known).
fn copy_bytes(k: &mut Kernel, src: Value, dst: Value, n: usize) {
    k.for_unrolled(n / 16, COPY_UNROLL, &mut |k, t, j| {
        let v = k.ld_at(types::I8X16, src, t, 16, (16 * j) as i32);
        k.st_at(v, dst, t, 16, (16 * j) as i32);
    });
    let mut at = n / 16 * 16;
    for (w, t) in [(8, types::I64), (4, types::I32), (2, types::I16), (1, types::I8)] {
        if (n - at) & w != 0 {
            let v = k.ld(t, src, at as i32);
            k.st(v, dst, at as i32);
            at += w;
        }
    }
}

/// `off + Σ idx·strides` with signed strides.
fn lin_i(k: &mut Kernel, idx: &[Value], strides: &[i64], off: i64) -> Value {
    let mut acc = k.ic(off);
    for (&i, &s) in idx.iter().zip(strides) {
        if s != 0 {
            let t = k.b.ins().imul_imm_s(i, s);
            acc = k.b.ins().iadd(acc, t);
        }
    }
    acc
}

/// Identity-like nodes that could not alias: a plain copy.
pub fn copy(k: &mut Kernel) -> LResult {
    let n = k.g.ty(k.node.inputs[0]).numel();
    let es = k.in_dtype(0).size();
    let src = k.input(0);
    let dst = k.output(0);
    strided_copy(k, es, &[n], src, 0, &[1], dst, 0, &[1]);
    Ok(())
}

/// The bits of the pad value `v` as an element of `d` (zero-extended from
/// the element's size): the float's bits, the integer's two's complement,
/// f16/bf16/f64 as the reference evaluator encodes them.
fn value_bits(d: DType, v: f32) -> LResult<u64> {
    let bits = match d {
        DType::F32 => u64::from(v.to_bits()),
        d if d.is_int() || d == DType::Bool => v as i64 as u64,
        DType::F16 | DType::BF16 | DType::F64 => {
            let t = kerf_ir::Tensor::from_f64_values(d, vec![], &[f64::from(v)]).map_err(|e| e.to_string())?;
            match *t.bytes() {
                [x, y] => u64::from(u16::from_le_bytes([x, y])),
                [b0, b1, b2, b3, b4, b5, b6, b7] => u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
                _ => return Err(format!("padding {d} is not supported")),
            }
        }
        _ => return Err(format!("padding {d} is not supported")),
    };
    let width = 8 * d.size() as u32;
    Ok(if width >= 64 { bits } else { bits & ((1u64 << width) - 1) })
}

/// `n` elements of `d` holding `v` from `dst`.
fn fill(k: &mut Kernel, dst: Value, n: usize, d: DType, v: f32) -> LResult {
    let val = k.b.ins().iconst(int_ty(d.size()), value_bits(d, v)? as i64);
    let es = d.size() as i64;
    // whole 16-byte vectors of the value, then single elements
    let per = 16 / es as usize;
    let vty = k.b.func.dfg.value_type(val).by(per as u32).filter(|_| k.caps.simd && per > 1);
    let done = match vty {
        Some(vty) => {
            let v = k.b.ins().splat(vty, val);
            k.for_n(0, (n / per) as i64, 1, |k, i| k.st_at(v, dst, i, 16, 0));
            n / per * per
        }
        None => 0,
    };
    k.for_n(done as i64, n as i64, 1, |k, i| k.st_at(val, dst, i, es, 0));
    Ok(())
}

/// Lowers Transpose, Concat, Split, Slice, Gather, Expand, Tile, Pad and
/// Resize (linear and cubic modes go to [`super::resize`]).
pub fn lower(k: &mut Kernel) -> LResult {
    let d = k.in_dtype(0);
    if matches!(d, DType::F16 | DType::BF16) && !matches!(k.node.op, Op::Transpose { .. }) {
        // moved as 2-byte integers: fine for pure movement
    }
    let es = d.size();
    let xs = k.in_shape(0).to_vec();
    let xst = strides_i(&xs);
    match k.node.op.clone() {
        Op::Transpose { perm } => {
            let os = k.out_shape(0).to_vec();
            let ss: Vec<i64> = perm.iter().map(|&p| xst[p]).collect();
            let (src, dst) = (k.input(0), k.output(0));
            strided_copy(k, es, &os, src, 0, &ss, dst, 0, &strides_i(&os));
        }
        Op::Concat { axis } => {
            let os = k.out_shape(0).to_vec();
            let ost = strides_i(&os);
            let dst = k.output(0);
            let mut at = 0;
            for i in 0..k.node.inputs.len() {
                let s = k.in_shape(i).to_vec();
                let src = k.input(i);
                strided_copy(k, es, &s, src, 0, &strides_i(&s), dst, at * ost[axis], &ost);
                at += s[axis] as i64;
            }
        }
        Op::Split { axis, .. } => {
            let src = k.input(0);
            let mut at = 0;
            for i in 0..k.node.outputs.len() {
                let s = k.out_shape(i).to_vec();
                let dst = k.output(i);
                strided_copy(k, es, &s, src, at * xst[axis], &xst, dst, 0, &strides_i(&s));
                at += s[axis] as i64;
            }
        }
        Op::Slice { starts, steps, .. } => {
            let os = k.out_shape(0).to_vec();
            let off: i64 = starts.iter().zip(&xst).map(|(s, t)| s * t).sum();
            let ss: Vec<i64> = steps.iter().zip(&xst).map(|(s, t)| s * t).collect();
            let (src, dst) = (k.input(0), k.output(0));
            strided_copy(k, es, &os, src, off, &ss, dst, 0, &strides_i(&os));
        }
        Op::Expand { shape } => {
            let ss: Vec<i64> = super::elementwise::bcast_strides(&xs, &shape).iter().map(|&s| s as i64).collect();
            let (src, dst) = (k.input(0), k.output(0));
            strided_copy(k, es, &shape, src, 0, &ss, dst, 0, &strides_i(&shape));
        }
        Op::Tile { repeats } => {
            let os = k.out_shape(0).to_vec();
            let ost = strides_i(&os);
            let (mut sh, mut ss, mut ds) = (Vec::new(), Vec::new(), Vec::new());
            for a in 0..xs.len() {
                sh.extend([repeats[a], xs[a]]);
                ss.extend([0, xst[a]]);
                ds.extend([xs[a] as i64 * ost[a], ost[a]]);
            }
            let (src, dst) = (k.input(0), k.output(0));
            strided_copy(k, es, &sh, src, 0, &ss, dst, 0, &ds);
        }
        Op::Pad { pads, mode, value } => pad(k, &xs, &pads, mode, value.get())?,
        Op::Gather { axis } => gather(k, axis)?,
        Op::Resize(r) => resize(k, &r)?,
        _ => return Err("not a movement op".into()),
    }
    Ok(())
}

fn pad(k: &mut Kernel, xs: &[usize], pads: &[usize], mode: PadMode, value: f32) -> LResult {
    let d = k.in_dtype(0);
    let es = d.size();
    let os = k.out_shape(0).to_vec();
    let ost = strides_i(&os);
    let xst = strides_i(xs);
    let r = xs.len();
    let (src, dst) = (k.input(0), k.output(0));
    if mode == PadMode::Constant {
        if let Some(code) = plane_pad(k, xs, pads, d, value)? {
            return pad_planes(k, xs, code);
        }
        fill(k, dst, os.iter().product(), d, value)?;
        let off: i64 = (0..r).map(|a| pads[a] as i64 * ost[a]).sum();
        strided_copy(k, es, xs, src, 0, &xst, dst, off, &ost);
        return Ok(());
    }
    // Edge / reflect / wrap: per output element, map each axis index.
    let ity = int_ty(es);
    k.nest(&os, &mut |k, idx| {
        let mut soff = k.ic(0);
        for a in 0..r {
            let n = xs[a] as i64;
            let i = k.b.ins().iadd_imm_s(idx[a], -(pads[a] as i64));
            let zero = k.ic(0);
            let last = k.ic(n - 1);
            let m = match mode {
                PadMode::Edge => {
                    let t = super::loops::imax(k, i, zero);
                    super::loops::imin(k, t, last)
                }
                PadMode::Reflect => {
                    // |i|, then mirror at n-1
                    let ni = k.b.ins().ineg(i);
                    let t = super::loops::imax(k, i, ni);
                    let two = k.ic(2 * (n - 1));
                    let mirrored = k.b.ins().isub(two, t);
                    let c = k.b.ins().icmp(IntCC::SignedGreaterThan, t, last);
                    k.b.ins().select(c, mirrored, t)
                }
                _ => {
                    let nn = k.ic(n);
                    let t = k.b.ins().srem(i, nn);
                    let t2 = k.b.ins().iadd(t, nn);
                    let neg = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, t, 0);
                    k.b.ins().select(neg, t2, t)
                }
            };
            let t = k.b.ins().imul_imm_s(m, xst[a]);
            soff = k.b.ins().iadd(soff, t);
        }
        let v = k.ld_at(ity, src, soff, es as i64, 0);
        let o = k.linear(idx, &kerf_ir::eval::strides(&os));
        k.st_at(v, dst, o, es as i64, 0);
    });
    let _ = ost;
    Ok(())
}

/// The machine code of the assembled plane pad
/// ([`crate::ukernel::avx512::pad_planes`]) of a constant Pad where it
/// applies: AVX-512BW (every VNNI target has it), pads on the last two
/// axes only, rows it takes ([`PadPlanes::fits`]).
fn plane_pad(k: &Kernel, xs: &[usize], pads: &[usize], d: DType, value: f32) -> LResult<Option<Vec<u8>>> {
    let r = xs.len();
    if !k.caps.vnni || r < 2 || xs.contains(&0) || (0..r - 2).any(|a| pads[a] != 0 || pads[r + a] != 0) {
        return Ok(None);
    }
    let es = d.size();
    let p = PadPlanes {
        h: xs[r - 2],
        w: xs[r - 1] * es,
        top: pads[r - 2],
        bottom: pads[2 * r - 2],
        left: pads[r - 1] * es,
        right: pads[2 * r - 1] * es,
        value: value_bits(d, value)?,
        elem: es,
    };
    crate::ukernel::avx512::pad_planes(&p).map_err(|e| format!("internal: plane pad: {e}"))
}

/// A constant Pad of the last two axes by [`plane_pad`]'s `code`: one
/// call over every plane.
fn pad_planes(k: &mut Kernel, xs: &[usize], code: Vec<u8>) -> LResult {
    let (src, dst) = (k.input(0), k.output(0));
    let code = k.code(super::Family::Avx512, code);
    let sig = k.ukernel_sig(3);
    let planes = k.ic(xs[..xs.len() - 2].iter().product::<usize>() as i64);
    k.b.ins().call_indirect(sig, code, &[src, dst, planes]);
    Ok(())
}

fn gather(k: &mut Kernel, axis: usize) -> LResult {
    let xs = k.in_shape(0).to_vec();
    let es = k.in_dtype(0).size();
    let id = k.in_dtype(1);
    let nidx: usize = k.in_shape(1).iter().product();
    let outer: usize = xs[..axis].iter().product();
    let inner: usize = xs[axis + 1..].iter().product();
    let dim = xs[axis] as i64;
    let (src, idxp, dst) = (k.input(0), k.input(1), k.output(0));
    let fault = k.fault();
    let ity = if id == DType::I32 { types::I32 } else { types::I64 };
    k.nest(&[outer, nidx], &mut |k, ij| {
        let raw = k.ld_at(ity, idxp, ij[1], id.size() as i64, 0);
        let i = if ity == types::I32 { k.b.ins().sextend(types::I64, raw) } else { raw };
        let neg = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, 0);
        let wrapped = k.b.ins().iadd_imm_s(i, dim);
        let i = k.b.ins().select(neg, wrapped, i);
        // outside [-dim, dim): the run ends with INDEX_OUT_OF_RANGE
        let below = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, 0);
        let above = k.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, i, dim);
        let bad = k.b.ins().bor(below, above);
        let (set, join) = (k.b.create_block(), k.b.create_block());
        k.b.ins().brif(bad, set, &[], join, &[]);
        k.b.switch_to_block(set);
        k.b.seal_block(set);
        let code = k.b.ins().iconst(types::I32, i64::from(kerf_runtime::status::INDEX_OUT_OF_RANGE));
        k.b.ins().store(super::loops::mem(), code, fault, 0);
        k.b.ins().jump(join, &[]);
        k.b.switch_to_block(join);
        k.b.seal_block(join);
        // clamped as well, so that no load leaves the tensor before the
        // entry sees the fault
        let zero = k.ic(0);
        let hi = k.ic(dim - 1);
        let i = super::loops::imax(k, i, zero);
        let i = super::loops::imin(k, i, hi);
        let so = k.b.ins().imul_imm_s(ij[0], dim);
        let so = k.b.ins().iadd(so, i);
        let so = k.b.ins().imul_imm_s(so, inner as i64);
        let dof = k.linear(ij, &[nidx * inner, inner]);
        let sb = k.addr(src, so, es as i64);
        let db = k.addr(dst, dof, es as i64);
        let zero = k.ic(0);
        strided_copy_ptr(k, es, inner, sb, db, zero);
    });
    Ok(())
}

/// Contiguous copy of `n` elements between two run-time pointers.
fn strided_copy_ptr(k: &mut Kernel, es: usize, n: usize, src: Value, dst: Value, _z: Value) {
    strided_copy(k, es, &[n], src, 0, &[1], dst, 0, &[1]);
}

/// Source index of output coordinate `o` on one axis (nearest mode).
fn nearest_src(o: usize, in_len: usize, out_len: usize, scale: f32, coord: CoordMode, nm: NearestMode) -> usize {
    let (o, il, ol, s) = (o as f64, in_len as f64, out_len as f64, scale as f64);
    let x = match coord {
        CoordMode::HalfPixel => (o + 0.5) / s - 0.5,
        CoordMode::PytorchHalfPixel => {
            if ol > 1.0 {
                (o + 0.5) / s - 0.5
            } else {
                0.0
            }
        }
        CoordMode::AlignCorners => {
            if ol > 1.0 {
                o * (il - 1.0) / (ol - 1.0)
            } else {
                0.0
            }
        }
        CoordMode::Asymmetric => o / s,
        CoordMode::HalfPixelSymmetric => {
            let adj = ol / (s * il);
            let c = il / 2.0 * (1.0 - adj);
            (o + 0.5) / s - 0.5 + c
        }
        CoordMode::TfCropAndResize => o / s,
    };
    let r = match nm {
        NearestMode::RoundPreferFloor => {
            if x.fract() == 0.5 {
                x.floor()
            } else {
                x.round()
            }
        }
        NearestMode::RoundPreferCeil => x.round(),
        NearestMode::Floor => x.floor(),
        NearestMode::Ceil => x.ceil(),
    };
    r.clamp(0.0, il - 1.0) as usize
}

/// `s` when source column `o` is `o / s` for every output column (each
/// input element repeated `s` times, `s` = 1, 2 or a multiple of 4: the
/// widths [`resize_rows`] writes in whole vectors).
fn repeat_factor(cols: &[usize], w: usize) -> Option<usize> {
    let s = cols.len() / w.max(1);
    let fits = s == 1 || s == 2 || (s > 0 && s.is_multiple_of(4));
    (fits && cols.len() == s * w && cols.iter().enumerate().all(|(o, &c)| c == o / s)).then_some(s)
}

/// A nearest Resize of 4-byte elements whose last axis repeats each input
/// element `rep` times ([`repeat_factor`]).
struct Rows<'a> {
    /// The per-axis source offset tables (elements, i64 LE) of `resize`.
    table: &'a [u8],
    /// Where each axis's table starts (in entries).
    starts: &'a [usize],
    /// Output extents of the axes before the last.
    os: &'a [usize],
    /// Input row length.
    w: usize,
    rep: usize,
}

/// Row by row (threads split the output rows): the source row from the
/// outer axes' tables, then each input vector widened in registers — its
/// lanes paired (`rep` = 2) or each lane broadcast to `rep / 4` vectors —
/// and stored as whole output vectors; the row's last `w % 4` elements one
/// by one. The same elements as the per-element gather (a copy), 2–4 table
/// loads fewer per output element.
fn resize_rows(k: &mut Kernel, rw: &Rows<'_>, src: Value, dst: Value) -> LResult {
    let (w, rep) = (rw.w, rw.rep);
    let ow = w * rep;
    let nrows: usize = rw.os.iter().product();
    let tp = k.blob(rw.table.to_vec());
    let (lo, hi) = k.parallel_range(nrows, 1, (ow + w) as u64)?;
    let masks: Vec<_> = if rep == 2 {
        vec![k.lane_mask(&[0, 0, 1, 1]), k.lane_mask(&[2, 2, 3, 3])]
    } else {
        (0..4u8).map(|i| k.lane_mask(&[i, i, i, i])).collect()
    };
    let (os, starts) = (rw.os.to_vec(), rw.starts.to_vec());
    k.for_dyn(lo, hi, 1, |k, row| {
        // the source row: Σ over the outer axes of table[axis][index]
        let mut rest = row;
        let mut so = k.ic(0);
        for a in (0..os.len()).rev() {
            let i = k.b.ins().urem_imm_s(rest, os[a] as i64);
            rest = k.b.ins().udiv_imm_s(rest, os[a] as i64);
            let t = k.b.ins().iadd_imm_s(i, starts[a] as i64);
            let v = k.ld_at(types::I64, tp, t, 8, 0);
            so = k.b.ins().iadd(so, v);
        }
        let srow = k.addr(src, so, 4);
        let drow = k.b.ins().imul_imm_s(row, (ow * 4) as i64);
        let drow = k.b.ins().iadd(dst, drow);
        k.for_n(0, (w / 4) as i64, 1, |k, v| {
            let x = k.ld_at(types::I8X16, srow, v, 16, 0);
            let d = k.b.ins().imul_imm_s(v, (16 * rep) as i64);
            let d = k.b.ins().iadd(drow, d);
            match rep {
                1 => k.st(x, d, 0),
                2 => {
                    for (j, &m) in masks.iter().enumerate() {
                        let y = k.b.ins().shuffle(x, x, m);
                        k.st(y, d, (16 * j) as i32);
                    }
                }
                _ => {
                    for (i, &m) in masks.iter().enumerate() {
                        let y = k.b.ins().shuffle(x, x, m);
                        for j in 0..rep / 4 {
                            k.st(y, d, (4 * (i * rep + 4 * j)) as i32);
                        }
                    }
                }
            }
        });
        for e in w / 4 * 4..w {
            let x = k.ld(types::I32, srow, (e * 4) as i32);
            for j in 0..rep {
                k.st(x, drow, ((e * rep + j) * 4) as i32);
            }
        }
    });
    Ok(())
}

fn resize(k: &mut Kernel, r: &kerf_ir::op::Resize) -> LResult {
    let ResizeMode::Nearest(nm) = r.mode else {
        return super::resize::interp(k, r);
    };
    if r.coord == CoordMode::TfCropAndResize {
        return Err("tf_crop_and_resize is not supported".into());
    }
    let xs = k.in_shape(0).to_vec();
    let os = r.sizes.clone();
    let es = k.in_dtype(0).size();
    let xst = kerf_ir::eval::strides(&xs);
    // Per-axis tables of source offsets (elements), concatenated.
    let mut table: Vec<u8> = Vec::new();
    let mut starts = Vec::new();
    for a in 0..xs.len() {
        starts.push(table.len() / 8);
        for o in 0..os[a] {
            let s = nearest_src(o, xs[a], os[a], r.scales[a].get(), r.coord, nm);
            table.extend(((s * xst[a]) as i64).to_le_bytes());
        }
    }
    let (src, dst) = (k.input(0), k.output(0));
    let last = xs.len() - 1;
    let cols: Vec<usize> =
        (0..os[last]).map(|o| nearest_src(o, xs[last], os[last], r.scales[last].get(), r.coord, nm)).collect();
    if let Some(rep) = repeat_factor(&cols, xs[last]).filter(|_| es == 4 && k.caps.simd && xs[last] >= 4) {
        let rows = Rows { table: &table, starts: &starts, os: &os[..last], w: xs[last], rep };
        return resize_rows(k, &rows, src, dst);
    }
    let tp = k.blob(table);
    let ity = int_ty(es);
    let ost = kerf_ir::eval::strides(&os);
    k.nest(&os, &mut |k, idx| {
        let mut so = k.ic(0);
        for a in 0..idx.len() {
            let t = k.b.ins().iadd_imm_s(idx[a], starts[a] as i64);
            let v = k.ld_at(types::I64, tp, t, 8, 0);
            so = k.b.ins().iadd(so, v);
        }
        let v = k.ld_at(ity, src, so, es as i64, 0);
        let o = k.linear(idx, &ost);
        k.st_at(v, dst, o, es as i64, 0);
    });
    Ok(())
}
