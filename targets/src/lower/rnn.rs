//! LSTM, GRU and the simple RNN (ONNX semantics, layout `[seq, batch,
//! input]`, forward, reverse or bidirectional, peepholes, clip, any
//! activation list, LSTM `input_forget` (f = 1 - i), GRU
//! `linear_before_reset`). W, R, B and P may be constants (packed at compile
//! time) or run-time tensors (packed into scratch at the start of each call).
//!
//! Data layout. Gate rows are regrouped per *hidden block* of `L` units
//! (`L` = 4 with SIMD, else 1; the hidden size is padded to a multiple of
//! `L` with zero weights): column `(ub*G + g)*L + lane` stands for gate `g`,
//! unit `ub*L + lane`. So the `G` gate values of `L` units are `G` vectors
//! that a tile holds in registers at once, and the gate math runs on `f32x4`
//! with the vectorised `math::sigmoid`/`tanh`.
//!
//! Per direction:
//! 1. `xw = X · Wᵀ` for every step at once: one GEMM over `seq*batch` rows
//!    (the shared micro-kernel; W packed into its panels of the regrouped
//!    columns).
//! 2. The recurrence, per step: for tiles of (batch rows × hidden blocks),
//!    accumulators start at `xw + bias` and gather `R · h_prev` (R packed
//!    k-major: the `G` gate vectors of one block and one `k` are one 64-byte
//!    line), then the gate math finishes the tile in registers and writes
//!    `h` (and `c`). `h` is double-buffered (padded scratch), so a tile never
//!    reads a value another tile of the same step wrote.
//!
//! 3. With per-row lengths (`sequence_lens`), after each step the rows
//!    past their length take back their state from before the step and get
//!    zeros in `Y` (a scalar pass over `batch × hidden`; none without).
//!
//! Gate order (ONNX): LSTM `i, o, f, c`, peepholes `i, o, f`; GRU `z, r, h`.
//! GRU without `linear_before_reset` needs `r ⊙ h_prev` of every unit before
//! the h gate's product, so it runs two phases per step (z and r, then h).

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use kerf_ir::op::{Activation, Direction, Rnn};
use kerf_ir::{DType, Op, UnaryOp};

use super::elementwise::{fsel, unary_f};
use super::matmul::{gemm_core, AView, OutView};
use super::{Kernel, LResult};
use crate::math;
use crate::ukernel::avx2::{rnn_product, RNN_MAX_BLOCKS};

pub mod act;
mod pack;

use pack::{biases, pack, Geo, Packed, Src};

/// The assembled recurrent product of a tile
/// ([`crate::ukernel::avx2::rnn_product`], `zmm` where the target has
/// AVX-512): its sums' buffer (the task's, 16 floats per block of the
/// largest tile).
#[derive(Clone, Copy)]
struct Wide {
    acc: Value,
    zmm: bool,
}

impl Wide {
    /// The sums of a one-row tile of `blocks` blocks over `kk` steps, from
    /// `xw + bias` (the rows at `x` and `bias`, one `zmm` a block), as the
    /// `[block][gate]` vectors of 4 lanes the gate math takes: one call,
    /// through the buffer.
    fn product(
        &self,
        k: &mut Kernel,
        (x, bias): (Value, Value),
        (h, r): (Value, Value),
        (blocks, kk): (usize, usize),
        vty: Type,
    ) -> LResult<Vec<Value>> {
        let code = rnn_product(blocks, kk, self.zmm).map_err(|e| format!("internal: recurrent product: {e}"))?;
        let family = if self.zmm { super::Family::Avx512 } else { super::Family::Avx2 };
        let code = k.code(family, code);
        let sig = k.ukernel_sig(5);
        k.b.ins().call_indirect(sig, code, &[self.acc, h, r, x, bias]);
        Ok((0..4 * blocks).map(|i| k.ld(vty, self.acc, (16 * i) as i32)).collect())
    }
}

/// At most this many vector accumulators per recurrent tile (16 xmm
/// registers: accumulators + a broadcast + a panel vector; DESIGN-NOTES §8).
const MAX_ACC: usize = 12;

/// Unroll factor of the recurrent product's k loop.
const K_UNROLL: usize = 4;

