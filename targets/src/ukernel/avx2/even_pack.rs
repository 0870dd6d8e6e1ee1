//! [`even_pack`]: the f32 conv engine's B packing at stride 2, whole
//! groups of panels at a time (the step the 128-bit Cranelift packer
//! spent about 40% of a 3 → 16 stride-2 stem conv's time on).

use iced_x86::code_asm::*;

/// Machine code packing the even floats of an input row into whole groups
/// of `group` (2 or 4) B panels of 4 pixels (`lower::gemm::Panels`): per
/// group, `4·group` outputs from `8·group` consecutive floats (output `p`
/// reads float `2p`), stored as the group's `4·group` consecutive floats
/// of one K step; the next group's are `group_bytes` further on, its
/// input `32·group` bytes further. Per 8 outputs: two `ymm` loads, one
/// `vshufps` (each 128-bit lane's even floats of both) and one `vpermpd`
/// (the halves in order), one store: data moved, never computed on.
/// Every load stays inside the `8·group` floats of its group, so the
/// caller passes only groups whose floats lie in the input row.
///
/// Arguments (System V order): `src` (the first group's first float),
/// `dst` (its K step in the first group), `n` (groups, ≥ 0).
pub fn even_pack(group: usize, group_bytes: usize) -> Result<Vec<u8>, IcedError> {
    let (src, dst, n) = (rdi, rsi, rdx);
    let halves = group.clamp(2, 4) / 2;
    let mut a = CodeAssembler::new(64)?;
    super::super::counted_loop(&mut a, n, |a| {
        for h in 0..halves {
            let at = (64 * h) as i64;
            a.vmovups(ymm0, ymmword_ptr(src + at))?;
            a.vmovups(ymm1, ymmword_ptr(src + (at + 32)))?;
            // per lane: x0 x2 of the first, x0 x2 of the second
            a.vshufps(ymm2, ymm0, ymm1, 0x88)?;
            // qwords 0, 2, 1, 3: the first's four, then the second's
            a.vpermpd(ymm2, ymm2, 0xD8)?;
            a.vmovups(ymmword_ptr(dst + (32 * h) as i64), ymm2)?;
        }
        a.add(src, (32 * group) as i32)?;
        a.add(dst, group_bytes as i32)
    })?;
    super::super::leaf_end(a)
}

/// Machine code packing whole units of 1x1-conv B panels from the input
/// planes: per input channel (`n` of them, the K steps), `units` units of
/// `4·group` consecutive floats (`group` 2 or 4), unit `q` read `16·group
/// · q` bytes past the channel's first float and stored `dst_unit · q`
/// bytes past the channel's K step; the next channel's floats are
/// `plane_bytes` further on, its K step `kstep` further. `ymm` loads and
/// stores (two per unit of quads, one of pairs): data moved, never
/// computed on.
///
/// Arguments (System V order): `src` (the first unit's first float of
/// channel 0), `dst` (its K step 0), `n` (channels, ≥ 0).
pub fn flat_pack(
    group: usize,
    units: usize,
    dst_unit: usize,
    plane_bytes: usize,
    kstep: usize,
) -> Result<Vec<u8>, IcedError> {
    debug_assert!(group == 2 || group == 4, "flat_pack: groups of {group} panels");
    let (src, dst, n) = (rdi, rsi, rdx);
    let halves = group.clamp(2, 4) / 2;
    let regs = [ymm0, ymm1, ymm2, ymm3];
    let mut a = CodeAssembler::new(64)?;
    super::super::counted_loop(&mut a, n, |a| {
        for q in 0..units {
            for h in 0..halves {
                let r = regs[(q * halves + h) % regs.len()];
                a.vmovups(r, ymmword_ptr(src + (16 * group * q + 32 * h) as i64))?;
                a.vmovups(ymmword_ptr(dst + (dst_unit * q + 32 * h) as i64), r)?;
            }
        }
        a.add(src, plane_bytes as i32)?;
        a.add(dst, kstep as i32)
    })?;
    super::super::leaf_end(a)
}
