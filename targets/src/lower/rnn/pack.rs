//! The recurrent ops' weights in the regrouped layout (module docs of
//! [`super`]): constant weights packed at compile time, run-time ones into
//! scratch at the start of each call; the per-direction biases.

use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use super::super::loops::{mem, ro};
use super::super::Kernel;

/// A weight input: its data when constant, else the run-time pointer.
pub(super) enum Src {
    Const(Vec<f32>),
    Rt(Value),
}

impl Src {
    pub(super) fn of(k: &mut Kernel, i: usize) -> Src {
        match k.const_f32(i) {
            Some(v) => Src::Const(v),
            None => Src::Rt(k.input(i)),
        }
    }
}

/// A packed operand: pointer and whether it is read-only constant data
/// (run-time packed scratch must not be marked read-only, or loads could
/// move above the stores that pack it).
#[derive(Clone, Copy)]
pub(super) struct Packed {
    pub(super) ptr: Value,
    pub(super) ro: bool,
}

impl Packed {
    pub(super) fn flags(self) -> MemFlagsData {
        if self.ro {
            ro()
        } else {
            mem()
        }
    }
}

/// Geometry shared by the packers and the recurrence.
#[derive(Clone, Copy)]
pub(super) struct Geo {
    /// hidden size
    pub(super) h: usize,
    /// lanes
    pub(super) l: usize,
    /// hidden blocks (`ceil(h / l)`)
    pub(super) nub: usize,
}

/// Packs rows of a weight tensor into the regrouped layout. Source element
/// of gate `gates[gi]`, unit `u`, column `kx`: `base + (g*h + u)*kk + kx`.
/// Destination (`ns = gates.len()`), zero for padded units:
/// - panel-major (`kmajor == false`, the GEMM's B panels):
///   `((ub*ns + gi)*kk + kx)*l + lane`
/// - k-major (the recurrence): `((ub*kk + kx)*ns + gi)*l + lane`.
///
/// With `kk == 1` both are `(ub*ns + gi)*l + lane`.
pub(super) fn pack(
    k: &mut Kernel,
    src: &Src,
    geo: Geo,
    base: usize,
    kk: usize,
    gates: &[usize],
    kmajor: bool,
) -> Packed {
    let Geo { h, l, nub } = geo;
    let ns = gates.len();
    let size = nub * ns * kk * l;
    let (s_ub, s_k, s_g) = if kmajor { (kk * ns * l, ns * l, l) } else { (ns * kk * l, l, kk * l) };
    match src {
        Src::Const(v) => {
            let mut out = vec![0f32; size];
            for ub in 0..nub {
                for (gi, &g) in gates.iter().enumerate() {
                    for kx in 0..kk {
                        for lane in 0..l {
                            let u = ub * l + lane;
                            if u < h {
                                out[ub * s_ub + kx * s_k + gi * s_g + lane] = v[base + (g * h + u) * kk + kx];
                            }
                        }
                    }
                }
            }
            Packed { ptr: k.blob_f32(&out), ro: true }
        }
        Src::Rt(p) => {
            let p = *p;
            let dst = k.scratch(size.max(1) * 4);
            let block = |k: &mut Kernel, ub: Value, width: usize| {
                for (gi, &g) in gates.iter().enumerate() {
                    k.for_n(0, kk as i64, 1, |k, kx| {
                        // source: base + (g*h + ub*l)*kk + kx, lanes kk apart
                        let so = k.b.ins().imul_imm_s(ub, (l * kk) as i64);
                        let so = k.b.ins().iadd(so, kx);
                        let so = k.b.ins().iadd_imm_s(so, (base + g * h * kk) as i64);
                        let sp = k.addr(p, so, 4);
                        let d_ub = k.b.ins().imul_imm_s(ub, s_ub as i64);
                        let d_k = k.b.ins().imul_imm_s(kx, s_k as i64);
                        let de = k.b.ins().iadd(d_ub, d_k);
                        let dp = k.addr(dst, de, 4);
                        for lane in 0..l {
                            let v = if lane < width { k.ld(types::F32, sp, (lane * kk * 4) as i32) } else { k.fc(0.0) };
                            k.st(v, dp, ((gi * s_g + lane) * 4) as i32);
                        }
                    });
                }
            };
            let full = h / l;
            k.for_n(0, full as i64, 1, |k, ub| block(k, ub, l));
            if h % l != 0 {
                let ub = k.ic(full as i64);
                block(k, ub, h % l);
            }
            Packed { ptr: dst, ro: false }
        }
    }
}

