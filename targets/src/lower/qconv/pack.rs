//! The integer conv's B packing: a unit's pixels as `[k pair][pixel][2]`
//! centred i16 or `[k quad][pixel][4]` raw u8 per K step, by the
//! assembled quad packer (`ukernel::avx2::quad_pack`, or with AVX-512
//! VBMI `ukernel::avx512::quad_pack_windows` where the tap offsets plan
//! it, else `quad_pack_vbmi`) for whole units of byte quads
//! at strides 1 and 2, else by Cranelift vector loads in halves
//! of 8 pixels, or byte by byte.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData, SigRef, Value};

use super::super::loops::mem;
use super::super::{Family, Kernel};
use super::{Dims, Ptrs, Unit};
use crate::ukernel::avx2::{quad_pack, quad_pack_table};
use crate::ukernel::avx512::{quad_pack_vbmi, quad_pack_windows, WindowPlan};

/// B for the unit's `px` pixels, [`Dims::step_bytes`] per K step:
/// `[k pair][pixel][2]` i16 centred values (two 4-pixel `xmm` panels, or
/// one `ymm`), or `[k quad][pixel][4]` raw u8, packed in halves of 8
/// pixels (32 bytes of each step). Pixels past `valid` repeat the last
/// valid one (never stored), or, for the tail products, are not packed:
/// their `valid` pixels are then compacted ([`compact`]). Into `dst`
/// ([`Ptrs::bbuf`], or further on in it for a pair's second unit or a
/// chunk's later units).
pub(super) fn pack_b(k: &mut Kernel, d: &Dims, p: &Ptrs, u: &Unit, xb: Value, valid: usize, dst: Value) {
    let first = k.b.ins().imul_imm_s(u.jp, d.px as i64);
    match p.tiles.as_ref().and_then(|t| t.pack.as_ref()) {
        Some(pack) if valid == d.px => pack.call(k, d, p, (xb, u.jp, first), dst),
        _ => pack_halves(k, d, p, (xb, first), valid, dst),
    }
    if valid < d.px && tail_products(p) {
        compact(k, d, dst, valid);
    }
}

/// Whether a last partial unit runs on the tail products (which read
/// only its valid pixels, compacted).
fn tail_products(p: &Ptrs) -> bool {
    p.tiles.as_ref().is_some_and(|t| t.index.is_some())
}

/// The tail products' B: each K step's first `valid` pixels (4 bytes
/// each) moved to `4·valid` bytes apart, in place. The tail reads only
/// those; left at the tile's [`Dims::step_bytes`] apart, each of its
/// 4-byte reads took a cache line of its own, and B with the weights
/// streamed from L2 bounded it. In place is safe: step `t`'s destination
/// ends at `4·valid·(t + 1) ≤ step_bytes · t` for `t ≥ 1` (`valid ≤ px/2`),
/// below every source not yet read.
fn compact(k: &mut Kernel, d: &Dims, b: Value, valid: usize) {
    debug_assert!(2 * valid <= d.px, "tail products take at most half a unit");
    let (from, to) = (d.step_bytes() as i64, 4 * valid as i64);
    k.for_n(1, d.steps as i64, 1, |k, t| {
        let src = k.addr(b, t, from);
        let dst = k.addr(b, t, to);
        let words: Vec<Value> = (0..valid).map(|i| k.ld(types::I32, src, (4 * i) as i32)).collect();
        for (i, w) in words.into_iter().enumerate() {
            k.st(w, dst, (4 * i) as i32);
        }
    });
}

/// Bytes of one column's entry in [`QuadPack::table`]: 96 of masks and
/// shuffles ([`quad_pack_table`]), the row count (i32), padding.
const PACK_TABLE: usize = 112;

