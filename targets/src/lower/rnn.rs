//! LSTM and GRU (ONNX semantics, layout `[seq, batch, input]`, forward,
//! reverse or bidirectional, peepholes, clip, any activation list,
//! `input_forget` (f = 1 - i)).
//!
//! W, R, B (and P) must be constants. The running state lives in the `Y_h`
//! (and `Y_c`) outputs: initialised from `H0`/`C0`, updated in place each
//! step, so they hold the final state at the end. Per direction the input
//! projection `W·x` of every step is one GEMM (shared micro-kernel) before
//! the recurrence; per step, `R·h` for all batch rows is another (B panels
//! of `R^T` packed at compile time). The element-wise state update runs
//! after all gates are known, so reading `h_prev` and writing `h` never
//! interleave.
//!
//! Gate order (ONNX): LSTM `i, o, f, c`, peepholes `i, o, f`; GRU `z, r, h`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::op::{Activation, Direction};
use kerf_ir::{Op, UnaryOp};

use super::elementwise::{fsel, unary_f};
use super::matmul::{gemm_core, AView, OutView};
use super::{Kernel, LResult};
use crate::math;

/// Applies an RNN activation to a scalar.
fn act(k: &mut Kernel, a: Activation, x: Value) -> Value {
    let f = types::F32;
    let u = |k: &mut Kernel, op: UnaryOp, x: Value| unary_f(k, op, f, x).unwrap_or(x);
    match a {
        Activation::Sigmoid => math::sigmoid(&mut k.b, x),
        Activation::Tanh => math::tanh(&mut k.b, x),
        Activation::Relu => u(k, UnaryOp::Relu, x),
        Activation::HardSigmoid(al, be) => u(k, UnaryOp::HardSigmoid { alpha: al, beta: be }, x),
        Activation::LeakyRelu(al) => u(k, UnaryOp::LeakyRelu { alpha: al }, x),
        Activation::Elu(al) => u(k, UnaryOp::Elu { alpha: al }, x),
        Activation::Softsign => u(k, UnaryOp::Softsign, x),
        Activation::Softplus => u(k, UnaryOp::Softplus, x),
        Activation::Affine(al, be) => {
            let a = k.fc(al.get());
            let b = k.fc(be.get());
            let t = k.b.ins().fmul(x, a);
            k.b.ins().fadd(t, b)
        }
        Activation::ThresholdedRelu(al) => {
            let a = k.fc(al.get());
            let z = k.fc(0.0);
            fsel(k, FloatCC::GreaterThan, x, a, x, z)
        }
        Activation::ScaledTanh(al, be) => {
            let a = k.fc(al.get());
            let b = k.fc(be.get());
            let t = k.b.ins().fmul(x, b);
            let t = math::tanh(&mut k.b, t);
            k.b.ins().fmul(t, a)
        }
    }
}

fn clip(k: &mut Kernel, c: Option<f32>, x: Value) -> Value {
    match c {
        Some(c) => {
            let lo = k.fc(-c);
            let hi = k.fc(c);
            let t = k.b.ins().fmax(x, lo);
            k.b.ins().fmin(t, hi)
        }
        None => x,
    }
}