/// `a + b` elementwise over `n` run-time packed floats, into scratch.
fn add_packed(k: &mut Kernel, a: Packed, b: Packed, n: usize) -> Packed {
    let dst = k.scratch(n.max(1) * 4);
    k.for_n(0, n as i64, 1, |k, i| {
        let pa = k.addr(a.ptr, i, 4);
        let pb = k.addr(b.ptr, i, 4);
        let x = k.b.ins().load(types::F32, a.flags(), pa, 0);
        let y = k.b.ins().load(types::F32, b.flags(), pb, 0);
        let s = k.b.ins().fadd(x, y);
        k.st_at(s, dst, i, 4, 0);
    });
    Packed { ptr: dst, ro: false }
}

/// The per-direction bias added to `xw` (`Wb + Rb`, but only `Wb` for the
/// GRU h gate with `linear_before_reset`) and the recurrent h-gate bias
/// `Rb_h` of that case; both `[nub][G][l]`.
pub(super) fn biases(k: &mut Kernel, src: &Src, geo: Geo, d: usize, ng: usize, lbr: bool) -> (Packed, Packed) {
    let all: Vec<usize> = (0..ng).collect();
    let gh = ng * geo.h;
    let wb_base = d * 2 * gh;
    let rb_base = wb_base + gh;
    let n = geo.nub * ng * geo.l;
    match src {
        Src::Const(v) => {
            // fold Wb + Rb at compile time
            let mut xb = vec![0f32; v.len()];
            let mut rb = vec![0f32; v.len()];
            for g in 0..ng {
                for u in 0..geo.h {
                    let (w, r) = (v[wb_base + g * geo.h + u], v[rb_base + g * geo.h + u]);
                    let j = wb_base + g * geo.h + u;
                    if lbr && g == 2 {
                        xb[j] = w;
                        rb[j] = r;
                    } else {
                        xb[j] = w + r;
                    }
                }
            }
            let x = pack(k, &Src::Const(xb), geo, wb_base, 1, &all, false);
            let r = pack(k, &Src::Const(rb), geo, wb_base, 1, &all, false);
            (x, r)
        }
        Src::Rt(_) => {
            let wb = pack(k, src, geo, wb_base, 1, &all, false);
            let rb = pack(k, src, geo, rb_base, 1, &all, false);
            if !lbr {
                let x = add_packed(k, wb, rb, n);
                return (x, rb);
            }
            // Wb + Rb for z and r only; the h gate keeps Wb (Rb_h is
            // applied inside r * (R_h·h + Rb_h))
            let x = k.scratch(n.max(1) * 4);
            let (l, nub) = (geo.l, geo.nub);
            k.for_n(0, (nub * ng) as i64, 1, |k, s| {
                let g = k.b.ins().urem_imm_s(s, ng as i64);
                for lane in 0..l {
                    let e = k.b.ins().imul_imm_s(s, l as i64);
                    let e = k.b.ins().iadd_imm_s(e, lane as i64);
                    let w = k.ld_at(types::F32, wb.ptr, e, 4, 0);
                    let r = k.ld_at(types::F32, rb.ptr, e, 4, 0);
                    let z = k.fc(0.0);
                    let is_h = k.b.ins().icmp_imm_s(cranelift_codegen::ir::condcodes::IntCC::Equal, g, 2);
                    let r = k.b.ins().select(is_h, z, r);
                    let sum = k.b.ins().fadd(w, r);
                    k.st_at(sum, x, e, 4, 0);
                }
            });
            (Packed { ptr: x, ro: false }, rb)
        }
    }
}
