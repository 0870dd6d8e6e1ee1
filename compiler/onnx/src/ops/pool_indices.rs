//! MaxPool's optional `Indices` output, as a composition.
//!
//! Each plane is padded with -inf (so padding never wins), every window is
//! gathered with a constant tap table (`[out positions, taps]`, an im2col
//! view), ArgMax (first maximum, as the reference) picks the tap, and a
//! second constant table maps (output position, tap) to the element's flat
//! index in X in the requested storage order (row-major, or column-major
//! over the spatial axes for `storage_order=1`), plus the plane's offset.
//! Cost: `taps` times the input gathered once; only built when the indices
//! are used.

use kerf_ir::op::{BinaryOp, PadMode, Window};
use kerf_ir::{Op, ValueId, F32};

use super::compose::{bin, konst_i, reshape};
use crate::import::Cx;
use crate::ImportError;

/// The indices output for MaxPool of `x` over `w`, shaped like the output
/// `out` (`[N, C, out...]`).
pub(crate) fn max_pool_indices(
    cx: &mut Cx,
    x: ValueId,
    w: &Window,
    out: &[usize],
    column_major: bool,
) -> Result<ValueId, ImportError> {
    let xs = cx.shape(x);
    let r = w.rank();
    if xs.len() != r + 2 || out.len() != r + 2 || !cx.ty(x).dtype.is_float() {
        return Err(cx.err(format!("MaxPool indices need a float input, got {}", cx.ty(x))));
    }
    let dims = &xs[2..];
    let osp = &out[2..];
    let planes = xs[0] * xs[1];
    let plane: usize = dims.iter().product();
    let taps: usize = w.kernel.iter().product();
    let opos: usize = osp.iter().product();
    super::fits(cx, &[planes, opos, taps])?;
    // Padded extent: begin pads, end pads grown to cover ceil-mode windows.
    let mut pd = Vec::with_capacity(r);
    let mut pe = Vec::with_capacity(r);
    for i in 0..r {
        let reach = (osp[i].max(1) - 1) * w.strides[i] + (w.kernel[i] - 1) * w.dilations[i] + 1;
        let e = reach.saturating_sub(dims[i] + w.pad_begin(i)).max(w.pad_end(i));
        pe.push(e);
        pd.push(dims[i] + w.pad_begin(i) + e);
    }
    let mut pads = vec![0; 1];
    pads.extend((0..r).map(|i| w.pad_begin(i)));
    pads.push(0);
    pads.extend(&pe);
    let mut pshape = vec![planes];
    pshape.extend(dims);
    let x2 = reshape(cx, x, pshape)?;
    let xp = cx.add1(Op::Pad { pads, mode: PadMode::Constant, value: F32::new(f32::NEG_INFINITY) }, vec![x2])?;
    let pplane: usize = pd.iter().product();
    let xp = reshape(cx, xp, vec![planes, pplane])?;
    // Tables over (output position, tap).
    let mut table = Vec::with_capacity(opos * taps);
    let mut orig = Vec::with_capacity(opos * taps);
    for o in 0..opos {
        let mut rem = o;
        let mut op = vec![0; r];
        for i in (0..r).rev() {
            op[i] = rem % osp[i];
            rem /= osp[i];
        }
        for t in 0..taps {
            let mut rem = t;
            let mut tp = vec![0; r];
            for i in (0..r).rev() {
                tp[i] = rem % w.kernel[i];
                rem /= w.kernel[i];
            }
            // padded coordinates, then original ones (None inside padding)
            let pc: Vec<usize> = (0..r).map(|i| op[i] * w.strides[i] + tp[i] * w.dilations[i]).collect();
            let (mut flat, mut ok) = (0usize, true);
            for i in 0..r {
                flat = flat * pd[i] + pc[i];
            }
            let oc: Vec<i64> = (0..r).map(|i| pc[i] as i64 - w.pad_begin(i) as i64).collect();
            let mut of = 0i64;
            let order: Vec<usize> = if column_major { (0..r).rev().collect() } else { (0..r).collect() };
            for &i in &order {
                ok &= oc[i] >= 0 && (oc[i] as usize) < dims[i];
                of = of * dims[i] as i64 + oc[i];
            }
            table.push(flat as i64);
            orig.push(if ok { of } else { 0 });
        }
    }
    let tv = konst_i(cx, "window_taps", vec![opos, taps], &table)?;
    let g = cx.add1(Op::Gather { axis: 1 }, vec![xp, tv])?; // [planes, opos, taps]
    let am = cx.add1(Op::ArgMax { axis: 2, keepdims: false, select_last: false }, vec![g])?; // [planes, opos]
    let rows: Vec<i64> = (0..opos).map(|o| (o * taps) as i64).collect();
    let rv = konst_i(cx, "window_rows", vec![1, opos], &rows)?;
    let sel = bin(cx, BinaryOp::Add, am, rv)?;
    let ov = konst_i(cx, "tap_index", vec![opos * taps], &orig)?;
    let idx = cx.add1(Op::Gather { axis: 0 }, vec![ov, sel])?; // [planes, opos]
    let bases: Vec<i64> = (0..planes).map(|p| (p * plane) as i64).collect();
    let bv = konst_i(cx, "plane_base", vec![planes, 1], &bases)?;
    let idx = bin(cx, BinaryOp::Add, idx, bv)?;
    reshape(cx, idx, out.to_vec())
}