pub fn lower(k: &mut Kernel) -> LResult {
    k.require_f32()?;
    let (r, lstm) = match k.node.op.clone() {
        Op::Lstm(r) => (r, true),
        Op::Gru(r) => (r, false),
        _ => return Err("not a recurrent op".into()),
    };
    // input_forget=1 couples the gates: f = 1 - i (ONNX Runtime's semantics)
    let coupled = lstm && r.input_forget;
    let xs = k.in_shape(0).to_vec();
    let (seq, batch, input) = (xs[0], xs[1], xs[2]);
    let h = r.hidden;
    let dn = r.direction.num_directions();
    let ng = if lstm { 4 } else { 3 };
    let w = k.const_f32(1).ok_or("W must be a constant")?;
    let rr = k.const_f32(2).ok_or("R must be a constant")?;
    let bb = k.const_f32(3).ok_or("B must be a constant")?;
    let peep = if lstm { Some(k.const_f32(6).ok_or("P must be a constant")?) } else { None };
    let clip_v = r.clip.map(|c| c.get());
    let lbr = !lstm && r.linear_before_reset;
    // bias[d][j] = Wb + Rb, except GRU's h gate with linear_before_reset,
    // whose Rb stays separate (rbh[d][u]).
    let mut bias = vec![0f32; dn * ng * h];
    let mut rbh = vec![0f32; dn * h];
    for d in 0..dn {
        for j in 0..ng * h {
            let wb = bb[d * 2 * ng * h + j];
            let rb = bb[d * 2 * ng * h + ng * h + j];
            if lbr && j >= 2 * h {
                bias[d * ng * h + j] = wb;
                rbh[d * h + j - 2 * h] = rb;
            } else {
                bias[d * ng * h + j] = wb + rb;
            }
        }
    }
    let l = k.lanes();
    let xp = k.input(0);
    let h0 = k.input(4);
    let c0 = if lstm { Some(k.input(5)) } else { None };
    // B panels of W^T and R^T per direction (the GEMM reads panels of 4
    // gate rows); GRU without linear_before_reset multiplies its h-gate
    // rows of R by r*h separately.
    let n_rec = if lstm || lbr { ng * h } else { 2 * h };
    let mut wpk = Vec::new();
    let mut rpk = Vec::new();
    let mut rhpk = Vec::new();
    for d in 0..dn {
        wpk.push(super::matmul::pack_b(&w[d * ng * h * input..], input, ng * h, 1, input, l, 1.0));
        rpk.push(super::matmul::pack_b(&rr[d * ng * h * h..], h, n_rec, 1, h, l, 1.0));
        if !lstm && !lbr {
            rhpk.push(super::matmul::pack_b(&rr[(d * ng * h + 2 * h) * h..], h, h, 1, h, l, 1.0));
        }
    }
    let bp = k.blob_f32(&bias);
    let rbp = k.blob_f32(&rbh);
    let pp = peep.map(|p| k.blob_f32(&p));
    let y = k.output(0);
    let yh = k.output(1);
    let yc = if lstm { Some(k.output(2)) } else { None };
    let gh = ng * h;
    let xw = k.scratch(seq * batch * gh * 4);
    let gates = k.scratch(batch * gh * 4);
    let rh = k.scratch(batch * h * 4);
    let g2 = k.scratch(batch * h * 4);
    // state init
    let state = dn * batch * h;
    k.for_n(0, state as i64, 1, |k, i| {
        let v = k.ld_at(types::F32, h0, i, 4, 0);
        k.st_at(v, yh, i, 4, 0);
        if let (Some(c0), Some(yc)) = (c0, yc) {
            let v = k.ld_at(types::F32, c0, i, 4, 0);
            k.st_at(v, yc, i, 4, 0);
        }
    });
    let na = if lstm { 3 } else { 2 };
    let zero = k.ic(0);
    for d in 0..dn {
        let reverse = r.direction == Direction::Reverse || d == 1;
        let acts: Vec<Activation> = r.activations[d * na..(d + 1) * na].to_vec();
        let wpd = k.blob_f32(&wpk[d]);
        let rpd = k.blob_f32(&rpk[d]);
        let rhpd = if rhpk.is_empty() { None } else { Some(k.blob_f32(&rhpk[d])) };
        let bd = k.add_c(bp, (d * gh * 4) as i64);
        let rbd = k.add_c(rbp, (d * h * 4) as i64);
        let pd = pp.map(|p| k.add_c(p, (d * 3 * h * 4) as i64));
        let hstate = k.add_c(yh, (d * batch * h * 4) as i64);
        let cstate = yc.map(|yc| k.add_c(yc, (d * batch * h * 4) as i64));
        // input projection for every step at once: xw[t*batch + b][j] = W[j]·x[t, b]
        let ax = AView { ptr: xp, sm: input, sk: 1, ro: false };
        let ox = OutView { ptr: xw, ldo: gh, bias: None };
        gemm_core(k, seq * batch, gh, input, ax, zero, (wpd, true), ox, zero);
        k.for_n(0, seq as i64, 1, |k, s| {
            let t = if reverse {
                let last = k.ic(seq as i64 - 1);
                k.b.ins().isub(last, s)
            } else {
                s
            };
            // recurrent product for all rows: gates[b][j] = R[j]·h[b]
            let ah = AView { ptr: hstate, sm: h, sk: 1, ro: false };
            let og = OutView { ptr: gates, ldo: gh, bias: None };
            gemm_core(k, batch, n_rec, h, ah, zero, (rpd, true), og, zero);
            k.for_n(0, batch as i64, 1, |k, b| {
                let tb = k.b.ins().imul_imm_s(t, batch as i64);
                let tb = k.b.ins().iadd(tb, b);
                let xo = k.b.ins().imul_imm_s(tb, (gh * 4) as i64);
                let xwrow = k.b.ins().iadd(xw, xo);
                let go = k.b.ins().imul_imm_s(b, (gh * 4) as i64);
                let grow = k.b.ins().iadd(gates, go);
                let so = k.b.ins().imul_imm_s(b, (h * 4) as i64);
                let hrow = k.b.ins().iadd(hstate, so);
                let crow = cstate.map(|c| k.b.ins().iadd(c, so));
                let yi = k.b.ins().imul_imm_s(t, dn as i64);
                let yi = k.b.ins().iadd_imm_s(yi, d as i64);
                let yi = k.b.ins().imul_imm_s(yi, batch as i64);
                let yi = k.b.ins().iadd(yi, b);
                let yi = k.b.ins().imul_imm_s(yi, h as i64);
                let yrow = k.addr(y, yi, 4);
                // pre-activation of gate element j: R·h + W·x + bias
                let pre = |k: &mut Kernel, j: Value| {
                    let a = k.ld_at(types::F32, grow, j, 4, 0);
                    let x = k.ld_at(types::F32, xwrow, j, 4, 0);
                    let bv = k.ld_at(types::F32, bd, j, 4, 0);
                    let s = k.b.ins().fadd(a, x);
                    k.b.ins().fadd(s, bv)
                };
                if lstm {
                    let (Some(crow), Some(pd)) = (crow, pd) else { return };
                    k.for_n(0, h as i64, 1, |k, u| {
                        let g = |k: &mut Kernel, gi: usize| {
                            let e = k.b.ins().iadd_imm_s(u, (gi * h) as i64);
                            pre(k, e)
                        };
                        let p = |k: &mut Kernel, pi: usize| {
                            let e = k.b.ins().iadd_imm_s(u, (pi * h) as i64);
                            k.ld_at(types::F32, pd, e, 4, 0)
                        };
                        let cprev = k.ld_at(types::F32, crow, u, 4, 0);
                        let (gi, go, gf, gc) = (g(k, 0), g(k, 1), g(k, 2), g(k, 3));
                        let (pi, po, pf) = (p(k, 0), p(k, 1), p(k, 2));
                        let i = k.fmadd(pi, cprev, gi);
                        let i = clip(k, clip_v, i);
                        let i = act(k, acts[0], i);
                        let f = if coupled {
                            let one = k.fc(1.0);
                            k.b.ins().fsub(one, i)
                        } else {
                            let f = k.fmadd(pf, cprev, gf);
                            let f = clip(k, clip_v, f);
                            act(k, acts[0], f)
                        };
                        let cc = clip(k, clip_v, gc);
                        let cc = act(k, acts[1], cc);
                        let ic = k.b.ins().fmul(i, cc);
                        let c = k.fmadd(f, cprev, ic);
                        let o = k.fmadd(po, c, go);
                        let o = clip(k, clip_v, o);
                        let o = act(k, acts[0], o);
                        let hc = act(k, acts[2], c);
                        let hv = k.b.ins().fmul(o, hc);
                        k.st_at(c, crow, u, 4, 0);
                        k.st_at(hv, hrow, u, 4, 0);
                        k.st_at(hv, yrow, u, 4, 0);
                    });
                } else {
                    // z and r, activated in place
                    k.for_n(0, (2 * h) as i64, 1, |k, j| {
                        let s = pre(k, j);
                        let s = clip(k, clip_v, s);
                        let s = act(k, acts[0], s);
                        k.st_at(s, grow, j, 4, 0);
                    });
                    if !lbr {
                        let rrow = k.b.ins().iadd(rh, so);
                        k.for_n(0, h as i64, 1, |k, u| {
                            let e = k.b.ins().iadd_imm_s(u, h as i64);
                            let rv = k.ld_at(types::F32, grow, e, 4, 0);
                            let hv = k.ld_at(types::F32, hrow, u, 4, 0);
                            let m = k.b.ins().fmul(rv, hv);
                            k.st_at(m, rrow, u, 4, 0);
                        });
                    }
                }
            });
            if !lstm {
                if let Some(rhpd) = rhpd {
                    // g2[b][u] = R_h[u]·(r*h)[b]
                    let ar = AView { ptr: rh, sm: h, sk: 1, ro: false };
                    let o2 = OutView { ptr: g2, ldo: h, bias: None };
                    gemm_core(k, batch, h, h, ar, zero, (rhpd, true), o2, zero);
                }
                k.for_n(0, batch as i64, 1, |k, b| {
                    let tb = k.b.ins().imul_imm_s(t, batch as i64);
                    let tb = k.b.ins().iadd(tb, b);
                    let xo = k.b.ins().imul_imm_s(tb, (gh * 4) as i64);
                    let xwrow = k.b.ins().iadd(xw, xo);
                    let go = k.b.ins().imul_imm_s(b, (gh * 4) as i64);
                    let grow = k.b.ins().iadd(gates, go);
                    let so = k.b.ins().imul_imm_s(b, (h * 4) as i64);
                    let hrow = k.b.ins().iadd(hstate, so);
                    let g2row = k.b.ins().iadd(g2, so);
                    let yi = k.b.ins().imul_imm_s(t, dn as i64);
                    let yi = k.b.ins().iadd_imm_s(yi, d as i64);
                    let yi = k.b.ins().imul_imm_s(yi, batch as i64);
                    let yi = k.b.ins().iadd(yi, b);
                    let yi = k.b.ins().imul_imm_s(yi, h as i64);
                    let yrow = k.addr(y, yi, 4);
                    // candidate h, written over the h-gate slot of xw (only
                    // this step reads that row)
                    k.for_n(0, h as i64, 1, |k, u| {
                        let j = k.b.ins().iadd_imm_s(u, (2 * h) as i64);
                        let x = k.ld_at(types::F32, xwrow, j, 4, 0);
                        let bv = k.ld_at(types::F32, bd, j, 4, 0);
                        let a = k.b.ins().fadd(x, bv);
                        let s = if lbr {
                            let c = k.ld_at(types::F32, grow, j, 4, 0);
                            let rb = k.ld_at(types::F32, rbd, u, 4, 0);
                            let c = k.b.ins().fadd(c, rb);
                            let re = k.b.ins().iadd_imm_s(u, h as i64);
                            let rv = k.ld_at(types::F32, grow, re, 4, 0);
                            k.fmadd(rv, c, a)
                        } else {
                            let c = k.ld_at(types::F32, g2row, u, 4, 0);
                            k.b.ins().fadd(a, c)
                        };
                        let s = clip(k, clip_v, s);
                        let s = act(k, acts[1], s);
                        k.st_at(s, xwrow, j, 4, 0);
                    });
                    k.for_n(0, h as i64, 1, |k, u| {
                        let z = k.ld_at(types::F32, grow, u, 4, 0);
                        let e = k.b.ins().iadd_imm_s(u, (2 * h) as i64);
                        let hh = k.ld_at(types::F32, xwrow, e, 4, 0);
                        let hp = k.ld_at(types::F32, hrow, u, 4, 0);
                        // (1 - z) * hh + z * hp = hh + z * (hp - hh)
                        let d_ = k.b.ins().fsub(hp, hh);
                        let hn = k.fmadd(z, d_, hh);
                        k.st_at(hn, hrow, u, 4, 0);
                        k.st_at(hn, yrow, u, 4, 0);
                    });
                });
            }
        });
    }
    Ok(())
}
