//! AArch64 micro-kernels, assembled with `dynasm` (its `aarch64` syntax:
//! nothing is hand-encoded): the instructions Cranelift does not emit,
//! here the `dotprod` extension's `sdot`, in the integer conv's tile
//! ([`sdot_tile`]) and its one-pixel product ([`sdot_gemv`]), the
//! integer conv's tile without `dotprod` (`smull`/`sadalp`: [`mull_tile`]), and the
//! pattern-sparse convs' register tile ([`pattern_tile`]: f32, or byte
//! quads through `sdot`), which keeps a tile's sums in registers across a
//! channel's kept taps as Cranelift's passes cannot.
//!
//! **Leaf ABI (AAPCS64).** Pointer and integer arguments in `x0`–`x7`, no
//! result, no stack, and only caller-saved registers: `x0`–`x17` and the
//! vector registers `v0`–`v7`, `v16`–`v31` (the low halves of `v8`–`v15`
//! are callee-saved, so they are never touched). The code ends in `ret`.
//!
//! **Numerics.** Integer sums are exact, so a tile gives the same i32 as
//! the Cranelift tile it replaces; the offset below is undone by the
//! caller's compile-time correction.

// `dynasm!` converts dynamic register numbers with `.into()`, also from u8
#![allow(clippy::useless_conversion)]

mod pattern;
pub use pattern::{pattern_tile, PATTERN_LANES};

use crate::ukernel::KSteps;
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

/// Output channels of the `sdot` tile: 16 accumulators (two per row) in
/// `v16`–`v31`, leaving `v0`–`v7` to the operands.
pub const SDOT_ROWS: usize = 8;

/// What `dotprod`'s `sdot` adds to every input byte before multiplying:
/// it takes signed bytes only (mixed u8 × s8 is `usdot`, ARMv8.6 i8mm),
/// so the tile flips each u8 input's top bit (`x ^ 0x80 = x − 128` as
/// s8). Sums are `Σ (x − 128)·w`; `(zp − 128) · Σ w` turns them into the
/// op's `Σ (x − zp)·w`.
pub const SDOT_INPUT_OFFSET: i64 = 128;

