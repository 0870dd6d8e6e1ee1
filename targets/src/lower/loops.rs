//! Loop and memory helpers for kernels.
//!
//! Loop shape (DESIGN-NOTES §8 rule 1): a header block whose parameters are
//! the induction variable and carried values tests the bound; the body jumps
//! back with the next values; the exit block reads the *header's*
//! parameters, never the body's results (a do-while shape stops Cranelift
//! from folding loads into their users).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, ConstantData, Endianness, Immediate, InstBuilder, MemFlagsData, Type, Value};

use super::{Kernel, PTR};

/// Flags for loads/stores of activations: never trap, alignment unknown.
pub fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Flags for loads from packed read-only constants (rule 2).
pub fn ro() -> MemFlagsData {
    MemFlagsData::new().with_notrap().with_readonly().with_can_move()
}

/// Signed integer maximum of two index values.
pub fn imax(k: &mut Kernel, a: Value, b: Value) -> Value {
    let c = k.b.ins().icmp(IntCC::SignedGreaterThan, a, b);
    k.b.ins().select(c, a, b)
}
/// Signed integer minimum of two index values.
pub fn imin(k: &mut Kernel, a: Value, b: Value) -> Value {
    let c = k.b.ins().icmp(IntCC::SignedLessThan, a, b);
    k.b.ins().select(c, a, b)
}

impl Kernel<'_, '_> {
    /// An `I64` constant.
    pub fn ic(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }
    /// An `F32` constant.
    pub fn fc(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }
    /// A constant of type `ty` (`F32` or `F32X4`).
    pub fn fsplat(&mut self, ty: Type, v: f32) -> Value {
        let s = self.fc(v);
        self.widen(ty, s)
    }
    /// Splats a scalar to `ty` when `ty` is a vector.
    pub fn widen(&mut self, ty: Type, s: Value) -> Value {
        if ty.is_vector() {
            self.b.ins().splat(ty, s)
        } else {
            s
        }
    }
    /// The immediate of a byte shuffle taking the 4-byte lanes `idx` of two
    /// vectors (`0..L` the first's, `L..2L` the second's).
    pub fn lane_mask(&mut self, idx: &[u8]) -> Immediate {
        let bytes: Vec<u8> = idx.iter().flat_map(|&i| (0..4).map(move |b| 4 * i + b)).collect();
        self.b.func.dfg.immediates.push(ConstantData::from(bytes.as_slice()))
    }
    /// Lanes `idx` (0..=3 of `a`, 4..=7 of `b`) of two `f32x4` vectors.
    /// On x86-64 only the shapes SSE2 has an instruction for
    /// (`unpcklps`/`unpckhps`, or `shufps`: two lanes of `a`, then two of
    /// `b`) are single instructions; Cranelift lowers other masks to
    /// `pshufb`, a library call on the baseline CPU.
    pub fn shuffle_f32(&mut self, a: Value, b: Value, idx: [u8; 4]) -> Value {
        let le = MemFlagsData::new().with_endianness(Endianness::Little);
        let m = self.lane_mask(&idx);
        let (a, b) = (self.b.ins().bitcast(types::I8X16, le, a), self.b.ins().bitcast(types::I8X16, le, b));
        let s = self.b.ins().shuffle(a, b, m);
        self.b.ins().bitcast(types::F32X4, le, s)
    }
    /// Four `f32x4` rows as a 4×4 matrix, transposed into its columns, with
    /// the interleave shuffles every ISA has (SSE2 `unpck{l,h}ps`,
    /// `movlhps`/`movhlps`).
    pub fn transpose4(&mut self, r: [Value; 4]) -> [Value; 4] {
        let lo01 = self.shuffle_f32(r[0], r[1], [0, 4, 1, 5]);
        let hi01 = self.shuffle_f32(r[0], r[1], [2, 6, 3, 7]);
        let lo23 = self.shuffle_f32(r[2], r[3], [0, 4, 1, 5]);
        let hi23 = self.shuffle_f32(r[2], r[3], [2, 6, 3, 7]);
        [
            self.shuffle_f32(lo01, lo23, [0, 1, 4, 5]),
            self.shuffle_f32(lo01, lo23, [2, 3, 6, 7]),
            self.shuffle_f32(hi01, hi23, [0, 1, 4, 5]),
            self.shuffle_f32(hi01, hi23, [2, 3, 6, 7]),
        ]
    }
    /// `base + idx * scale` (idx an I64 value).
    pub fn addr(&mut self, base: Value, idx: Value, scale: i64) -> Value {
        let off = if scale == 1 { idx } else { self.b.ins().imul_imm_s(idx, scale) };
        self.b.ins().iadd(base, off)
    }
    /// `base + c`.
    pub fn add_c(&mut self, base: Value, c: i64) -> Value {
        if c == 0 {
            base
        } else {
            self.b.ins().iadd_imm_s(base, c)
        }
    }
    /// Loads `ty` from `p + off` (byte offset) with the activation flags ([`mem`]).
    pub fn ld(&mut self, ty: Type, p: Value, off: i32) -> Value {
        self.b.ins().load(ty, mem(), p, off)
    }
    /// Loads `ty` from `p + off` in a packed read-only constant ([`ro`] flags).
    pub fn ld_ro(&mut self, ty: Type, p: Value, off: i32) -> Value {
        self.b.ins().load(ty, ro(), p, off)
    }
    /// Stores `v` at `p + off` (byte offset) with the activation flags ([`mem`]).
    pub fn st(&mut self, v: Value, p: Value, off: i32) {
        self.b.ins().store(mem(), v, p, off);
    }
    /// Loads `ty` from `base + idx*scale + off`.
    pub fn ld_at(&mut self, ty: Type, base: Value, idx: Value, scale: i64, off: i32) -> Value {
        let p = self.addr(base, idx, scale);
        self.ld(ty, p, off)
    }
    /// Stores `v` at `base + idx*scale + off`.
    pub fn st_at(&mut self, v: Value, base: Value, idx: Value, scale: i64, off: i32) {
        let p = self.addr(base, idx, scale);
        self.st(v, p, off)
    }

