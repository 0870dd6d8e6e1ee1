//! AArch64 micro-kernels, assembled with `dynasm` (its `aarch64` syntax:
//! nothing is hand-encoded): the instructions Cranelift does not emit,
//! here the `dotprod` extension's `sdot`.
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
pub fn sdot_tile(rows: usize) -> Result<Vec<u8>, String> {
    if !(1..=SDOT_ROWS).contains(&rows) {
        return Err(format!("sdot tile: {rows} rows (1..={SDOT_ROWS})"));
    }
    let mut a: VecAssembler<Aarch64Relocation> = VecAssembler::new(0);
    let acc = |r: usize, half: usize| (16 + 2 * r + half) as u8;
    // the offset in every byte of v4; zeroed accumulators
    dynasm!(a ; .arch aarch64 ; movi v4.b16, #0x80);
    for r in 0..rows {
        for h in 0..2 {
            dynasm!(a ; .arch aarch64 ; movi V(acc(r, h)).s4, #0);
        }
    }
    dynasm!(a
        ; .arch aarch64
        ; cbz x3, ->done
        ; ->top:
        ; ld1 {v0.b16, v1.b16}, [x1], #32
        ; eor v0.b16, v0.b16, v4.b16
        ; eor v1.b16, v1.b16, v4.b16
    );
    load_rows(&mut a, rows);
    for r in 0..rows {
        let (w, lane) = ((2 + r / 4) as u8, (r % 4) as u32);
        dynasm!(a
            ; .arch aarch64
            ; sdot V(acc(r, 0)).s4, v0.b16, V(w).b4[lane]
            ; sdot V(acc(r, 1)).s4, v1.b16, V(w).b4[lane]
        );
    }
    dynasm!(a
        ; .arch aarch64
        ; subs x3, x3, #1
        ; b.ne ->top
        ; ->done:
    );
    for r in 0..rows {
        let off = (32 * r) as i32;
        dynasm!(a ; .arch aarch64 ; stp Q(acc(r, 0)), Q(acc(r, 1)), [x2, #off]);
    }
    dynasm!(a ; .arch aarch64 ; ret);
    a.finalize().map_err(|e| format!("sdot tile: {e}"))
}

/// The K quad's weight quads of `rows` rows into `v2` (rows 0–3) and `v3`
/// (rows 4–7), reading exactly `4·rows` bytes (the last block of a weight
/// is no longer) and stepping `x0` past them.
fn load_rows(a: &mut VecAssembler<Aarch64Relocation>, rows: usize) {
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