/// The assembled packer of a byte-quad QConv's whole units
/// (`ukernel::avx2::quad_pack`, `ukernel::avx512::quad_pack_windows` or
/// `quad_pack_vbmi`): a table entry per unit of the period of
/// the columns units start at, and the variant for each number of output
/// rows a whole unit spans.
pub(super) struct QuadPack {
    table: Value,
    code: Vec<(usize, Value)>,
    sig: SigRef,
    /// Units after which the columns they start at repeat.
    period: usize,
    /// With the window packer ([`quad_pack_windows`]), its index blob,
    /// which it takes in place of the tap table.
    indices: Option<Value>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl QuadPack {
    /// Where it applies: byte quads (AVX2 units of 8, VNNI units of 16),
    /// strides 1 and 2, an input row step no shorter than the output row's
    /// span, at most 4 rows per unit.
    pub(super) fn new(k: &mut Kernel, d: &Dims, taps: &[i32]) -> Result<Option<QuadPack>, String> {
        let gap = (d.sh * d.w) as i64 - (d.ow * d.sw) as i64;
        if !(k.caps.avx2 && d.quads && (d.sw == 1 || d.sw == 2) && gap >= 0) {
            return Ok(None);
        }
        // unit u starts at column (px·u) mod ow: one entry per unit of the
        // period; the whole units use them (a partial last one packs in halves)
        let period = d.ow / gcd(d.ow, d.px);
        let whole = d.pixels / d.px;
        let mut table = Vec::with_capacity(period * PACK_TABLE);
        let mut used = Vec::new();
        for u in 0..period {
            let (t, segments) = quad_pack_table(d.px * u % d.ow, d.ow, d.px);
            let segments = if gap == 0 { 1 } else { segments };
            if segments > 4 && u < whole {
                return Ok(None);
            }
            table.extend(t);
            table.extend((segments as i32).to_le_bytes());
            table.extend([0u8; PACK_TABLE - 100]);
            if u < whole {
                used.push(segments);
            }
        }
        used.sort_unstable();
        used.dedup();
        let vbmi = k.caps.vbmi && d.px == 16;
        let windows = if vbmi { WindowPlan::new(taps, d.sw) } else { None };
        let mut code = Vec::new();
        for c in used {
            let (family, bytes) = match (&windows, vbmi) {
                (Some(plan), _) => (Family::Avx512, quad_pack_windows(plan, c, gap)),
                (None, true) => (Family::Avx512, quad_pack_vbmi(c, d.sw, gap)),
                (None, false) => (Family::Avx2, quad_pack(d.px, c, d.sw, gap)),
            };
            let bytes = bytes.map_err(|e| format!("internal: quad packer: {e}"))?;
            code.push((c, k.code(family, bytes)));
        }
        let sig = k.ukernel_sig(5);
        let indices = windows.map(|plan| k.blob(plan.index_blob()));
        Ok(Some(QuadPack { table: k.blob(table), code, sig, period, indices }))
    }

    /// Packs the whole unit `jp` (of the image), starting at pixel
    /// `first`: its entry (masks, and the row count at byte 96) picks the
    /// variant.
    fn call(&self, k: &mut Kernel, d: &Dims, p: &Ptrs, (xb, jp, first): (Value, Value, Value), dst: Value) {
        let base = pixel_base(k, d, xb, first, 0);
        let at = k.b.ins().urem_imm_u(jp, self.period as i64);
        let tab = k.addr(self.table, at, PACK_TABLE as i64);
        let n = k.ic(d.steps as i64);
        let args = [base, self.indices.unwrap_or(p.tap), dst, n, tab];
        if let [(_, code)] = self.code[..] {
            k.b.ins().call_indirect(self.sig, code, &args);
            return;
        }
        let count = k.ld_ro(types::I32, tab, 96);
        for &(c, code) in &self.code {
            let this = k.b.ins().icmp_imm_s(IntCC::Equal, count, c as i64);
            k.if_then(this, |k| {
                k.b.ins().call_indirect(self.sig, code, &args);
            });
        }
    }
}

/// [`pack_b`] in halves of 8 pixels, each on its vector or scalar path.
fn pack_halves(k: &mut Kernel, d: &Dims, p: &Ptrs, (xb, first): (Value, Value), valid: usize, to: Value) {
    // the tail products read only the valid pixels
    let tail = valid < d.px && tail_products(p);
    for h in 0..d.px / 8 {
        if tail && 8 * h >= valid {
            break;
        }
        let dst = k.add_c(to, 32 * h as i64);
        pack_half(k, d, (p, dst), (xb, first), 8 * h, valid, tail);
    }
}

/// Pixels `from..from + 8` of the unit into `dst` (each step's half).
/// Eight pixels within one output row (or of a 1x1 conv whose rows join
/// up) take the vector path: at stride 1 they are consecutive bytes of
/// every input row they read, at stride 2 every other byte (with AVX2,
/// whose `pshufb` picks them); the others the scalar one.
fn pack_half(
    k: &mut Kernel,
    d: &Dims,
    (p, dst): (&Ptrs, Value),
    (xb, first): (Value, Value),
    from: usize,
    valid: usize,
    only_valid: bool,
) {
    let vector = valid >= from + 8 && (d.sw == 1 || (d.sw == 2 && k.caps.avx2)) && k.lanes() == 4;
    // a 1x1 stride-1 conv's rows join up (this covers every integer matmul,
    // whose "image" is one column): always consecutive
    if vector && d.sw == 1 && d.sh * d.w == d.ow {
        let base = pixel_base(k, d, xb, first, from);
        return pack_vector(k, d, p, base, dst);
    }
    let count = if only_valid { (valid - from).min(8) } else { 8 };
    let bases: Vec<Value> = (0..count).map(|i| pixel_base(k, d, xb, first, (from + i).min(valid - 1))).collect();
    if !vector || d.ow < 8 {
        return pack_scalar(k, d, p, &bases, dst);
    }
    let at = k.b.ins().iadd_imm_s(first, from as i64);
    let ox = k.b.ins().urem_imm_u(at, d.ow as i64);
    let fits = k.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, ox, (d.ow - 8) as i64);
    let straddles = k.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, ox, (d.ow - 8) as i64);
    k.if_then(fits, |k| pack_vector(k, d, p, bases[0], dst));
    k.if_then(straddles, |k| pack_scalar(k, d, p, &bases, dst));
}