    /// `for i in (lo..hi).step_by(step)` with constant bounds.
    pub fn for_n(&mut self, lo: i64, hi: i64, step: i64, mut body: impl FnMut(&mut Self, Value)) {
        if lo >= hi {
            return;
        }
        if hi - lo <= step {
            let i = self.ic(lo);
            body(self, i);
            return;
        }
        let (l, h) = (self.ic(lo), self.ic(hi));
        self.for_acc(l, h, step, &[], |k, i, _| {
            body(k, i);
            vec![]
        });
    }

    /// `body(k, t, j)` for the `count` steps `t + j` of a row, unrolled:
    /// loop trips of `unroll` steps (`t` the trip's first, `j` the constant
    /// step within it), then the leftover steps with `t` constant. Bodies
    /// compute their addresses from `t` and constant offsets from `j`, so
    /// each trip computes its addresses once (Cranelift recomputes an
    /// address built outside a loop, e.g. a row's start, once per
    /// iteration inside it).
    pub fn for_unrolled(&mut self, count: usize, unroll: usize, body: &mut dyn FnMut(&mut Self, Value, usize)) {
        let looped = if count > unroll { count / unroll * unroll } else { 0 };
        self.for_n(0, looped as i64, unroll as i64, |k, t| {
            for j in 0..unroll {
                body(k, t, j);
            }
        });
        let t = self.ic(looped as i64);
        for j in 0..count - looped {
            body(self, t, j);
        }
    }

    /// `for i in (lo..hi).step_by(step)` with run-time bounds.
    pub fn for_dyn(&mut self, lo: Value, hi: Value, step: i64, mut body: impl FnMut(&mut Self, Value)) {
        self.for_acc(lo, hi, step, &[], |k, i, _| {
            body(k, i);
            vec![]
        });
    }