/// Applies an RNN activation to a scalar or vector of type `ty`; an
/// activation the elementwise lowering cannot produce is an error (never
/// silently the identity).
fn act(k: &mut Kernel, ty: Type, a: Activation, x: Value) -> LResult<Value> {
    let u = |k: &mut Kernel, op: UnaryOp, x: Value| {
        unary_f(k, op, ty, x).map_err(|e| format!("recurrent activation {a:?}: {e}"))
    };
    Ok(match a {
        Activation::Sigmoid => act::sigmoid(k, ty, x),
        Activation::Tanh => act::tanh(k, ty, x),
        Activation::Relu => u(k, UnaryOp::Relu, x)?,
        Activation::HardSigmoid(al, be) => u(k, UnaryOp::HardSigmoid { alpha: al, beta: be }, x)?,
        Activation::LeakyRelu(al) => u(k, UnaryOp::LeakyRelu { alpha: al }, x)?,
        Activation::Elu(al) => u(k, UnaryOp::Elu { alpha: al }, x)?,
        Activation::Softsign => u(k, UnaryOp::Softsign, x)?,
        Activation::Softplus => u(k, UnaryOp::Softplus, x)?,
        Activation::Affine(al, be) => {
            let a = k.fsplat(ty, al.get());
            let b = k.fsplat(ty, be.get());
            let t = k.b.ins().fmul(x, a);
            k.b.ins().fadd(t, b)
        }
        Activation::ThresholdedRelu(al) => {
            let a = k.fsplat(ty, al.get());
            let z = k.fsplat(ty, 0.0);
            fsel(k, FloatCC::GreaterThan, x, a, x, z)
        }
        Activation::ScaledTanh(al, be) => {
            let a = k.fsplat(ty, al.get());
            let b = k.fsplat(ty, be.get());
            let t = k.b.ins().fmul(x, b);
            let t = math::tanh(&mut k.b, t);
            k.b.ins().fmul(t, a)
        }
    })
}

fn clip(k: &mut Kernel, ty: Type, c: Option<f32>, x: Value) -> Value {
    match c {
        Some(c) => {
            let lo = k.fsplat(ty, -c);
            let hi = k.fsplat(ty, c);
            let t = k.b.ins().fmax(x, lo);
            k.b.ins().fmin(t, hi)
        }
        None => x,
    }
}

/// Which recurrent op.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lstm,
    Gru,
    Rnn,
}

/// Lowers `LSTM`, `GRU` and `RNN` (f32), per direction as the module docs describe.
pub fn lower(k: &mut Kernel) -> LResult {
    let (r, kind) = match k.node.op.clone() {
        Op::Lstm(r) => (r, Kind::Lstm),
        Op::Gru(r) => (r, Kind::Gru),
        Op::Rnn(r) => (r, Kind::Rnn),
        _ => return Err("not a recurrent op".into()),
    };
    let n_in = if kind == Kind::Lstm { 7 } else { 5 };
    let lens = k.node.inputs.get(n_in).copied();
    for &v in k.node.inputs[..n_in.min(k.node.inputs.len())].iter().chain(&k.node.outputs) {
        let t = k.g.ty(v);
        if t.dtype != DType::F32 {
            return Err(format!("only f32 is supported, got {t} for '{}'", k.g.value(v).name));
        }
    }
    if let Some(l) = lens {
        if k.g.ty(l).dtype != DType::I32 {
            return Err(format!("sequence lengths must be i32, got {}", k.g.ty(l)));
        }
    }
    Rec::new(k, r, kind).lower(k)
}

/// Everything one recurrent kernel needs, set up once.
struct Rec {
    r: Rnn,
    kind: Kind,
    seq: usize,
    batch: usize,
    input: usize,
    dn: usize,
    ng: usize,
    geo: Geo,
    vty: Type,
    lbr: bool,
    coupled: bool,
    clip: Option<f32>,
    /// Index of the per-row lengths input (`sequence_lens`), when given.
    lens: Option<usize>,
}

/// Per-direction pointers used by the step loop.
struct Dir {
    d: usize,
    reverse: bool,
    acts: Vec<Activation>,
    /// `xw` rows, `[seq*batch][nub][G][l]`
    xw: Value,
    /// bias added to `xw`, `[nub][G][l]`
    xb: Packed,
    /// recurrent biases (GRU lbr: the h gate's `Rb`), `[nub][G][l]`
    rb: Packed,
    /// recurrent panels, one per phase, k-major
    rp: Vec<Packed>,
    /// peepholes `[nub][3][l]` (LSTM with non-zero P only)
    peep: Option<Packed>,
}

