//! The pattern-sparse convs' register tile on AArch64
//! ([`crate::ukernel::pattern::PatternTile`] with 4-pixel vectors): f32
//! taps through `fmla` by element, byte quads ([`Elem::QuadsSdot`])
//! through `sdot` by element, the epilogue in the tile, the operations of
//! the x86 tiles ([`crate::ukernel::avx2::pattern_tile`]) in their order.
//!
//! **Registers.** Arguments `x0` out, `x1` src, `x2` program, `x3` bias
//! (f32) or the channel's epilogue-table row (quads), `x4` residual; `x5`
//! a kind's entry count, `x6` an entry's offset, `x9` its input base,
//! `x10`–`x11` addresses and lanes. Accumulators `v16`–`v31`, weights
//! `v0`–`v3`, input vectors `v4`–`v7` (in turn), the epilogue's constants
//! `v3`–`v7`. No stack, nothing callee-saved ([`super`]'s leaf ABI).

use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

use crate::ukernel::epi::TileEpi;
use crate::ukernel::pattern::{Elem, EntryKind, PatternTile};

type Asm = VecAssembler<Aarch64Relocation>;

/// Pixels per vector of the AArch64 tiles.
pub const PATTERN_LANES: usize = 4;

/// Most bytes a tile addresses from one base (`movz`/`movk` of 32 bits).
const MAX_OFFSET: usize = u32::MAX as usize;

/// Machine code of `t` (4 lanes, [`PatternTile::fits`], a clamp whose
/// selects equal `fmax`/`fmin`,
/// [`crate::ukernel::epi::Clamp::selects_equal_fmax_fmin`], which is all
/// any lowering builds) with the arguments (AAPCS64 order) of the x86
/// tile: `out`, `src`, `prog`, `bias` (or the table row), `residual`. Per
/// pixel: `acc = bias` (f32), `0` (quads) or the output (`accumulate`);
/// for kind, for entry, for tap: `acc += w·x` (one `fmla` or one `sdot`);
/// then the epilogue: for quads `f32(acc − corr) · scale + bias`, the
/// residual, the clamp or HardSwish.
pub fn pattern_tile(t: &PatternTile) -> Result<Vec<u8>, String> {
    if t.lanes != PATTERN_LANES
        || !t.fits()
        || t.quant.is_some()
        || t.res_u8.is_some()
        || !matches!(t.elem, Elem::F32 | Elem::QuadsSdot)
    {
        return Err(format!("AArch64 pattern tile: {t:?} does not fit"));
    }
    if t.epi.and_then(|e| e.clamp).is_some_and(|c| !c.selects_equal_fmax_fmin()) {
        return Err(format!("AArch64 pattern tile: clamp {:?} (fmax/fmin would differ from the selects)", t.epi));
    }
    // entry steps are `add` immediates (12 bits); offsets 32-bit constants
    let span = (t.rows + 2 * PatternTile::MAX_TAPS) * t.in_row.max(t.out_row) + 16 * t.vecs;
    if t.kinds.iter().any(|k| k.entry_bytes() > 4095) || span > MAX_OFFSET {
        return Err(format!("AArch64 pattern tile: entries or rows too large: {t:?}"));
    }
    let mut a = Asm::new(0);
    let tile = Tile { t, accs: t.rows * t.vecs };
    tile.start(&mut a);
    for kind in &t.kinds {
        tile.kind_loop(&mut a, kind);
    }
    if let Some(epi) = &t.epi {
        tile.epilogue(&mut a, epi);
    }
    for (r, v, lanes) in tile.vectors() {
        store_part(&mut a, tile.acc(r, v), 0, r * t.out_row + 16 * v, lanes);
    }
    dynasm!(a ; .arch aarch64 ; ret);
    a.finalize().map_err(|e| format!("AArch64 pattern tile: {e}"))
}

/// A tile being assembled.
struct Tile<'a> {
    t: &'a PatternTile,
    accs: usize,
}

