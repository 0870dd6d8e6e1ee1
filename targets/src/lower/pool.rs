//! MaxPool, AveragePool (1-D/2-D, padding, dilation, ceil mode,
//! count_include_pad) and the global pools.
//!
//! Windowed pools compute the valid tap range per output position (as Conv
//! does), so padding never reads memory; the global pools reduce each plane
//! with `f32x4` steps and a horizontal reduction.

use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::Op;

use super::conv::{imax, tap_range};
use super::{Kernel, LResult};

pub fn pool(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let (p, is_max) = match k.node.op.clone() {
        Op::MaxPool(p) => (p, true),
        Op::AveragePool(p) => (p, false),
        _ => return Err("not a pool".into()),
    };
    let w = &p.window;
    let x = k.in_shape(0).to_vec();
    let o = k.out_shape(0).to_vec();
    let (h, wd, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw, peh, pew) = match w.rank() {
        1 => (1, x[2], 1, o[2], 1, w.kernel[0], 1, w.strides[0], 1, w.dilations[0], 0, w.pad_begin(0), 0, w.pad_end(0)),
        2 => (
            x[2],
            x[3],
            o[2],
            o[3],
            w.kernel[0],
            w.kernel[1],
            w.strides[0],
            w.strides[1],
            w.dilations[0],
            w.dilations[1],
            w.pad_begin(0),
            w.pad_begin(1),
            w.pad_end(0),
            w.pad_end(1),
        ),
        r => return Err(format!("{r}-D pooling is not supported")),
    };
    let planes = x[0] * x[1];
    let xp = k.input(0);
    let out = k.output(0);
    let include_pad = p.count_include_pad;
    k.for_n(0, planes as i64, 1, |k, pl| {
        let xo = k.b.ins().imul_imm_s(pl, (h * wd * 4) as i64);
        let xb = k.b.ins().iadd(xp, xo);
        let oo = k.b.ins().imul_imm_s(pl, (oh * ow * 4) as i64);
        let ob = k.b.ins().iadd(out, oo);
        k.for_n(0, oh as i64, 1, |k, oy| {
            let (ylo, yhi) = tap_range(k, oy, sh, ph, dh, h, kh);
            let iy0 = k.b.ins().imul_imm_s(oy, sh as i64);
            let iy0 = k.b.ins().iadd_imm_s(iy0, -(ph as i64));
            k.for_n(0, ow as i64, 1, |k, ox| {
                let (xlo, xhi) = tap_range(k, ox, sw, pw, dw, wd, kw);
                let ix0 = k.b.ins().imul_imm_s(ox, sw as i64);
                let ix0 = k.b.ins().iadd_imm_s(ix0, -(pw as i64));
                let init = k.fc(if is_max { f32::NEG_INFINITY } else { 0.0 });
                let acc = k.for_acc(ylo, yhi, 1, &[init], |k, ty_, a| {
                    let iy = k.b.ins().imul_imm_s(ty_, dh as i64);
                    let iy = k.b.ins().iadd(iy, iy0);
                    let row = k.b.ins().imul_imm_s(iy, wd as i64);
                    let row = k.b.ins().iadd(row, ix0);
                    k.for_acc(xlo, xhi, 1, a, |k, tx, a| {
                        let ix = k.b.ins().imul_imm_s(tx, dw as i64);
                        let e = k.b.ins().iadd(row, ix);
                        let v = k.ld_at(types::F32, xb, e, 4, 0);
                        vec![if is_max { k.b.ins().fmax(a[0], v) } else { k.b.ins().fadd(a[0], v) }]
                    })
                });
                let r = if is_max {
                    acc[0]
                } else {
                    let (cy, cx) = if include_pad {
                        // taps inside the padded extent
                        let (a, b) = tap_range(k, oy, sh, 0, dh, h + ph + peh, kh);
                        let (c, d) = tap_range(k, ox, sw, 0, dw, wd + pw + pew, kw);
                        (k.b.ins().isub(b, a), k.b.ins().isub(d, c))
                    } else {
                        (k.b.ins().isub(yhi, ylo), k.b.ins().isub(xhi, xlo))
                    };
                    let cnt = k.b.ins().imul(cy, cx);
                    let one = k.ic(1);
                    let cnt = imax(k, cnt, one);
                    let cf = k.b.ins().fcvt_from_sint(types::F32, cnt);
                    k.b.ins().fdiv(acc[0], cf)
                };
                let pix = k.b.ins().imul_imm_s(oy, ow as i64);
                let pix = k.b.ins().iadd(pix, ox);
                k.st_at(r, ob, pix, 4, 0);
            });
        });
    });
    Ok(())
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