impl Rec {
    fn new(k: &Kernel, r: Rnn, kind: Kind) -> Rec {
        let xs = k.in_shape(0);
        let (seq, batch, input) = (xs[0], xs[1], xs[2]);
        let dn = r.direction.num_directions();
        let ng = match kind {
            Kind::Lstm => 4,
            Kind::Gru => 3,
            Kind::Rnn => 1,
        };
        let l = k.lanes();
        let h = r.hidden;
        let geo = Geo { h, l, nub: h.div_ceil(l) };
        let lbr = kind == Kind::Gru && r.linear_before_reset;
        // input_forget=1 couples the gates: f = 1 - i (ONNX Runtime's semantics)
        let coupled = kind == Kind::Lstm && r.input_forget;
        let clip = r.clip.map(|c| c.get());
        let n_in = if kind == Kind::Lstm { 7 } else { 5 };
        let lens = (k.node.inputs.len() > n_in).then_some(n_in);
        Rec { r, kind, seq, batch, input, dn, ng, geo, vty: k.vty(), lbr, coupled, clip, lens }
    }

    /// Gate sets of the recurrent phases (indices into the op's gates).
    fn phases(&self) -> Vec<Vec<usize>> {
        match self.kind {
            Kind::Lstm => vec![vec![0, 1, 2, 3]],
            Kind::Rnn => vec![vec![0]],
            Kind::Gru if self.lbr => vec![vec![0, 1, 2]],
            Kind::Gru => vec![vec![0, 1], vec![2]],
        }
    }

    fn lower(&self, k: &mut Kernel) -> LResult {
        let Geo { h, l, nub } = self.geo;
        let (seq, batch, dn, ng) = (self.seq, self.batch, self.dn, self.ng);
        if h == 0 || batch == 0 {
            return Ok(()); // every output is empty
        }
        let nw = nub * ng * l;
        let w = Src::of(k, 1);
        let rr = Src::of(k, 2);
        let bb = Src::of(k, 3);
        let peep_src = if self.kind == Kind::Lstm {
            match k.const_f32(6) {
                Some(p) if p.iter().all(|&x| x == 0.0) => None,
                _ => Some(Src::of(k, 6)),
            }
        } else {
            None
        };
        let xp = k.input(0);
        let h0 = k.input(4);
        let c0 = if self.kind == Kind::Lstm { Some(k.input(5)) } else { None };
        let y = k.output(0);
        let yh = k.output(1);
        let yc = if self.kind == Kind::Lstm { Some(k.output(2)) } else { None };
        let bufs = self.buffers(k, y);
        let all: Vec<usize> = (0..ng).collect();
        let na = match self.kind {
            Kind::Lstm => 3,
            Kind::Gru => 2,
            Kind::Rnn => 1,
        };
        for d in 0..dn {
            let wp = pack(k, &w, self.geo, d * ng * h * self.input, self.input, &all, false);
            let rp: Vec<Packed> =
                self.phases().iter().map(|gs| pack(k, &rr, self.geo, d * ng * h * h, h, gs, true)).collect();
            let (xb, rb) = biases(k, &bb, self.geo, d, ng, self.lbr);
            let peep = peep_src.as_ref().map(|p| pack(k, p, self.geo, d * 3 * h, 1, &[0, 1, 2], false));
            // 1. input projection of every step
            let zero = k.ic(0);
            // X is never written by this kernel (no in-place for recurrent
            // ops), so its loads may be folded into broadcasts (rule 2)
            let ax = AView { ptr: xp, sm: self.input, sk: 1, ro: true };
            let ox = OutView { ptr: bufs.xw, ldo: nw, bias: None };
            gemm_core(k, seq * batch, nw, self.input, ax, zero, (wp.ptr, wp.ro), ox, zero);
            // 2. state init (padded; pad lanes zero)
            self.init_state(k, h0, d, bufs.hbuf);
            if let (Some(c0), Some(cb)) = (c0, bufs.cbuf) {
                self.init_state(k, c0, d, cb);
            }
            let dir = Dir {
                d,
                reverse: self.r.direction == Direction::Reverse || d == 1,
                acts: self.r.activations[d * na..(d + 1) * na].to_vec(),
                xw: bufs.xw,
                xb,
                rb,
                rp,
                peep,
            };
            // 3. the steps; the first error of the step body (the loop
            // builder's closures return ())
            let mut res: LResult = Ok(());
            k.for_n(0, seq as i64, 1, |k, s| res = self.time_step(k, &dir, &bufs, s));
            res?;
            // final state: hbuf[seq & 1] and cbuf into Y_h / Y_c
            let fin = k.add_c(bufs.hbuf, ((seq & 1) * bufs.hbytes) as i64);
            self.store_state(k, fin, d, yh);
            if let (Some(cb), Some(yc)) = (bufs.cbuf, yc) {
                self.store_state(k, cb, d, yc);
            }
        }
        Ok(())
    }