impl Tile<'_> {
    /// The accumulator of row `r`, vector `v`.
    fn acc(&self, r: usize, v: usize) -> u8 {
        (16 + r * self.t.vecs + v) as u8
    }

    /// Every (row, vector, lanes stored) of the tile.
    fn vectors(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let t = self.t;
        (0..t.rows).flat_map(move |r| {
            (0..t.vecs).map(move |v| (r, v, if v + 1 == t.vecs { t.last_lanes } else { PATTERN_LANES }))
        })
    }

    /// The accumulators' first values.
    fn start(&self, a: &mut Asm) {
        let t = self.t;
        if !t.accumulate && t.elem == Elem::F32 {
            dynasm!(a ; .arch aarch64 ; ld1r {v5.s4}, [x3]);
        }
        for (r, v, lanes) in self.vectors() {
            let acc = self.acc(r, v);
            match (t.accumulate, t.elem) {
                (true, _) => load_part(a, acc, 0, r * t.out_row + 16 * v, lanes),
                (false, Elem::F32) => dynasm!(a ; .arch aarch64 ; mov V(acc).b16, v5.b16),
                (false, _) => dynasm!(a ; .arch aarch64 ; movi V(acc).s4, #0),
            }
        }
    }

    /// One kind's entries: the count from the program, then each entry.
    fn kind_loop(&self, a: &mut Asm, kind: &EntryKind) {
        let (top, done) = (a.new_dynamic_label(), a.new_dynamic_label());
        let bytes = kind.entry_bytes() as u32;
        dynasm!(a
            ; .arch aarch64
            ; ldr x5, [x2], #8
            ; cbz x5, =>done
            ; =>top
        );
        match kind {
            EntryKind::Column(rows) => self.column_entry(a, rows),
            EntryKind::Kernel(nt) => self.kernel_entry(a, *nt),
        }
        dynasm!(a
            ; .arch aarch64
            ; add x2, x2, #bytes
            ; subs x5, x5, #1
            ; b.ne =>top
            ; =>done
        );
    }

    /// A column entry (see [`EntryKind::Column`]): one offset, the taps'
    /// weights in `v0`–`v2`, each input row under the tile loaded once
    /// and multiplied into every accumulator row a tap maps it to.
    fn column_entry(&self, a: &mut Asm, rows: &[usize]) {
        let t = self.t;
        let nt = rows.len();
        dynasm!(a ; .arch aarch64 ; ldr w6, [x2] ; add x9, x1, x6);
        for j in 0..nt {
            let at = (4 * (1 + j)) as u32;
            dynasm!(a ; .arch aarch64 ; ldr S(j as u8), [x2, #at]);
        }
        let mut x = XRegs::default();
        for ir in 0..t.rows + rows[nt - 1] {
            let taps: Vec<(usize, usize)> =
                (0..nt).filter(|&j| ir >= rows[j] && ir - rows[j] < t.rows).map(|j| (j, ir - rows[j])).collect();
            if taps.is_empty() {
                continue;
            }
            for v in 0..t.vecs {
                let xr = x.next();
                ldr_q(a, xr, 9, ir * t.in_row + 16 * v);
                for &(j, r) in &taps {
                    mac(a, t.elem, self.acc(r, v), xr, j as u8);
                }
            }
        }
    }

    /// A whole-kernel entry of `nt` taps (see [`EntryKind::Kernel`]): per
    /// tap its offset and weight (`v0`–`v3` in turn), then a load and a
    /// multiply-add per accumulator.
    fn kernel_entry(&self, a: &mut Asm, nt: usize) {
        let t = self.t;
        let mut x = XRegs::default();
        for j in 0..nt {
            let (off, wat, w) = ((4 * j) as u32, (4 * (nt + j)) as u32, (j % 4) as u8);
            dynasm!(a
                ; .arch aarch64
                ; ldr w6, [x2, #off]
                ; add x9, x1, x6
                ; ldr S(w), [x2, #wat]
            );
            for r in 0..t.rows {
                for v in 0..t.vecs {
                    let xr = x.next();
                    ldr_q(a, xr, 9, r * t.in_row + 16 * v);
                    mac(a, t.elem, self.acc(r, v), xr, w);
                }
            }
        }
    }

    /// The epilogue: the sums made real (quads), the residual, the clamp
    /// or HardSwish, in the x86 tiles' order.
    fn epilogue(&self, a: &mut Asm, epi: &TileEpi) {
        let t = self.t;
        let accs = 16..16 + self.accs as u8;
        if t.elem.quads() {
            // the table row: corr (i32), scale, bias (f32)
            dynasm!(a
                ; .arch aarch64
                ; ld1r {v5.s4}, [x3]
                ; add x10, x3, #4
                ; ld1r {v6.s4}, [x10]
                ; add x10, x3, #8
                ; ld1r {v7.s4}, [x10]
            );
            for ac in accs.clone() {
                dynasm!(a
                    ; .arch aarch64
                    ; sub V(ac).s4, V(ac).s4, v5.s4
                    ; scvtf V(ac).s4, V(ac).s4
                    ; fmul V(ac).s4, V(ac).s4, v6.s4
                    ; fadd V(ac).s4, V(ac).s4, v7.s4
                );
            }
        }
        if epi.residual {
            for (r, v, lanes) in self.vectors() {
                let ac = self.acc(r, v);
                load_part(a, 5, 4, r * t.out_row + 16 * v, lanes);
                dynasm!(a ; .arch aarch64 ; fadd V(ac).s4, V(ac).s4, v5.s4);
            }
        }
        if let Some(c) = epi.clamp {
            splat(a, 5, c.lo);
            for ac in accs.clone() {
                dynasm!(a ; .arch aarch64 ; fmax V(ac).s4, V(ac).s4, v5.s4);
            }
            if let Some(hi) = c.hi {
                splat(a, 6, hi);
                for ac in accs.clone() {
                    dynasm!(a ; .arch aarch64 ; fmin V(ac).s4, V(ac).s4, v6.s4);
                }
            }
        }
        if epi.hardswish {
            // t = min(max(acc·(1/6) + 0.5, 0), 1) in v3, then acc·t
            splat(a, 4, 1.0 / 6.0);
            splat(a, 5, 0.5);
            splat(a, 6, 1.0);
            dynasm!(a ; .arch aarch64 ; movi v7.s4, #0);
            for ac in accs {
                dynasm!(a
                    ; .arch aarch64
                    ; fmul v3.s4, V(ac).s4, v4.s4
                    ; fadd v3.s4, v3.s4, v5.s4
                    ; fmax v3.s4, v3.s4, v7.s4
                    ; fmin v3.s4, v3.s4, v6.s4
                    ; fmul V(ac).s4, V(ac).s4, v3.s4
                );
            }
        }
    }
}

/// The input vectors' registers, `v4`–`v7` in turn (consecutive loads do
/// not wait for each other's multiply-adds).
#[derive(Default)]
struct XRegs(u8);

impl XRegs {
    fn next(&mut self) -> u8 {
        self.0 = (self.0 + 1) % 4;
        4 + self.0
    }
}

/// `acc += w[0] · x`: an f32 `fmla` or an `sdot` of four byte pairs per
/// lane, by element (the tap's weight, or quad, in lane 0 of `w`).
fn mac(a: &mut Asm, elem: Elem, acc: u8, x: u8, w: u8) {
    match elem {
        Elem::F32 => dynasm!(a ; .arch aarch64 ; fmla V(acc).s4, V(x).s4, V(w).s[0]),
        _ => dynasm!(a ; .arch aarch64 ; sdot V(acc).s4, V(x).b16, V(w).b4[0]),
    }
}

/// `x10 = value` (`movz`/`movk`).
fn mov_x10(a: &mut Asm, value: usize) {
    let (lo, hi) = ((value & 0xffff) as u32, ((value >> 16) & 0xffff) as u32);
    dynasm!(a ; .arch aarch64 ; movz x10, #lo);
    if hi != 0 {
        dynasm!(a ; .arch aarch64 ; movk x10, #hi, lsl #16);
    }
}

/// `at` as a `q` load's or store's scaled immediate where it encodes (a
/// multiple of 16 below 64 KiB); else `None`, with `x10 = at` for the
/// register-offset form.
fn q_offset(a: &mut Asm, at: usize) -> Option<u32> {
    if at.is_multiple_of(16) && at < 16 << 12 {
        return Some(at as u32);
    }
    mov_x10(a, at);
    None
}

/// `q = ` the 16 bytes at `x(base) + at` ([`q_offset`]).
fn ldr_q(a: &mut Asm, q: u8, base: u8, at: usize) {
    match q_offset(a, at) {
        Some(at) => dynasm!(a ; .arch aarch64 ; ldr Q(q), [X(base), #at]),
        None => dynasm!(a ; .arch aarch64 ; ldr Q(q), [X(base), x10]),
    }
}

/// Stores `q` at `x(base) + at` ([`q_offset`]).
fn str_q(a: &mut Asm, q: u8, base: u8, at: usize) {
    match q_offset(a, at) {
        Some(at) => dynasm!(a ; .arch aarch64 ; str Q(q), [X(base), #at]),
        None => dynasm!(a ; .arch aarch64 ; str Q(q), [X(base), x10]),
    }
}

/// `x10 = x(base) + at`.
fn address(a: &mut Asm, base: u8, at: usize) {
    mov_x10(a, at);
    dynasm!(a ; .arch aarch64 ; add x10, X(base), x10);
}

/// `q = ` the first `lanes` values at `x(base) + at`, the others zero
/// (nothing past them read).
fn load_part(a: &mut Asm, q: u8, base: u8, at: usize, lanes: usize) {
    if lanes == PATTERN_LANES {
        return ldr_q(a, q, base, at);
    }
    address(a, base, at);
    dynasm!(a ; .arch aarch64 ; movi V(q).s4, #0);
    for i in 0..lanes {
        let (lane, off) = (i as u32, (4 * i) as u32);
        dynasm!(a ; .arch aarch64 ; ldr w11, [x10, #off] ; mov V(q).s[lane], w11);
    }
}

/// Stores the first `lanes` values of `q` at `x(base) + at` (nothing past
/// them written).
fn store_part(a: &mut Asm, q: u8, base: u8, at: usize, lanes: usize) {
    if lanes == PATTERN_LANES {
        return str_q(a, q, base, at);
    }
    address(a, base, at);
    for i in 0..lanes {
        let (lane, off) = (i as u32, (4 * i) as u32);
        dynasm!(a ; .arch aarch64 ; mov w11, V(q).s[lane] ; str w11, [x10, #off]);
    }
}

/// `v(q) = [value; 4]` through `w11`.
fn splat(a: &mut Asm, q: u8, value: f32) {
    let bits = value.to_bits();
    let (lo, hi) = (bits & 0xffff, bits >> 16);
    dynasm!(a
        ; .arch aarch64
        ; movz w11, #lo
        ; movk w11, #hi, lsl #16
        ; dup V(q).s4, w11
    );
}
