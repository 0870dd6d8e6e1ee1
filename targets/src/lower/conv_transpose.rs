//! Transposed convolution (1-D and 2-D; 3-D is in `conv3d.rs`).
//!
//! A scalar scatter: every input element adds `x * w` into each output it
//! reaches (bounds-checked), after the output is initialised with the bias.

use cranelift_codegen::ir::{types, InstBuilder};
use kerf_ir::Op;

use super::{Kernel, LResult};

/// Lowers a `ConvTranspose` (f32); three or more spatial axes go to [`super::conv3d`].
pub fn conv_transpose(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let Op::ConvTranspose(c) = k.node.op.clone() else { return Err("not a ConvTranspose".into()) };
    if c.window.rank() > 2 {
        return super::conv3d::conv_transpose(k);
    }
    let x = k.in_shape(0).to_vec();
    let o = k.out_shape(0).to_vec();
    let w = &c.window;
    let two = w.rank() == 2;
    let (h, wd, oh, ow) = if two { (x[2], x[3], o[2], o[3]) } else { (1, x[2], 1, o[2]) };
    let (kh, kw) = if two { (w.kernel[0], w.kernel[1]) } else { (1, w.kernel[0]) };
    let (sh, sw) = if two { (w.strides[0], w.strides[1]) } else { (1, w.strides[0]) };
    let (dh, dw) = if two { (w.dilations[0], w.dilations[1]) } else { (1, w.dilations[0]) };
    let (ph, pw) = if two { (w.pad_begin(0), w.pad_begin(1)) } else { (0, w.pad_begin(0)) };
    let (n, ci, co) = (x[0], x[1], o[1]);
    let g = c.group;
    let (icg, ocg) = (ci / g, co / g);
    let xp = k.input(0);
    // W `[ci][ocg][kh][kw]` and the bias are read in their own layout:
    // constants and run-time tensors alike are passed as they are.
    let wptr = k.input(1);
    let bptr = if k.node.inputs.len() == 3 { k.input(2) } else { k.blob_f32(&vec![0.0; co]) };
    let out = k.output(0);
    // init with bias
    k.for_n(0, (n * co) as i64, 1, |k, nc| {
        let c_ = k.b.ins().urem_imm_s(nc, co as i64);
        let bv = k.ld_at(types::F32, bptr, c_, 4, 0);
        let base = k.b.ins().imul_imm_s(nc, (oh * ow) as i64);
        k.for_n(0, (oh * ow) as i64, 1, |k, p| {
            let e = k.b.ins().iadd(base, p);
            k.st_at(bv, out, e, 4, 0);
        });
    });
    k.nest(&[n, g, icg, h, wd], &mut |k, idx| {
        let (nn, gg, ic, iy, ix) = (idx[0], idx[1], idx[2], idx[3], idx[4]);
        let cin = k.b.ins().imul_imm_s(gg, icg as i64);
        let cin = k.b.ins().iadd(cin, ic);
        let e = k.linear(&[nn, cin, iy, ix], &[ci * h * wd, h * wd, wd, 1]);
        let xv = k.ld_at(types::F32, xp, e, 4, 0);
        k.nest(&[ocg, kh, kw], &mut |k, j| {
            let (oc, ty_, tx) = (j[0], j[1], j[2]);
            let y = k.linear(&[iy, ty_], &[sh, dh]);
            let y = k.b.ins().iadd_imm_s(y, -(ph as i64));
            let xx = k.linear(&[ix, tx], &[sw, dw]);
            let xx = k.b.ins().iadd_imm_s(xx, -(pw as i64));
            let okx = k.in_range(xx, ow as i64);
            let oky = k.in_range(y, oh as i64);
            let ok = k.b.ins().band(okx, oky);
            k.if_then(ok, |k| {
                let co_ = k.b.ins().imul_imm_s(gg, ocg as i64);
                let co_ = k.b.ins().iadd(co_, oc);
                let we = k.linear(&[cin, oc, ty_, tx], &[ocg * kh * kw, kh * kw, kw, 1]);
                let wv = k.ld_at(types::F32, wptr, we, 4, 0);
                let oe = k.linear(&[nn, co_, y, xx], &[co * oh * ow, oh * ow, ow, 1]);
                let p = k.addr(out, oe, 4);
                let cur = k.ld(types::F32, p, 0);
                let r = k.fmadd(xv, wv, cur);
                k.st(r, p, 0);
            });
        });
    });
    Ok(())
}