    /// The scratch state of [`Rec::lower`] (and the inputs it needs per step).
    fn buffers(&self, k: &mut Kernel, y: Value) -> Buffers {
        let Geo { l, nub, .. } = self.geo;
        let (hp, nw) = (nub * l, nub * self.ng * l);
        let hbytes = self.batch * hp * 4;
        let hbuf = k.scratch(2 * hbytes);
        let cbuf = if self.kind == Kind::Lstm { Some(k.scratch(hbytes)) } else { None };
        // GRU without lbr: z (activated) and r ⊙ h_prev between the phases
        let (zbuf, rhbuf) =
            if self.phases().len() > 1 { (Some(k.scratch(hbytes)), Some(k.scratch(hbytes))) } else { (None, None) };
        let xw = k.scratch((self.seq * self.batch * nw).max(1) * 4);
        // With per-row lengths: the lengths, and (LSTM) the cell state
        // before each step, restored on rows past their length.
        let lens = self.lens.map(|i| k.input(i));
        let csave = match (lens, cbuf) {
            (Some(_), Some(_)) => Some(k.scratch(hbytes)),
            _ => None,
        };
        Buffers { hbytes, hbuf, cbuf, zbuf, rhbuf, xw, lens, csave, y }
    }

    /// Loop step `s` of direction `dir` (time `t = s`, or `seq − 1 − s`
    /// reversed): the phases from `h` in one half of the double buffer into
    /// the other, Y's rows, and held rows past their length.
    fn time_step(&self, k: &mut Kernel, dir: &Dir, bufs: &Buffers, s: Value) -> LResult {
        let Geo { h, l, nub } = self.geo;
        let (hp, hbytes, y) = (nub * l, bufs.hbytes, bufs.y);
        let t = if dir.reverse {
            let last = k.ic(self.seq as i64 - 1);
            k.b.ins().isub(last, s)
        } else {
            s
        };
        // h double buffer: read hbuf[s & 1], write hbuf[(s + 1) & 1]
        let par = k.b.ins().band_imm_s(s, 1);
        let off = k.b.ins().imul_imm_s(par, hbytes as i64);
        let hcur = k.b.ins().iadd(bufs.hbuf, off);
        let other = k.add_c(bufs.hbuf, hbytes as i64);
        let hnext = k.b.ins().isub(other, off);
        let st = Step { t, hcur, hnext, cbuf: bufs.cbuf, zbuf: bufs.zbuf, rhbuf: bufs.rhbuf, y };
        if let (Some(cb), Some(cs)) = (bufs.cbuf, bufs.csave) {
            k.for_n(0, (self.batch * hp) as i64, 1, |k, i| {
                let v = k.ld_at(types::F32, cb, i, 4, 0);
                k.st_at(v, cs, i, 4, 0);
            });
        }
        let mut res = Ok(());
        for (phase, gs) in self.phases().iter().enumerate() {
            if res.is_ok() {
                res = self.phase(k, dir, &st, phase, gs);
            }
        }
        if h % l != 0 {
            // Y rows are not padded: copy the valid units
            k.for_n(0, self.batch as i64, 1, |k, b| {
                let yrow = self.y_row(k, y, t, dir.d, b);
                let so = k.b.ins().imul_imm_s(b, hp as i64);
                let hrow = k.addr(hnext, so, 4);
                k.for_n(0, h as i64, 1, |k, u| {
                    let v = k.ld_at(types::F32, hrow, u, 4, 0);
                    k.st_at(v, yrow, u, 4, 0);
                });
            });
        }
        if let Some(lp) = bufs.lens {
            self.hold_finished_rows(k, &st, dir.d, lp, bufs.csave);
        }
        res
    }

