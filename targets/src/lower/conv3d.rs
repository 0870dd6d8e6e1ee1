//! Conv and ConvTranspose with three or more spatial axes (f32; groups,
//! strides, dilations, pads, output padding; constant or run-time weights
//! and bias). The 1-D/2-D kernels in `conv` are the tuned ones; these are
//! direct loop nests, one per spatial axis, with no SIMD, so they are the
//! same code on every ISA (including rv64gc without vectors).
//!
//! Conv accumulates each output element over the valid tap range per axis
//! (computed as the 2-D kernels do, so padding never reads memory).
//! ConvTranspose scatters: the output starts as the bias and every input
//! element adds `x * w` at `i*s - p + t*d` for taps landing inside it.
//! Cost: `N * OC * out_positions * ICg * taps` multiply-adds for both.

use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::Op;

use super::conv_geo::tap_range;
use super::{Kernel, LResult};

/// Row-major element strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect()
}

/// The checked sizes both kernels start from (N-D, NC... layout).
struct NdShape {
    n: usize,
    ci: usize,
    co: usize,
    /// Input / output channels per group.
    icg: usize,
    ocg: usize,
    /// Spatial extents of the input and the output.
    xsp: Vec<usize>,
    osp: Vec<usize>,
    in_plane: usize,
    out_plane: usize,
    /// Kernel positions per channel pair.
    taps: usize,
}

fn nd_shape(k: &Kernel, what: &str, w: &kerf_ir::op::Window, g: usize) -> LResult<NdShape> {
    let r = w.rank();
    let x = k.in_shape(0);
    let o = k.out_shape(0);
    let ws = k.in_shape(1);
    if x.len() != r + 2 || o.len() != r + 2 || ws.len() != r + 2 {
        return Err(format!("{r}-D {what} on input {x:?}, weight {ws:?}, output {o:?}"));
    }
    let (n, ci, co) = (x[0], x[1], o[1]);
    if g == 0 || !ci.is_multiple_of(g) || !co.is_multiple_of(g) {
        return Err(format!("group {g} does not divide channels {ci} -> {co}"));
    }
    let (xsp, osp) = (x[2..].to_vec(), o[2..].to_vec());
    Ok(NdShape {
        n,
        ci,
        co,
        icg: ci / g,
        ocg: co / g,
        in_plane: xsp.iter().product(),
        out_plane: osp.iter().product(),
        taps: w.kernel.iter().product(),
        xsp,
        osp,
    })
}

/// Lowers a `Conv` with three or more spatial axes (direct loop nest, see the module docs).
pub fn conv(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let Op::Conv(c) = k.node.op.clone() else { return Err("not a Conv".into()) };
    let w = c.window.clone();
    let NdShape { n, ci, co: oc, icg, ocg, xsp, osp, in_plane, out_plane, taps } = nd_shape(k, "Conv", &w, c.group)?;
    let r = w.rank();
    let xst = strides(&xsp);
    let ost = strides(&osp);
    let wst = strides(&w.kernel);
    let xp = k.input(0);
    let wp = k.input(1);
    let bp = if k.node.inputs.len() == 3 { Some(k.input(2)) } else { None };
    let out = k.output(0);
    k.nest(&[n, oc], &mut |k, no| {
        let (nn, oo) = (no[0], no[1]);
        let gg = k.b.ins().udiv_imm_s(oo, ocg as i64);
        // first input channel of the group, as a plane offset into X[n]
        let c0 = k.b.ins().imul_imm_s(gg, icg as i64);
        let xrow = k.b.ins().imul_imm_s(nn, ci as i64);
        let xrow = k.b.ins().iadd(xrow, c0);
        let xbase = k.b.ins().imul_imm_s(xrow, (in_plane * 4) as i64);
        let xb = k.b.ins().iadd(xp, xbase);
        let wbase = k.b.ins().imul_imm_s(oo, (icg * taps * 4) as i64);
        let wb = k.b.ins().iadd(wp, wbase);
        let orow = k.b.ins().imul_imm_s(nn, oc as i64);
        let orow = k.b.ins().iadd(orow, oo);
        let obase = k.b.ins().imul_imm_s(orow, (out_plane * 4) as i64);
        let ob = k.b.ins().iadd(out, obase);
        let bias = match bp {
            Some(b) => k.ld_at(types::F32, b, oo, 4, 0),
            None => k.fc(0.0),
        };
        k.nest(&osp, &mut |k, pos| {
            let mut ranges = Vec::with_capacity(r);
            let mut origin = Vec::with_capacity(r);
            for (a, &p) in pos.iter().enumerate() {
                ranges.push(tap_range(k, p, w.strides[a], w.pad_begin(a), w.dilations[a], xsp[a], w.kernel[a]));
                let i0 = k.b.ins().imul_imm_s(p, w.strides[a] as i64);
                origin.push(k.b.ins().iadd_imm_s(i0, -(w.pad_begin(a) as i64)));
            }
            let acc = k.for_acc_n(0, icg as i64, 1, &[bias], |k, ic, a| {
                let xo = k.b.ins().imul_imm_s(ic, in_plane as i64);
                let wo = k.b.ins().imul_imm_s(ic, taps as i64);
                let geo = Geo { ranges: &ranges, origin: &origin, dil: &w.dilations, xst: &xst, wst: &wst };
                vec![conv_taps(k, &geo, 0, xo, wo, a[0], xb, wb)]
            })[0];
            let e = k.linear(pos, &ost);
            k.st_at(acc, ob, e, 4, 0);
        });
    });
    Ok(())
}

