//! The tail products of AVX2's integer tiles ([`ymm_qdot_tail`]): a
//! plane's partial last unit without VNNI, output channels in the lanes.

use iced_x86::code_asm::*;

use super::QDOT_ROWS;

/// Most pixels [`ymm_qdot_tail`] takes: two accumulators per pixel for
/// up to 12 rows, and the loop's weights, masks, broadcast and scratch.
pub const YMM_TAIL_PIXELS: usize = 4;

/// Lanes `0..16` as i32: the table [`ymm_qdot_tail`] builds its row masks
/// from (64 bytes, passed where the tiles take their epilogue table).
pub fn ymm_tail_lanes() -> Vec<u8> {
    (0..16i32).flat_map(i32::to_le_bytes).collect()
}

/// Machine code of the AVX2 tail product: the sums of the sums-only
/// integer tiles ([`super::qgemm_tile`]'s 16-bit pairs, or
/// [`super::qbyte_tile`]'s byte quads) for only the first `pixels`
/// (1..=[`YMM_TAIL_PIXELS`]) of a unit of 8, with the roles turned as in
/// [`crate::ukernel::avx512::qdot_tail`]: the tile's `rows`
/// (1..=[`QDOT_ROWS`]) output channels are the lanes. The arguments are
/// the tiles': `a` (per K step the rows' four bytes each, `4·rows`
/// bytes), `b` (the unit's B compacted to its `pixels`: `4·pixels` bytes
/// per K step, pixel `p`'s at `4p`), `out` (`rows × 8` i32,
/// row-major; only the first `pixels` of each row written), `k` (K steps,
/// ≥ 0), then the lane table [`ymm_tail_lanes`] in the place of the
/// epilogue table. Per K step: the rows' weights in one or two masked
/// loads (`vpmaskmovd`: nothing read past row `rows`), per pixel its
/// step broadcast, then `vpmaddwd` (pairs) or `vpmaddubsw` + `vpmaddwd`
/// by ones (quads: exact where the tile is, the same byte pairs) and
/// `vpaddd`. Then each sum stored by `vpextrd`. A 7x7 plane's last unit
/// has one pixel: the unit tile spends 8 pixels' products on it, this
/// one.
pub fn ymm_qdot_tail(rows: usize, pixels: usize, quads: bool) -> Result<Vec<u8>, IcedError> {
    let (a_p, b_p, out_p, n, lanes) = (rdi, rsi, rdx, rcx, r8);
    let rows = rows.clamp(1, QDOT_ROWS);
    let pixels = pixels.clamp(1, YMM_TAIL_PIXELS);
    let halves = rows.div_ceil(8);
    // pixel p's accumulators: rows 0..8 in acc[2p], rows 8..12 in acc[2p + 1]
    let acc = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7];
    let (w, mask) = ([ymm8, ymm9], [ymm10, ymm11]);
    let (ones, x, t, spare) = (ymm12, ymm13, ymm14, ymm15);
    let mut a = CodeAssembler::new(64)?;
    // lane i of half h loads where 8h + i < rows
    a.mov(eax, rows as u32)?;
    a.vmovd(xmm15, eax)?;
    a.vpbroadcastd(spare, xmm15)?;
    for (h, &m) in mask.iter().enumerate().take(halves) {
        a.vpcmpgtd(m, spare, ymmword_ptr(lanes + (32 * h) as i64))?;
    }
    if quads {
        a.vpcmpeqw(ones, ones, ones)?;
        a.vpsrlw(ones, ones, 15)?;
    }
    for p in 0..pixels {
        for h in 0..halves {
            let r = acc[2 * p + h];
            a.vpxor(r, r, r)?;
        }
    }
    super::super::counted_loop(&mut a, n, |a| {
        for (h, (&wh, &m)) in w.iter().zip(&mask).enumerate().take(halves) {
            a.vpmaskmovd(wh, m, ymmword_ptr(a_p + (32 * h) as i64))?;
        }
        for p in 0..pixels {
            a.vpbroadcastd(x, dword_ptr(b_p + (4 * p) as i64))?;
            for (h, &wh) in w.iter().enumerate().take(halves) {
                if quads {
                    a.vpmaddubsw(t, x, wh)?;
                    a.vpmaddwd(t, t, ones)?;
                } else {
                    a.vpmaddwd(t, x, wh)?;
                }
                a.vpaddd(acc[2 * p + h], acc[2 * p + h], t)?;
            }
        }
        a.add(a_p, (4 * rows) as i32)?;
        a.add(b_p, (4 * pixels) as i32)
    })?;
    let xmm = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7];
    for p in 0..pixels {
        for h in 0..halves {
            let live = (rows - 8 * h).min(8);
            // lanes 4..8 through the upper half
            if live > 4 {
                a.vextracti128(xmm15, acc[2 * p + h], 1)?;
            }
            for i in 0..live {
                let src = if i < 4 { xmm[2 * p + h] } else { xmm15 };
                let at = out_p + (4 * (8 * (8 * h + i) + p)) as i64;
                a.vpextrd(dword_ptr(at), src, (i % 4) as u32)?;
            }
        }
    }
    super::super::leaf_end(a)
}