    /// After step `st.t`: every batch row `b` with `t >= lens[b]` keeps its
    /// state (`h` from before the step, `c` from `csave`) and gets zeros in
    /// `Y` — so a negative length masks every step and one past `seq` none.
    fn hold_finished_rows(&self, k: &mut Kernel, st: &Step, d: usize, lens: Value, csave: Option<Value>) {
        let Geo { h, l, nub } = self.geo;
        let hp = nub * l;
        k.for_n(0, self.batch as i64, 1, |k, b| {
            let len = k.ld_at(types::I32, lens, b, 4, 0);
            let len = k.b.ins().sextend(types::I64, len);
            let live = k.b.ins().icmp(cranelift_codegen::ir::condcodes::IntCC::SignedLessThan, st.t, len);
            let yrow = self.y_row(k, st.y, st.t, d, b);
            let so = k.b.ins().imul_imm_s(b, hp as i64);
            let hprev = k.addr(st.hcur, so, 4);
            let hnext = k.addr(st.hnext, so, 4);
            let cpair = match (st.cbuf, csave) {
                (Some(c), Some(cs)) => Some((k.addr(c, so, 4), k.addr(cs, so, 4))),
                _ => None,
            };
            k.for_n(0, h as i64, 1, |k, u| {
                let keep = |k: &mut Kernel, new_p: Value, old_p: Value| {
                    let new = k.ld_at(types::F32, new_p, u, 4, 0);
                    let old = k.ld_at(types::F32, old_p, u, 4, 0);
                    let v = k.b.ins().select(live, new, old);
                    k.st_at(v, new_p, u, 4, 0);
                };
                keep(k, hnext, hprev);
                if let Some((c, cs)) = cpair {
                    keep(k, c, cs);
                }
                let yv = k.ld_at(types::F32, yrow, u, 4, 0);
                let z = k.fc(0.0);
                let yv = k.b.ins().select(live, yv, z);
                k.st_at(yv, yrow, u, 4, 0);
            });
        });
    }

    /// `buf[b][u] = src[d][b][u]` for `u < h`, zero for the padded units.
    fn init_state(&self, k: &mut Kernel, src: Value, d: usize, buf: Value) {
        let Geo { h, l, nub } = self.geo;
        let hp = nub * l;
        k.for_n(0, self.batch as i64, 1, |k, b| {
            let so = k.b.ins().imul_imm_s(b, h as i64);
            let so = k.b.ins().iadd_imm_s(so, (d * self.batch * h) as i64);
            let sp = k.addr(src, so, 4);
            let bo = k.b.ins().imul_imm_s(b, hp as i64);
            let bp = k.addr(buf, bo, 4);
            k.for_n(0, h as i64, 1, |k, u| {
                let v = k.ld_at(types::F32, sp, u, 4, 0);
                k.st_at(v, bp, u, 4, 0);
            });
            for u in h..hp {
                let z = k.fc(0.0);
                k.st(z, bp, (u * 4) as i32);
            }
        });
    }

    /// `dst[d][b][u] = buf[b][u]` for `u < h`.
    fn store_state(&self, k: &mut Kernel, buf: Value, d: usize, dst: Value) {
        let Geo { h, l, nub } = self.geo;
        let hp = nub * l;
        k.for_n(0, self.batch as i64, 1, |k, b| {
            let so = k.b.ins().imul_imm_s(b, h as i64);
            let so = k.b.ins().iadd_imm_s(so, (d * self.batch * h) as i64);
            let dp = k.addr(dst, so, 4);
            let bo = k.b.ins().imul_imm_s(b, hp as i64);
            let bp = k.addr(buf, bo, 4);
            k.for_n(0, h as i64, 1, |k, u| {
                let v = k.ld_at(types::F32, bp, u, 4, 0);
                k.st_at(v, dp, u, 4, 0);
            });
        });
    }

    /// Start of `Y[t][d][b][..]`.
    fn y_row(&self, k: &mut Kernel, y: Value, t: Value, d: usize, b: Value) -> Value {
        let yi = k.b.ins().imul_imm_s(t, self.dn as i64);
        let yi = k.b.ins().iadd_imm_s(yi, d as i64);
        let yi = k.b.ins().imul_imm_s(yi, self.batch as i64);
        let yi = k.b.ins().iadd(yi, b);
        let yi = k.b.ins().imul_imm_s(yi, self.geo.h as i64);
        k.addr(y, yi, 4)
    }

    /// One recurrent phase of one step: tiles of `rows` batch rows × `tb`
    /// hidden blocks.
    fn phase(&self, k: &mut Kernel, dir: &Dir, st: &Step, phase: usize, gs: &[usize]) -> LResult {
        let ns = gs.len();
        let nub = self.geo.nub;
        // With AVX2, a block's gate vectors that fill a `zmm` or two `ymm`
        // (LSTM) take the assembled product, one row and up to 24 blocks a
        // tile.
        let wide = k.caps.avx2 && ns * self.geo.l == 16;
        let rows = if self.batch == 1 || wide { 1 } else { self.batch.min(if ns >= 3 { 2 } else { 3 }) };
        let tb = if wide { nub.min(RNN_MAX_BLOCKS) } else { (MAX_ACC / (ns * rows)).clamp(1, nub) };
        let wide = wide.then(|| Wide { acc: k.task_scratch(tb * 64), zmm: k.caps.avx512 });
        let mut res: LResult = Ok(());
        let mut row_tiles = |k: &mut Kernel, rows: usize, b_lo: usize, b_hi: usize| {
            k.for_n(b_lo as i64, b_hi as i64, rows as i64, |k, b0| {
                let groups = nub / tb;
                k.for_n(0, (groups * tb) as i64, tb as i64, |k, ub0| {
                    if res.is_ok() {
                        res = self.tile(k, dir, st, (phase, gs, wide), b0, rows, ub0, tb);
                    }
                });
                if !nub.is_multiple_of(tb) && res.is_ok() {
                    let ub0 = k.ic((groups * tb) as i64);
                    res = self.tile(k, dir, st, (phase, gs, wide), b0, rows, ub0, nub % tb);
                }
            });
        };
        let main = self.batch / rows * rows;
        row_tiles(k, rows, 0, main);
        if main < self.batch {
            row_tiles(k, self.batch - main, main, self.batch);
        }
        res
    }