/// Where output pixel `first + i` of the unit reads its first input byte.
fn pixel_base(k: &mut Kernel, d: &Dims, xb: Value, first: Value, i: usize) -> Value {
    let pix = k.b.ins().iadd_imm_s(first, i as i64);
    let oy = k.b.ins().udiv_imm_u(pix, d.ow as i64);
    let ox = k.b.ins().urem_imm_u(pix, d.ow as i64);
    let row = k.b.ins().imul_imm_s(oy, (d.sh * d.w) as i64);
    let col = k.b.ins().imul_imm_s(ox, d.sw as i64);
    let off = k.b.ins().iadd(row, col);
    k.b.ins().iadd(xb, off)
}

/// Per K step: the step's input offsets once, then each of 8 pixels'
/// bytes into `dst`: centred, as i16 (pairs), or as they are (quads).
fn pack_scalar(k: &mut Kernel, d: &Dims, p: &Ptrs, bases: &[Value], dst: Value) {
    let per = d.per_step();
    k.for_n(0, d.steps as i64, 1, |k, t| {
        let tp = k.addr(p.tap, t, 4 * per as i64);
        let offs: Vec<Value> = (0..per)
            .map(|j| {
                let o = k.ld_ro(types::I32, tp, 4 * j as i32);
                k.b.ins().sextend(types::I64, o)
            })
            .collect();
        let dp = k.addr(dst, t, d.step_bytes() as i64);
        for (i, &base) in bases.iter().enumerate() {
            for (j, &o) in offs.iter().enumerate() {
                let a = k.b.ins().iadd(base, o);
                let v = k.b.ins().uload8(types::I32, mem(), a, 0);
                if d.quads {
                    k.b.ins().istore8(mem(), v, dp, (4 * i + j) as i32);
                } else {
                    let c = k.b.ins().iadd_imm_s(v, -i64::from(d.zp));
                    k.b.ins().istore16(mem(), c, dp, (4 * i + 2 * j) as i32);
                }
            }
        }
    });
}