    /// A counted loop carrying values (accumulators). Returns the carried
    /// values after the loop (read from the header's parameters).
    pub fn for_acc(
        &mut self,
        lo: Value,
        hi: Value,
        step: i64,
        init: &[Value],
        mut body: impl FnMut(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let header = self.b.create_block();
        let body_blk = self.b.create_block();
        let exit = self.b.create_block();
        let tys: Vec<Type> = init.iter().map(|&v| self.b.func.dfg.value_type(v)).collect();
        let i = self.b.append_block_param(header, PTR);
        let accs: Vec<Value> = tys.iter().map(|&t| self.b.append_block_param(header, t)).collect();
        let outs: Vec<Value> = tys.iter().map(|&t| self.b.append_block_param(exit, t)).collect();
        let mut args = vec![lo.into()];
        args.extend(init.iter().map(|&v| cranelift_codegen::ir::BlockArg::from(v)));
        self.b.ins().jump(header, &args);
        self.b.switch_to_block(header);
        let c = self.b.ins().icmp(IntCC::SignedLessThan, i, hi);
        let exit_args: Vec<cranelift_codegen::ir::BlockArg> = accs.iter().map(|&v| v.into()).collect();
        self.b.ins().brif(c, body_blk, &[], exit, &exit_args);
        self.b.switch_to_block(body_blk);
        self.b.seal_block(body_blk);
        let next = body(self, i, &accs);
        let i2 = self.b.ins().iadd_imm_s(i, step);
        let mut back = vec![i2.into()];
        back.extend(next.iter().map(|&v| cranelift_codegen::ir::BlockArg::from(v)));
        self.b.ins().jump(header, &back);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        outs
    }

    /// Constant-bound loop with carried values.
    pub fn for_acc_n(
        &mut self,
        lo: i64,
        hi: i64,
        step: i64,
        init: &[Value],
        body: impl FnMut(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        if lo >= hi {
            return init.to_vec();
        }
        let (l, h) = (self.ic(lo), self.ic(hi));
        self.for_acc(l, h, step, init, body)
    }

    /// Runs `then` when `cond` (an i8 truth value) is nonzero.
    pub fn if_then(&mut self, cond: Value, then: impl FnOnce(&mut Self)) {
        let t = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(cond, t, &[], done, &[]);
        self.b.switch_to_block(t);
        self.b.seal_block(t);
        then(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
        self.b.seal_block(done);
    }

    /// `0 <= v < n` for a signed I64 `v` (one unsigned compare).
    pub fn in_range(&mut self, v: Value, n: i64) -> Value {
        self.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, v, n)
    }

    /// Nested loops over `dims` (outermost first); `body` gets the indices.
    pub fn nest(&mut self, dims: &[usize], body: &mut dyn FnMut(&mut Self, &[Value])) {
        fn rec<'a, 'g>(
            k: &mut Kernel<'a, 'g>,
            dims: &[usize],
            idx: &mut Vec<Value>,
            body: &mut dyn FnMut(&mut Kernel<'a, 'g>, &[Value]),
        ) {
            match dims.split_first() {
                None => body(k, idx),
                Some((&d, rest)) => k.for_n(0, d as i64, 1, |k, i| {
                    idx.push(i);
                    rec(k, rest, idx, body);
                    idx.pop();
                }),
            }
        }
        let mut idx = Vec::new();
        rec(self, dims, &mut idx, body);
    }

    /// `sum(idx[i] * strides[i])` as an I64 value (element units).
    pub fn linear(&mut self, idx: &[Value], strides: &[usize]) -> Value {
        let mut acc: Option<Value> = None;
        for (&i, &s) in idx.iter().zip(strides) {
            if s == 0 {
                continue;
            }
            let t = if s == 1 { i } else { self.b.ins().imul_imm_s(i, s as i64) };
            acc = Some(match acc {
                None => t,
                Some(a) => self.b.ins().iadd(a, t),
            });
        }
        match acc {
            Some(a) => a,
            None => self.ic(0),
        }
    }

    /// Multiply-add `a * b + c`, fused where the target has FMA.
    pub fn fmadd(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.caps.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let m = self.b.ins().fmul(a, b);
            self.b.ins().fadd(m, c)
        }
    }

    /// Horizontal sum of an `f32x4`.
    pub fn hsum(&mut self, v: Value) -> Value {
        let mut s = self.b.ins().extractlane(v, 0);
        for l in 1..4u8 {
            let x = self.b.ins().extractlane(v, l);
            s = self.b.ins().fadd(s, x);
        }
        s
    }
    /// Horizontal max of an `f32x4`.
    pub fn hmax(&mut self, v: Value) -> Value {
        let mut s = self.b.ins().extractlane(v, 0);
        for l in 1..4u8 {
            let x = self.b.ins().extractlane(v, l);
            s = self.b.ins().fmax(s, x);
        }
        s
    }

    /// Vector width to use for f32 data: 4 with SIMD, else 1.
    pub fn lanes(&self) -> usize {
        if self.caps.simd {
            4
        } else {
            1
        }
    }
    /// Vector type for f32 data: `F32X4` with SIMD, else `F32` (matches [`Kernel::lanes`]).
    pub fn vty(&self) -> Type {
        if self.caps.simd {
            types::F32X4
        } else {
            types::F32
        }
    }

    /// Runs `body(k, ty, i)` over `0..n` elements: vector steps of 4 with
    /// `ty = F32X4` (when SIMD is available), then a scalar tail with `F32`.
    pub fn for_vec(&mut self, n: usize, body: &mut dyn FnMut(&mut Self, Type, Value)) {
        self.for_vec_from(0, n, body);
    }

    /// [`Kernel::for_vec`] over `start..n` (vectors from `start`, then the
    /// scalar tail).
    pub fn for_vec_from(&mut self, start: usize, n: usize, body: &mut dyn FnMut(&mut Self, Type, Value)) {
        let l = self.lanes();
        let main = start + n.saturating_sub(start) / l * l;
        let vty = self.vty();
        self.for_n(start as i64, main as i64, l as i64, |k, i| body(k, vty, i));
        if l > 1 {
            self.for_n(main as i64, n as i64, 1, |k, i| body(k, types::F32, i));
        }
    }
}