    /// One tile: accumulators `[row][block][gate]`, then the gate math.
    #[allow(clippy::too_many_arguments)]
    fn tile(
        &self,
        k: &mut Kernel,
        dir: &Dir,
        st: &Step,
        (phase, gs, wide): (usize, &[usize], Option<Wide>),
        b0: Value,
        rows: usize,
        ub0: Value,
        tb: usize,
    ) -> LResult {
        let Geo { h, l, nub } = self.geo;
        let hp = nub * l;
        let ng = self.ng;
        let ns = gs.len();
        let vty = self.vty;
        let nw = nub * ng * l;
        // xw row of (t, b0): (t*batch + b0) * nw; block ub0 at ub0*ng*l
        let tb_ = k.b.ins().imul_imm_s(st.t, self.batch as i64);
        let tb_ = k.b.ins().iadd(tb_, b0);
        let xo = k.b.ins().imul_imm_s(tb_, nw as i64);
        let uo = k.b.ins().imul_imm_s(ub0, (ng * l) as i64);
        let xo = k.b.ins().iadd(xo, uo);
        let xrow = k.addr(dir.xw, xo, 4);
        let xb = k.addr(dir.xb.ptr, uo, 4);
        let rbp = k.addr(dir.rb.ptr, uo, 4);
        let xbf = dir.xb.flags();
        let rbf = dir.rb.flags();
        // accumulator init: xw + bias, except the lbr h gate (Rb_h); the
        // assembled product (LSTM only) starts from xw + bias itself
        let mut init = Vec::with_capacity(rows * tb * ns);
        for r in (0..rows).filter(|_| wide.is_none()) {
            for bi in 0..tb {
                for &g in gs {
                    let c = ((bi * ng + g) * l) as i32;
                    let v = if self.lbr && g == 2 {
                        k.b.ins().load(vty, rbf, rbp, c * 4)
                    } else {
                        let x = k.ld(vty, xrow, (r * nw * 4) as i32 + c * 4);
                        let bv = k.b.ins().load(vty, xbf, xb, c * 4);
                        k.b.ins().fadd(x, bv)
                    };
                    init.push(v);
                }
            }
        }
        // the A operand: h_prev (or r ⊙ h_prev in the GRU's second phase)
        let a_base = if phase == 1 { st.rhbuf.unwrap_or(st.hcur) } else { st.hcur };
        let bo = k.b.ins().imul_imm_s(b0, (hp * 4) as i64);
        let abase = k.b.ins().iadd(a_base, bo);
        let rp = dir.rp[phase];
        let rf = rp.flags();
        let po = k.b.ins().imul_imm_s(ub0, (h * ns * l * 4) as i64);
        let pbase = k.b.ins().iadd(rp.ptr, po);
        let step = |k: &mut Kernel, kv: Value, koff: usize, accs: &[Value]| -> Vec<Value> {
            let bp = k.addr(pbase, kv, (ns * l * 4) as i64);
            let ap = k.addr(abase, kv, 4);
            let avs: Vec<Value> = (0..rows)
                .map(|r| {
                    let a = k.ld(types::F32, ap, ((r * hp + koff) * 4) as i32);
                    k.widen(vty, a)
                })
                .collect();
            // one panel vector per (block, gate), reused by every row
            let mut bvs = Vec::with_capacity(tb * ns);
            for bi in 0..tb {
                for gi in 0..ns {
                    let off = ((bi * h * ns + koff * ns + gi) * l * 4) as i32;
                    bvs.push(k.b.ins().load(vty, rf, bp, off));
                }
            }
            // accumulator order is [row][block][gate]
            let mut out = Vec::with_capacity(accs.len());
            for (r, &av) in avs.iter().enumerate() {
                for (j, &bv) in bvs.iter().enumerate() {
                    // the single-use panel vector first (DESIGN-NOTES §8 rule 3):
                    // it folds into `vfmadd231ps acc, a, [mem]`
                    out.push(k.fmadd(bv, av, accs[r * tb * ns + j]));
                }
            }
            out
        };
        let accs = match wide {
            Some(w) => w.product(k, (xrow, xb), (abase, pbase), (tb, h), vty)?,
            None => {
                // unrolled 4x: measured ~8% faster than 2x on the 12-accumulator
                // LSTM tile (fewer back-edge accumulator moves per k)
                let un = K_UNROLL;
                let even = h / un * un;
                let mut accs = k.for_acc_n(0, even as i64, un as i64, &init, |k, kv, accs| {
                    let mut a = accs.to_vec();
                    for u in 0..un {
                        a = step(k, kv, u, &a);
                    }
                    a
                });
                for kx in even..h {
                    let kv = k.ic(kx as i64);
                    accs = step(k, kv, 0, &accs);
                }
                accs
            }
        };
        let at = TileAt { b0, rows, ub0, tb, xrow, xb, xbf };
        self.gates(k, dir, st, (phase, ns), &accs, &at)
    }