/// Per-output-position tap geometry of [`conv_taps`].
struct Geo<'a> {
    ranges: &'a [(Value, Value)],
    origin: &'a [Value],
    dil: &'a [usize],
    xst: &'a [usize],
    wst: &'a [usize],
}

/// Accumulates `x[xo + ...] * w[wo + ...]` over the valid taps of axes `d..`.
#[allow(clippy::too_many_arguments)]
fn conv_taps(k: &mut Kernel, g: &Geo, d: usize, xo: Value, wo: Value, acc: Value, xb: Value, wb: Value) -> Value {
    if d == g.ranges.len() {
        let xv = k.ld_at(types::F32, xb, xo, 4, 0);
        let wv = k.ld_at(types::F32, wb, wo, 4, 0);
        return k.fmadd(xv, wv, acc);
    }
    let (lo, hi) = g.ranges[d];
    let (dil, xs, ws, o) = (g.dil[d], g.xst[d], g.wst[d], g.origin[d]);
    k.for_acc(lo, hi, 1, &[acc], |k, t, a| {
        let i = k.b.ins().imul_imm_s(t, dil as i64);
        let i = k.b.ins().iadd(i, o);
        let xi = k.b.ins().imul_imm_s(i, xs as i64);
        let xo2 = k.b.ins().iadd(xo, xi);
        let wi = k.b.ins().imul_imm_s(t, ws as i64);
        let wo2 = k.b.ins().iadd(wo, wi);
        vec![conv_taps(k, g, d + 1, xo2, wo2, a[0], xb, wb)]
    })[0]
}

/// Lowers a `ConvTranspose` with three or more spatial axes (bias init, then scatter).
pub fn conv_transpose(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let Op::ConvTranspose(c) = k.node.op.clone() else { return Err("not a ConvTranspose".into()) };
    let w = c.window.clone();
    let NdShape { n, ci, co, icg, ocg, xsp, osp, in_plane, out_plane, taps } =
        nd_shape(k, "ConvTranspose", &w, c.group)?;
    let r = w.rank();
    let ost = strides(&osp);
    let xp = k.input(0);
    // W is [ci][ocg][taps...]
    let wp = k.input(1);
    let bp = if k.node.inputs.len() == 3 { Some(k.input(2)) } else { None };
    let out = k.output(0);
    // Output starts as the bias.
    k.for_n(0, (n * co) as i64, 1, |k, nc| {
        let bv = match bp {
            Some(b) => {
                let c_ = k.b.ins().urem_imm_s(nc, co as i64);
                k.ld_at(types::F32, b, c_, 4, 0)
            }
            None => k.fc(0.0),
        };
        let base = k.b.ins().imul_imm_s(nc, out_plane as i64);
        k.for_n(0, out_plane as i64, 1, |k, p| {
            let e = k.b.ins().iadd(base, p);
            k.st_at(bv, out, e, 4, 0);
        });
    });
    let mut outer = vec![n, ci];
    outer.extend(&xsp);
    let mut inner = vec![ocg];
    inner.extend(&w.kernel);
    k.nest(&outer, &mut |k, idx| {
        let (nn, cc) = (idx[0], idx[1]);
        let ipos = &idx[2..];
        let xe = k.b.ins().imul_imm_s(nn, ci as i64);
        let xe = k.b.ins().iadd(xe, cc);
        let xe = k.b.ins().imul_imm_s(xe, in_plane as i64);
        let ip = k.linear(ipos, &strides(&xsp));
        let xe = k.b.ins().iadd(xe, ip);
        let xv = k.ld_at(types::F32, xp, xe, 4, 0);
        let gg = k.b.ins().udiv_imm_s(cc, icg as i64);
        let oc0 = k.b.ins().imul_imm_s(gg, ocg as i64);
        // output channel row base: n * co + g * ocg
        let orow = k.b.ins().imul_imm_s(nn, co as i64);
        let orow = k.b.ins().iadd(orow, oc0);
        let wrow = k.b.ins().imul_imm_s(cc, (ocg * taps) as i64);
        let ipos = ipos.to_vec();
        k.nest(&inner, &mut |k, j| {
            let (oj, t) = (j[0], &j[1..]);
            // output position per axis and whether all are inside
            let mut ok: Option<Value> = None;
            let mut opos = Vec::with_capacity(r);
            for a in 0..r {
                let v = k.b.ins().imul_imm_s(ipos[a], w.strides[a] as i64);
                let td = k.b.ins().imul_imm_s(t[a], w.dilations[a] as i64);
                let v = k.b.ins().iadd(v, td);
                let v = k.b.ins().iadd_imm_s(v, -(w.pad_begin(a) as i64));
                let inside = k.in_range(v, osp[a] as i64);
                ok = Some(match ok {
                    None => inside,
                    Some(p) => k.b.ins().band(p, inside),
                });
                opos.push(v);
            }
            let Some(ok) = ok else { return };
            k.if_then(ok, |k| {
                let wt = k.linear(t, &strides(&w.kernel));
                let we = k.b.ins().imul_imm_s(oj, taps as i64);
                let we = k.b.ins().iadd(we, wt);
                let we = k.b.ins().iadd(we, wrow);
                let wv = k.ld_at(types::F32, wp, we, 4, 0);
                let oe = k.b.ins().iadd(orow, oj);
                let oe = k.b.ins().imul_imm_s(oe, out_plane as i64);
                let op = k.linear(&opos, &ost);
                let oe = k.b.ins().iadd(oe, op);
                let cur = k.ld_at(types::F32, out, oe, 4, 0);
                let nv = k.fmadd(xv, wv, cur);
                k.st_at(nv, out, oe, 4, 0);
            });
        });
    });
    Ok(())
}