/// The 8 pixels' bytes at K value `j` of step `t`, in the low half of an
/// `i8x16`: at stride 1 one 8-byte load; at stride 2 two (bytes 0–7 and
/// 7–14 of the pixels' span, never past pixel 7's own byte) and a shuffle
/// keeping the even ones.
fn eight_bytes(k: &mut Kernel, d: &Dims, base: Value, tp: Value, j: usize) -> Value {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let o = k.ld_ro(types::I32, tp, 4 * j as i32);
    let o = k.b.ins().sextend(types::I64, o);
    let a = k.b.ins().iadd(base, o);
    let mut load = |at: i32| {
        let bytes = k.b.ins().load(types::I64, mem(), a, at);
        let vec = k.b.ins().scalar_to_vector(types::I64X2, bytes);
        k.b.ins().bitcast(types::I8X16, le, vec)
    };
    if d.sw == 1 {
        return load(0);
    }
    let (lo, hi) = (load(0), load(7));
    // pixels 0–3 at bytes 0, 2, 4, 6 of the first load, 4–7 at bytes 1, 3, 5, 7 of the second
    let mask: Vec<u8> = [0u8, 2, 4, 6, 17, 19, 21, 23].into_iter().chain(0..8).collect();
    let mask = shuffle_mask(k, &mask);
    k.b.ins().shuffle(lo, hi, mask)
}

/// A shuffle mask as an immediate.
pub(in crate::lower) fn shuffle_mask(k: &mut Kernel, mask: &[u8]) -> cranelift_codegen::ir::Immediate {
    k.b.func.dfg.immediates.push(ConstantData::from(mask))
}

/// Per K step: the 8 pixels' bytes of each K value as one 8-byte load,
/// interleaved (`[a0 b0 a1 b1 …]`); pairs are then widened to i16 and
/// centred, quads interleaved once more by 16-bit units (`[a0 b0 c0 d0
/// a1 …]`) and stored as bytes, into `dst`.
fn pack_vector(k: &mut Kernel, d: &Dims, p: &Ptrs, base: Value, dst: Value) {
    if d.quads {
        return pack_vector_quads(k, d, p, base, dst);
    }
    let mask: Vec<u8> = (0..8u8).flat_map(|i| [i, 16 + i]).collect();
    let mask = shuffle_mask(k, &mask);
    let zp = k.b.ins().iconst(types::I16, i64::from(d.zp));
    let zp = k.b.ins().splat(types::I16X8, zp);
    k.for_n(0, d.steps as i64, 1, |k, t| {
        let tp = k.addr(p.tap, t, 8);
        let v = [0, 1].map(|j| eight_bytes(k, d, base, tp, j));
        let z = k.b.ins().shuffle(v[0], v[1], mask);
        let lo = k.b.ins().uwiden_low(z);
        let hi = k.b.ins().uwiden_high(z);
        let lo = k.b.ins().isub(lo, zp);
        let hi = k.b.ins().isub(hi, zp);
        let dp = k.addr(dst, t, d.step_bytes() as i64);
        k.st(lo, dp, 0);
        k.st(hi, dp, 16);
    });
}

/// [`pack_vector`] for byte quads.
fn pack_vector_quads(k: &mut Kernel, d: &Dims, p: &Ptrs, base: Value, dst: Value) {
    let pairs: Vec<u8> = (0..8u8).flat_map(|i| [i, 16 + i]).collect();
    let pairs = shuffle_mask(k, &pairs);
    let halves = [0u8, 8].map(|h| {
        let m: Vec<u8> = (0..4u8).flat_map(|i| [h + 2 * i, h + 2 * i + 1, 16 + h + 2 * i, 17 + h + 2 * i]).collect();
        shuffle_mask(k, &m)
    });
    k.for_n(0, d.steps as i64, 1, |k, t| {
        let tp = k.addr(p.tap, t, 16);
        let v = [0, 1, 2, 3].map(|j| eight_bytes(k, d, base, tp, j));
        let ab = k.b.ins().shuffle(v[0], v[1], pairs);
        let cd = k.b.ins().shuffle(v[2], v[3], pairs);
        let dp = k.addr(dst, t, d.step_bytes() as i64);
        for (h, &mask) in halves.iter().enumerate() {
            let q = k.b.ins().shuffle(ab, cd, mask);
            k.st(q, dp, 16 * h as i32);
        }
    });
}