    /// The gate math of a tile per (row, block) on its accumulators
    /// (`[row][block][gate]`): the cell's new state and output, stored to
    /// the next state and, when the hidden size is whole vectors, to Y; in
    /// the GRU's first phase z and r ⊙ h_prev for the second.
    fn gates(
        &self,
        k: &mut Kernel,
        dir: &Dir,
        st: &Step,
        (phase, ns): (usize, usize),
        accs: &[Value],
        at: &TileAt,
    ) -> LResult {
        let Geo { h, l, nub } = self.geo;
        let (hp, ng, vty) = (nub * l, self.ng, self.vty);
        let nw = nub * ng * l;
        let TileAt { b0, rows, ub0, tb, xrow, xb, xbf } = *at;
        for r in 0..rows {
            let b = k.b.ins().iadd_imm_s(b0, r as i64);
            let so = k.b.ins().imul_imm_s(b, hp as i64);
            let uo = k.b.ins().imul_imm_s(ub0, l as i64);
            let e = k.b.ins().iadd(so, uo);
            let hprev = k.addr(st.hcur, e, 4);
            let hnext = k.addr(st.hnext, e, 4);
            let yrow = if h % l == 0 {
                let yr = self.y_row(k, st.y, st.t, dir.d, b);
                Some(k.addr(yr, uo, 4))
            } else {
                None
            };
            for bi in 0..tb {
                let a = &accs[(r * tb + bi) * ns..(r * tb + bi + 1) * ns];
                let uoff = (bi * l * 4) as i32;
                let xoff = (r * nw * 4 + bi * ng * l * 4) as i32;
                let hv = match (self.kind, phase) {
                    (Kind::Lstm, _) => {
                        let cbuf = st.cbuf.unwrap_or(st.hcur);
                        let cp = k.addr(cbuf, e, 4);
                        let cprev = k.ld(vty, cp, uoff);
                        let pb = dir.peep.map(|p| {
                            let pp = k.addr(p.ptr, ub0, (3 * l * 4) as i64);
                            (pp, p.flags())
                        });
                        let c = self.lstm_cell(k, dir, a, cprev, pb, bi)?;
                        k.st(c.0, cp, uoff);
                        c.1
                    }
                    (Kind::Rnn, _) => {
                        let s = clip(k, vty, self.clip, a[0]);
                        act(k, vty, dir.acts[0], s)?
                    }
                    (Kind::Gru, 0) if !self.lbr => {
                        // phase 1: z and r ⊙ h_prev for phase 2
                        let z = clip(k, vty, self.clip, a[0]);
                        let z = act(k, vty, dir.acts[0], z)?;
                        let rv = clip(k, vty, self.clip, a[1]);
                        let rv = act(k, vty, dir.acts[0], rv)?;
                        let hp_ = k.ld(vty, hprev, uoff);
                        let rh = k.b.ins().fmul(rv, hp_);
                        if let (Some(zb), Some(rhb)) = (st.zbuf, st.rhbuf) {
                            let zp = k.addr(zb, e, 4);
                            k.st(z, zp, uoff);
                            let rp_ = k.addr(rhb, e, 4);
                            k.st(rh, rp_, uoff);
                        }
                        continue;
                    }
                    (Kind::Gru, _) => {
                        let (z, hh) = if self.lbr {
                            let z = clip(k, vty, self.clip, a[0]);
                            let z = act(k, vty, dir.acts[0], z)?;
                            let rv = clip(k, vty, self.clip, a[1]);
                            let rv = act(k, vty, dir.acts[0], rv)?;
                            // h gate: xw_h + Wb_h + r * (R_h·h + Rb_h)
                            let c = ((bi * ng + 2) * l * 4) as i32;
                            let x = k.ld(vty, xrow, xoff + 2 * (l * 4) as i32);
                            let bv = k.b.ins().load(vty, xbf, xb, c);
                            let xv = k.b.ins().fadd(x, bv);
                            let s = k.fmadd(rv, a[2], xv);
                            (z, s)
                        } else {
                            let zb = st.zbuf.unwrap_or(st.hcur);
                            let zp = k.addr(zb, e, 4);
                            (k.ld(vty, zp, uoff), a[0])
                        };
                        let hh = clip(k, vty, self.clip, hh);
                        let hh = act(k, vty, dir.acts[1], hh)?;
                        let hp_ = k.ld(vty, hprev, uoff);
                        // (1 - z) * hh + z * h_prev = hh + z * (h_prev - hh)
                        let df = k.b.ins().fsub(hp_, hh);
                        k.fmadd(z, df, hh)
                    }
                };
                k.st(hv, hnext, uoff);
                if let Some(yr) = yrow {
                    k.st(hv, yr, uoff);
                }
            }
        }
        Ok(())
    }

