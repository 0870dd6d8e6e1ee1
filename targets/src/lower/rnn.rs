//! LSTM and GRU (ONNX semantics, layout `[seq, batch, input]`, forward,
//! reverse or bidirectional, peepholes, clip, any activation list).
//!
//! W, R, B (and P) must be constants. The running state lives in the `Y_h`
//! (and `Y_c`) outputs: initialised from `H0`/`C0`, updated in place each
//! step, so they hold the final state at the end. Per step and batch row,
//! every gate pre-activation is a bias plus two dot products (`f32x4` with a
//! horizontal sum) written to scratch; the element-wise state update runs
//! after all gates are known, so reading `h_prev` and writing `h` never
//! interleave.
//!
//! Gate order (ONNX): LSTM `i, o, f, c`, peepholes `i, o, f`; GRU `z, r, h`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use kerf_ir::op::{Activation, Direction};
use kerf_ir::{Op, UnaryOp};

use super::elementwise::{fsel, unary_f};
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

/// `Σ a[i]·b[i]` over `len` contiguous f32 (`a` read-only weights).
fn dot(k: &mut Kernel, a: Value, b: Value, len: usize) -> Value {
    let l = k.lanes();
    let vty = k.vty();
    let main = len / l * l;
    let z = k.fsplat(vty, 0.0);
    let acc = k.for_acc_n(0, main as i64, l as i64, &[z], |k, i, acc| {
        let x = k.ld_at(vty, a, i, 4, 0);
        let y = k.ld_at(vty, b, i, 4, 0);
        vec![k.fmadd(x, y, acc[0])]
    });
    let mut s = if l > 1 { k.hsum(acc[0]) } else { acc[0] };
    if l > 1 && main < len {
        s = k.for_acc_n(main as i64, len as i64, 1, &[s], |k, i, acc| {
            let x = k.ld_at(types::F32, a, i, 4, 0);
            let y = k.ld_at(types::F32, b, i, 4, 0);
            vec![k.fmadd(x, y, acc[0])]
        })[0];
    }
    s
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
    if lstm && r.input_forget {
        return Err("input_forget=1 is not supported".into());
    }
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
    let xp = k.input(0);
    let h0 = k.input(4);
    let c0 = if lstm { Some(k.input(5)) } else { None };
    let wp = k.blob_f32(&w);
    let rp = k.blob_f32(&rr);
    let bp = k.blob_f32(&bias);
    let rbp = k.blob_f32(&rbh);
    let pp = peep.map(|p| k.blob_f32(&p));
    let y = k.output(0);
    let yh = k.output(1);
    let yc = if lstm { Some(k.output(2)) } else { None };
    let gates = k.scratch(ng * h * 4);
    let rh = k.scratch(h * 4);
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
    for d in 0..dn {
        let reverse = r.direction == Direction::Reverse || d == 1;
        let acts: Vec<Activation> = r.activations[d * na..(d + 1) * na].to_vec();
        let wd = k.add_c(wp, (d * ng * h * input * 4) as i64);
        let rd = k.add_c(rp, (d * ng * h * h * 4) as i64);
        let bd = k.add_c(bp, (d * ng * h * 4) as i64);
        let rbd = k.add_c(rbp, (d * h * 4) as i64);
        let pd = pp.map(|p| k.add_c(p, (d * 3 * h * 4) as i64));
        k.for_n(0, seq as i64, 1, |k, s| {
            let t = if reverse {
                let last = k.ic(seq as i64 - 1);
                k.b.ins().isub(last, s)
            } else {
                s
            };
            k.for_n(0, batch as i64, 1, |k, b| {
                let xi = k.b.ins().imul_imm_s(t, batch as i64);
                let xi = k.b.ins().iadd(xi, b);
                let xi = k.b.ins().imul_imm_s(xi, input as i64);
                let xrow = k.addr(xp, xi, 4);
                let si = k.b.ins().iadd_imm_s(b, (d * batch) as i64);
                let si = k.b.ins().imul_imm_s(si, h as i64);
                let hrow = k.addr(yh, si, 4);
                let crow = yc.map(|yc| k.addr(yc, si, 4));
                let yi = k.b.ins().imul_imm_s(t, dn as i64);
                let yi = k.b.ins().iadd_imm_s(yi, d as i64);
                let yi = k.b.ins().imul_imm_s(yi, batch as i64);
                let yi = k.b.ins().iadd(yi, b);
                let yi = k.b.ins().imul_imm_s(yi, h as i64);
                let yrow = k.addr(y, yi, 4);
                // gate pre-activations (all of LSTM's; GRU's z and r)
                let n_direct = if lstm { ng * h } else { 2 * h };
                k.for_n(0, n_direct as i64, 1, |k, j| {
                    let wr = k.b.ins().imul_imm_s(j, (input * 4) as i64);
                    let wr = k.b.ins().iadd(wd, wr);
                    let rr_ = k.b.ins().imul_imm_s(j, (h * 4) as i64);
                    let rr_ = k.b.ins().iadd(rd, rr_);
                    let a = dot(k, wr, xrow, input);
                    let c = dot(k, rr_, hrow, h);
                    let bv = k.ld_at(types::F32, bd, j, 4, 0);
                    let s = k.b.ins().fadd(a, c);
                    let s = k.b.ins().fadd(s, bv);
                    let s = if lstm {
                        s
                    } else {
                        let s = clip(k, clip_v, s);
                        act(k, acts[0], s)
                    };
                    k.st_at(s, gates, j, 4, 0);
                });
                if lstm {
                    let (Some(crow), Some(pd)) = (crow, pd) else { return };
                    k.for_n(0, h as i64, 1, |k, u| {
                        let g = |k: &mut Kernel, gi: usize| {
                            let e = k.b.ins().iadd_imm_s(u, (gi * h) as i64);
                            k.ld_at(types::F32, gates, e, 4, 0)
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
                        let f = k.fmadd(pf, cprev, gf);
                        let f = clip(k, clip_v, f);
                        let f = act(k, acts[0], f);
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
                    if !lbr {
                        k.for_n(0, h as i64, 1, |k, u| {
                            let e = k.b.ins().iadd_imm_s(u, h as i64);
                            let rv = k.ld_at(types::F32, gates, e, 4, 0);
                            let hv = k.ld_at(types::F32, hrow, u, 4, 0);
                            let m = k.b.ins().fmul(rv, hv);
                            k.st_at(m, rh, u, 4, 0);
                        });
                    }
                    // candidate h
                    k.for_n(0, h as i64, 1, |k, u| {
                        let j = k.b.ins().iadd_imm_s(u, (2 * h) as i64);
                        let wr = k.b.ins().imul_imm_s(j, (input * 4) as i64);
                        let wr = k.b.ins().iadd(wd, wr);
                        let rr_ = k.b.ins().imul_imm_s(j, (h * 4) as i64);
                        let rr_ = k.b.ins().iadd(rd, rr_);
                        let a = dot(k, wr, xrow, input);
                        let bv = k.ld_at(types::F32, bd, j, 4, 0);
                        let a = k.b.ins().fadd(a, bv);
                        let s = if lbr {
                            let c = dot(k, rr_, hrow, h);
                            let rb = k.ld_at(types::F32, rbd, u, 4, 0);
                            let c = k.b.ins().fadd(c, rb);
                            let re = k.b.ins().iadd_imm_s(u, h as i64);
                            let rv = k.ld_at(types::F32, gates, re, 4, 0);
                            k.fmadd(rv, c, a)
                        } else {
                            let c = dot(k, rr_, rh, h);
                            k.b.ins().fadd(a, c)
                        };
                        let s = clip(k, clip_v, s);
                        let s = act(k, acts[1], s);
                        k.st_at(s, gates, j, 4, 0);
                    });
                    k.for_n(0, h as i64, 1, |k, u| {
                        let z = k.ld_at(types::F32, gates, u, 4, 0);
                        let e = k.b.ins().iadd_imm_s(u, (2 * h) as i64);
                        let hh = k.ld_at(types::F32, gates, e, 4, 0);
                        let hp = k.ld_at(types::F32, hrow, u, 4, 0);
                        // (1 - z) * hh + z * hp = hh + z * (hp - hh)
                        let d_ = k.b.ins().fsub(hp, hh);
                        let hn = k.fmadd(z, d_, hh);
                        k.st_at(hn, hrow, u, 4, 0);
                        k.st_at(hn, yrow, u, 4, 0);
                    });
                }
            });
        });
    }
    Ok(())
}