/// Machine code of the `dotprod` integer tile of [`crate::lower::qconv`]
/// ([`crate::isa::Caps::dotprod`]): `rows` (1..=[`SDOT_ROWS`]) output
/// channels × 8 pixels of i32 sums `Σ (x − 128)·w` over `k` K quads.
///
/// Arguments: `x0` the rows' weight quads (`[k quad][row][4]` s8, `4·rows`
/// bytes per quad), `x1` the pixels' raw u8 quads (`[k quad][pixel][4]`,
/// 32 bytes per quad), `x2` the sums out (`rows × 8` i32, row-major), `x3`
/// `k` (≥ 0). Per K quad: one 32-byte load of B and two `eor`s (the
/// offset), the rows' quads in one to two registers, then per row two
/// `sdot`s by element (pixels 0–3 and 4–7, the row's quad as the
/// element), 16 multiply-adds each. Exact: `|x − 128| ≤ 128`, `|w| ≤
/// 128`, so a lane gains at most `2¹⁶` per K quad and i32 holds the sums
/// of up to 2¹⁵ quads (2¹⁷ K values); past that the sums and the caller's
/// correction wrap together, so the corrected result is still exact
/// wherever the op's own `Σ (x − zp)·w` fits i32.
pub fn sdot_tile(rows: usize, steps: KSteps) -> Result<Vec<u8>, String> {
    if !(1..=SDOT_ROWS).contains(&rows) {
        return Err(format!("sdot tile: {rows} rows (1..={SDOT_ROWS})"));
    }
    let acc = |r: usize, half: usize| (16 + 2 * r + half) as u8;
    let row = |a: &mut Asm, r: usize| {
        let (w, lane) = ((2 + r / 4) as u8, (r % 4) as u32);
        dynasm!(a
            ; .arch aarch64
            ; sdot V(acc(r, 0)).s4, v0.b16, V(w).b4[lane]
            ; sdot V(acc(r, 1)).s4, v1.b16, V(w).b4[lane]
        );
    };
    let store = |a: &mut Asm, r: usize| {
        let off = (32 * r) as i32;
        dynasm!(a ; .arch aarch64 ; stp Q(acc(r, 0)), Q(acc(r, 1)), [x2, #off]);
    };
    quad_tile("sdot tile", (rows, steps), 2, row, store)
}

/// One assembler of this module.
type Asm = VecAssembler<Aarch64Relocation>;

/// The frame of the integer tiles ([`sdot_tile`], [`mull_tile`]): `v4`
/// the input offset in every byte, `per_row` zeroed i32 accumulators per
/// row (`v16 + per_row·r + i`), then per K quad (`x3` of them) its 32
/// input bytes into `v0`/`v1`, flipped by `eor`, and the rows' weight
/// quads into `v2`/`v3` ([`load_rows`]), and `row(a, r)` for each row;
/// after the loop `store(a, r)` for each row, then `ret`. With
/// [`KSteps::Listed`] each quad of A starts with the `u32` byte offset of
/// its 32 input bytes from `x1` (through `x9`/`x10`), as on x86.
fn quad_tile(
    name: &str,
    (rows, steps): (usize, KSteps),
    per_row: usize,
    row: impl Fn(&mut Asm, usize),
    store: impl Fn(&mut Asm, usize),
) -> Result<Vec<u8>, String> {
    let mut a: Asm = VecAssembler::new(0);
    dynasm!(a ; .arch aarch64 ; movi v4.b16, #0x80);
    for acc in 16..16 + per_row * rows {
        dynasm!(a ; .arch aarch64 ; movi V(acc as u8).s4, #0);
    }
    dynasm!(a
        ; .arch aarch64
        ; cbz x3, ->done
        ; ->top:
    );
    match steps {
        KSteps::Dense => dynasm!(a ; .arch aarch64 ; ld1 {v0.b16, v1.b16}, [x1], #32),
        // the step's byte offset into B (`x1` stays put), then its weights
        KSteps::Listed => dynasm!(a
            ; .arch aarch64
            ; ldr w9, [x0], #4
            ; add x10, x1, x9
            ; ld1 {v0.b16, v1.b16}, [x10]
        ),
    }
    dynasm!(a
        ; .arch aarch64
        ; eor v0.b16, v0.b16, v4.b16
        ; eor v1.b16, v1.b16, v4.b16
    );
    load_rows(&mut a, rows);
    (0..rows).for_each(|r| row(&mut a, r));
    dynasm!(a
        ; .arch aarch64
        ; subs x3, x3, #1
        ; b.ne ->top
        ; ->done:
    );
    (0..rows).for_each(|r| store(&mut a, r));
    dynasm!(a ; .arch aarch64 ; ret);
    a.finalize().map_err(|e| format!("{name}: {e}"))
}

/// Output channels of the ARMv8.0 integer tile ([`mull_tile`]): four
/// accumulators per row in `v16`–`v31`.
pub const MULL_ROWS: usize = 4;

/// Machine code of the integer conv's tile on AArch64 without `dotprod`
/// (every AArch64 CPU; [`crate::isa::Caps::neon`]): the contract of
/// [`sdot_tile`] (same arguments and packed layouts, the same i32 sums
/// `Σ (x − 128)·w`, exact) for `rows` (1..=[`MULL_ROWS`]) output channels
/// × 8 pixels, through the widening multiplies every AArch64 has: per K
/// quad and row, the row's weight quad repeated over four pixels (`dup`
/// by element), `smull`/`smull2` of the flipped input bytes (s8 × s8 →
/// i16, at most 2¹⁴ in magnitude: exact) and `sadalp` adding each pair of
/// products into an i32 lane: 4 + 4 instructions per 32 multiply-adds, where
/// Cranelift's 16-bit pairs widen the bytes first and multiply 4 lanes
/// at a time. A pixel's sum lives in two adjacent lanes (taps 0+1 and
/// 2+3) until the end, where `addp` joins them.
pub fn mull_tile(rows: usize, steps: KSteps) -> Result<Vec<u8>, String> {
    if !(1..=MULL_ROWS).contains(&rows) {
        return Err(format!("mull tile: {rows} rows (1..={MULL_ROWS})"));
    }
    // accumulator q of row r: pixels 2q, 2q + 1, two lanes each
    let acc = |r: usize, q: usize| (16 + 4 * r + q) as u8;
    let row = |a: &mut Asm, r: usize| {
        let lane = r as u32;
        dynasm!(a
            ; .arch aarch64
            ; dup v5.s4, v2.s[lane]
            ; smull v6.h8, v0.b8, v5.b8
            ; smull2 v7.h8, v0.b16, v5.b16
            ; sadalp V(acc(r, 0)).s4, v6.h8
            ; sadalp V(acc(r, 1)).s4, v7.h8
            ; smull v6.h8, v1.b8, v5.b8
            ; smull2 v7.h8, v1.b16, v5.b16
            ; sadalp V(acc(r, 2)).s4, v6.h8
            ; sadalp V(acc(r, 3)).s4, v7.h8
        );
    };
    let store = |a: &mut Asm, r: usize| {
        let off = (32 * r) as i32;
        dynasm!(a
            ; .arch aarch64
            ; addp v0.s4, V(acc(r, 0)).s4, V(acc(r, 1)).s4
            ; addp v1.s4, V(acc(r, 2)).s4, V(acc(r, 3)).s4
            ; stp q0, q1, [x2, #off]
        );
    };
    quad_tile("mull tile", (rows, steps), 4, row, store)
}

/// The K quad's weight quads of `rows` rows into `v2` (rows 0–3) and `v3`
/// (rows 4–7), reading exactly `4·rows` bytes (the last block of a weight
/// is no longer) and stepping `x0` past them.
fn load_rows(a: &mut Asm, rows: usize) {
    for g in 0..rows.div_ceil(4) {
        let v = (2 + g) as u8;
        match rows - 4 * g {
            1 => dynasm!(a ; .arch aarch64 ; ldr S(v), [x0], #4),
            2 => dynasm!(a ; .arch aarch64 ; ldr D(v), [x0], #8),
            // a lane load names its register statically
            3 => {
                dynasm!(a ; .arch aarch64 ; ldr D(v), [x0], #8);
                match v {
                    2 => dynasm!(a ; .arch aarch64 ; ld1 {v2.s}[2], [x0], #4),
                    _ => dynasm!(a ; .arch aarch64 ; ld1 {v3.s}[2], [x0], #4),
                }
            }
            _ => dynasm!(a ; .arch aarch64 ; ldr Q(v), [x0], #16),
        }
    }
}

/// Most images per call of [`sdot_gemv`]: one input register each
/// (`v4`–`v6`), beside the offset (`v7`) and four weight registers
/// (`v0`–`v3`); `v8`–`v15` are callee-saved.
pub const SDOT_GEMV_IMAGES_MAX: usize = 3;

/// Accumulators of [`sdot_gemv`] (`v16`–`v31`): `images × blocks` of them.
pub const SDOT_GEMV_ACCS: usize = 16;

/// Machine code of the `dotprod` one-pixel product of
/// [`crate::lower::qconv`] (a `QConv` on one-pixel planes: a classifier
/// head, a product's rows as images), output channels in the lanes:
/// `images` (1..=[`SDOT_GEMV_IMAGES_MAX`]) images × `blocks` blocks of 4
/// channels (`images · blocks ≤` [`SDOT_GEMV_ACCS`]) of i32 sums
/// `Σ (x − 128)·w` (the offset of [`SDOT_INPUT_OFFSET`], undone by the
/// caller's correction as for [`sdot_tile`]; the same bound).
///
/// Arguments: `x0` the weights (`[k quad][channel][4]` s8, `16·blocks`
/// bytes per quad), `x1` the first image's u8 (its K values consecutive;
/// image `i` at `x1 + i·x_stride`), `x2` the sums out (`[image][4·blocks]`
/// i32), `x3` the K quads (≥ 0). Four quads per step: per image one
/// 16-byte load and an `eor` (the offset), then per quad and block one
/// `sdot` by element per image (the block's 4 channel quads against the
/// image's quad, 16 multiply-adds), the weights loaded 4 blocks at a
/// time; the last `k mod 4` quads one at a time (a 4-byte load per image).
/// With [`KSteps::Listed`] (`blocks` in groups of four: 16 channels, the
/// last group possibly shorter) `x3` counts listed quads and each group's
/// weights per step follow its `u32` input offset.
pub fn sdot_gemv(blocks: usize, images: usize, x_stride: usize, steps: KSteps) -> Result<Vec<u8>, String> {
    if !(1..=SDOT_GEMV_IMAGES_MAX).contains(&images) || blocks == 0 || images * blocks > SDOT_GEMV_ACCS {
        return Err(format!("sdot one-pixel product: {images} images × {blocks} blocks"));
    }
    let stride = u32::try_from(x_stride).map_err(|_| format!("sdot one-pixel product: image stride {x_stride}"))?;
    let mut a: Asm = VecAssembler::new(0);
    let acc = |i: usize, b: usize| (16 + i * blocks + b) as u8;
    dynasm!(a ; .arch aarch64 ; movi v7.b16, #0x80 ; mov x4, x1);
    if images > 1 {
        let (lo, hi) = (stride & 0xffff, stride >> 16);
        dynasm!(a ; .arch aarch64 ; movz x9, lo ; movk x9, hi, lsl #16 ; add x5, x4, x9);
    }
    if images > 2 {
        dynasm!(a ; .arch aarch64 ; add x6, x5, x9);
    }
    for i in 0..images {
        for b in 0..blocks {
            dynasm!(a ; .arch aarch64 ; movi V(acc(i, b)).s4, #0);
        }
    }
    if steps == KSteps::Listed {
        gemv_listed(&mut a, blocks, images, &acc);
    } else {
        gemv_dense(&mut a, blocks, images, &acc);
    }
    for i in 0..images {
        for b in 0..blocks {
            let off = (16 * (i * blocks + b)) as u32;
            dynasm!(a ; .arch aarch64 ; str Q(acc(i, b)), [x2, off]);
        }
    }
    dynasm!(a ; .arch aarch64 ; ret);
    a.finalize().map_err(|e| format!("sdot one-pixel product: {e}"))
}

/// [`sdot_gemv`]'s K loop over every quad: four at a time, then the rest
/// one by one.
fn gemv_dense(a: &mut Asm, blocks: usize, images: usize, acc: &dyn Fn(usize, usize) -> u8) {
    // x10: steps of four quads, x11: the quads after them
    dynasm!(a
        ; .arch aarch64
        ; lsr x10, x3, #2
        ; and x11, x3, #3
        ; cbz x10, ->rest
        ; ->four:
    );
    for i in 0..images {
        // image i: its pointer in x(4 + i), its quads in v(4 + i)
        let r = (4 + i) as u8;
        dynasm!(a ; .arch aarch64 ; ldr Q(r), [X(r)], #16 ; eor V(r).b16, V(r).b16, v7.b16);
    }
    for quad in 0..4 {
        gemv_quad(a, blocks, images, quad, acc);
    }
    dynasm!(a
        ; .arch aarch64
        ; subs x10, x10, #1
        ; b.ne ->four
        ; ->rest:
        ; cbz x11, ->done
        ; ->one:
    );
    for i in 0..images {
        let r = (4 + i) as u8;
        dynasm!(a ; .arch aarch64 ; ldr S(r), [X(r)], #4 ; eor V(r).b16, V(r).b16, v7.b16);
    }
    gemv_quad(a, blocks, images, 0, acc);
    dynasm!(a
        ; .arch aarch64
        ; subs x11, x11, #1
        ; b.ne ->one
        ; ->done:
    );
}

/// [`sdot_gemv`]'s K loop over listed quads ([`KSteps::Listed`]): per
/// step and group of four blocks (16 channels, one N:M block) a `u32`
/// byte offset into the images' inputs (`x9`; the image pointers stay
/// put), each image's quad loaded from there, then the group's weights.
fn gemv_listed(a: &mut Asm, blocks: usize, images: usize, acc: &dyn Fn(usize, usize) -> u8) {
    dynasm!(a ; .arch aarch64 ; cbz x3, ->ldone ; ->ltop:);
    for first in (0..blocks).step_by(4) {
        dynasm!(a ; .arch aarch64 ; ldr w9, [x0], #4);
        for i in 0..images {
            let r = (4 + i) as u8;
            dynasm!(a ; .arch aarch64 ; ldr S(r), [X(r), x9] ; eor V(r).b16, V(r).b16, v7.b16);
        }
        gemv_group(a, (first, (blocks - first).min(4)), images, 0, acc);
    }
    dynasm!(a
        ; .arch aarch64
        ; subs x3, x3, #1
        ; b.ne ->ltop
        ; ->ldone:
    );
}

/// One K quad of [`sdot_gemv`]: the blocks' weights, four registers
/// (`v0`–`v3`) at a time from `x0` (stepping it), each against every
/// image's quad `quad` of `v4`–`v6`.
fn gemv_quad(a: &mut Asm, blocks: usize, images: usize, quad: u32, acc: &dyn Fn(usize, usize) -> u8) {
    for first in (0..blocks).step_by(4) {
        gemv_group(a, (first, (blocks - first).min(4)), images, quad, acc);
    }
}

/// `n` (1..=4) blocks from `first` of one K quad: their weights into
/// `v0`–`v3` from `x0` (stepping it), each against every image's quad
/// `quad` of `v4`–`v6`.
fn gemv_group(a: &mut Asm, (first, n): (usize, usize), images: usize, quad: u32, acc: &dyn Fn(usize, usize) -> u8) {
    // a register list names its registers statically
    match n {
        1 => dynasm!(a ; .arch aarch64 ; ld1 {v0.b16}, [x0], #16),
        2 => dynasm!(a ; .arch aarch64 ; ld1 {v0.b16, v1.b16}, [x0], #32),
        3 => dynasm!(a ; .arch aarch64 ; ld1 {v0.b16, v1.b16, v2.b16}, [x0], #48),
        _ => dynasm!(a ; .arch aarch64 ; ld1 {v0.b16, v1.b16, v2.b16, v3.b16}, [x0], #64),
    }
    for j in 0..n {
        for i in 0..images {
            let (w, x) = (j as u8, (4 + i) as u8);
            dynasm!(a ; .arch aarch64 ; sdot V(acc(i, first + j)).s4, V(w).b16, V(x).b4[quad]);
        }
    }
}