    /// LSTM cell on one block: returns (c, h).
    fn lstm_cell(
        &self,
        k: &mut Kernel,
        dir: &Dir,
        a: &[Value],
        cprev: Value,
        peep: Option<(Value, MemFlagsData)>,
        bi: usize,
    ) -> LResult<(Value, Value)> {
        let vty = self.vty;
        let l = self.geo.l;
        let acts = &dir.acts;
        let p =
            |k: &mut Kernel, g: usize| peep.map(|(pp, f)| k.b.ins().load(vty, f, pp, (((bi * 3 + g) * l) * 4) as i32));
        let (pi, po, pf) = (p(k, 0), p(k, 1), p(k, 2));
        let with_peep = |k: &mut Kernel, pv: Option<Value>, c: Value, x: Value| match pv {
            Some(pv) => k.fmadd(pv, c, x),
            None => x,
        };
        let i = with_peep(k, pi, cprev, a[0]);
        let i = clip(k, vty, self.clip, i);
        let i = act(k, vty, acts[0], i)?;
        let f = if self.coupled {
            let one = k.fsplat(vty, 1.0);
            k.b.ins().fsub(one, i)
        } else {
            let f = with_peep(k, pf, cprev, a[2]);
            let f = clip(k, vty, self.clip, f);
            act(k, vty, acts[0], f)?
        };
        let cc = clip(k, vty, self.clip, a[3]);
        let cc = act(k, vty, acts[1], cc)?;
        let ic = k.b.ins().fmul(i, cc);
        let c = k.fmadd(f, cprev, ic);
        let o = with_peep(k, po, c, a[1]);
        let o = clip(k, vty, self.clip, o);
        let o = act(k, vty, acts[0], o)?;
        let hc = act(k, vty, acts[2], c)?;
        Ok((c, k.b.ins().fmul(o, hc)))
    }
}

/// Where an RNN tile is: batch rows `b0..b0 + rows`, hidden blocks
/// `ub0..ub0 + tb`; its row of xW (`xrow`) and the input bias at the block
/// (`xb`, loaded with `xbf`).
#[derive(Clone, Copy)]
struct TileAt {
    b0: Value,
    rows: usize,
    ub0: Value,
    tb: usize,
    xrow: Value,
    xb: Value,
    xbf: MemFlagsData,
}

/// The scratch buffers of a recurrent kernel ([`Rec::buffers`]).
struct Buffers {
    /// Bytes of one state (`batch` padded rows).
    hbytes: usize,
    /// `h`, double-buffered (`2 · hbytes`).
    hbuf: Value,
    /// LSTM: the cell state.
    cbuf: Option<Value>,
    /// GRU without `linear_before_reset`: z and r ⊙ h between the phases.
    zbuf: Option<Value>,
    rhbuf: Option<Value>,
    /// The input projection of every step.
    xw: Value,
    /// The per-row lengths (an input), if any.
    lens: Option<Value>,
    /// LSTM with lengths: the cell state before the step.
    csave: Option<Value>,
    /// The Y output.
    y: Value,
}

/// Per-step values.
struct Step {
    t: Value,
    hcur: Value,
    hnext: Value,
    cbuf: Option<Value>,
    zbuf: Option<Value>,
    rhbuf: Option<Value>,
    y: Value,
}
