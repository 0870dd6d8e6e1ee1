//! The integer GEMM's B packing for a whole unit of 16 output pixels
//! with AVX-512 VBMI's byte permutes, where AVX2's
//! [`crate::ukernel::avx2::quad_pack`] transposes through unpacks:
//! [`quad_pack_windows`] where the conv's tap offsets make a
//! [`WindowPlan`] (per K step one or two windows and an index vector,
//! fixed at compile time), else [`quad_pack_vbmi`] (each K value's span
//! on its own, its offset read from the tap table).

use iced_x86::code_asm::*;

/// Machine code packing a unit of 16 output pixels into byte quads with
/// [`crate::ukernel::avx2::quad_pack`]'s contract: the same arguments
/// (`base`, `tap`, `dst`, `k`, `table`), layout (`[k quad][pixel][4]`, 64
/// bytes per step), row segments (1..=4, `gap` bytes apart, their pixels
/// flagged by the table's 16-byte masks at `table + 16·s`) and strides (1
/// or 2). Per K step and segment: at stride 1 the four K values' 16-byte
/// input spans side by side in one `zmm` and one `vpermb`; at stride 2
/// their 31-byte spans (masked loads that stop at the last pixel's byte,
/// so nothing past the input is read) in two `zmm` and one `vpermt2b`;
/// then, for segments past the first, a byte-masked merge. ResNet-18's
/// 7x7 stride-2 stem on Zen 4: 0.648 → 0.597 ms (0.549 with no packing
/// at all); its 64-channel 3x3 convs' packing 10.8% → 8.5% of their time.
pub fn quad_pack_vbmi(segments: usize, stride: usize, gap: i64) -> Result<Vec<u8>, IcedError> {
    let (base, tap, dst, n, table) = (rdi, rsi, rdx, rcx, r8);
    let segments = segments.clamp(1, 4);
    let stride = stride.clamp(1, 2);
    let offs = [rax, r9, r10, r11];
    let (idx, out, t) = (zmm5, zmm4, zmm6);
    let merge = [k2, k3, k4];
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    // stride 2's loads: 31 bytes, pixel 15's quad ends 30 bytes on
    if stride == 2 {
        a.mov(eax, 0x7fff_ffffu32)?;
        a.kmovd(k1, eax)?;
    }
    // byte 4p + j of a step is K value j of pixel p, `stride · p` bytes into
    // value j's span (values 0 and 1 in the first table's halves, 2 and 3
    // in the second's): dword p of the index is `0x60402000 + stride · p ·
    // 0x01010101` (no carries: stride · p < 32)
    super::lane_indices(&mut a, idx, xmm6)?;
    a.mov(eax, (stride as u32) * 0x0101_0101)?;
    a.vpbroadcastd(t, eax)?;
    a.vpmulld(idx, idx, t)?;
    a.mov(eax, if stride == 1 { 0x3020_1000u32 } else { 0x6040_2000 })?;
    a.vpbroadcastd(t, eax)?;
    a.vpaddd(idx, idx, t)?;
    for s in 1..segments {
        // a pixel's flag byte to its quad's four mask bits
        a.vpmovsxbd(t, xmmword_ptr(table + (16 * s) as i64))?;
        a.vpmovb2m(merge[s - 1], t)?;
    }
    super::super::counted_loop(&mut a, n, |a| {
        for (j, &o) in offs.iter().enumerate() {
            a.movsxd(o, dword_ptr(tap + (4 * j) as i64))?;
        }
        for s in 0..segments {
            let disp = s as i64 * gap;
            let lo = if s == 0 { out } else { zmm0 };
            let at = |j: usize| base + offs[j] + disp;
            if stride == 1 {
                // the four 16-byte spans side by side, then one table
                let lo_x = if s == 0 { xmm4 } else { xmm0 };
                a.vmovdqu8(lo_x, xmmword_ptr(at(0)))?;
                for j in 1..4 {
                    a.vinserti32x4(lo, lo, xmmword_ptr(at(j)), j as u32)?;
                }
                a.vpermb(lo, idx, lo)?;
            } else {
                let lo_y = if s == 0 { ymm4 } else { ymm0 };
                a.vmovdqu8(lo_y.k1().z(), ymmword_ptr(at(0)))?;
                a.vmovdqu8(ymm1.k1().z(), ymmword_ptr(at(1)))?;
                a.vmovdqu8(ymm2.k1().z(), ymmword_ptr(at(2)))?;
                a.vmovdqu8(ymm3.k1().z(), ymmword_ptr(at(3)))?;
                a.vinserti64x4(lo, lo, ymm1, 1)?;
                a.vinserti64x4(zmm2, zmm2, ymm3, 1)?;
                a.vpermt2b(lo, idx, zmm2)?;
            }
            match s {
                0 => {}
                1 => a.vmovdqu8(out.k2(), lo)?,
                2 => a.vmovdqu8(out.k3(), lo)?,
                _ => a.vmovdqu8(out.k4(), lo)?,
            }
        }
        a.vmovdqu8(zmmword_ptr(dst), out)?;
        a.add(tap, 16)?;
        a.add(dst, 64)
    })?;
    super::super::leaf_end(a)
}

/// Pixels of a unit ([`quad_pack_windows`] packs whole units of 16).
const PIXELS: usize = 16;

/// One K step of [`quad_pack_windows`]: its four K values' input spans
/// read as one or two windows of at most 64 bytes (byte offsets from the
/// unit's base and lengths), and the index vector that picks each pixel's
/// quad from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowStep {
    /// The first window: start and length.
    pub a: (i64, usize),
    /// The second window, if the spans need one.
    pub b: Option<(i64, usize)>,
    /// Which of [`WindowPlan::indices`] the permute uses.
    pub index: usize,
}

impl WindowStep {
    /// The step moved by `delta` bytes.
    fn shifted(&self, delta: i64) -> WindowStep {
        WindowStep { a: (self.a.0 + delta, self.a.1), b: self.b.map(|(s, l)| (s + delta, l)), ..*self }
    }
}

/// The packing plan of one conv's units for [`quad_pack_windows`], from
/// its tap offsets (fixed at compile time): per K step the windows, the
/// distinct index vectors, and the period after which the steps repeat
/// shifted by a fixed number of bytes (a 3x3 conv's every 9 steps, four
/// input channels on), which the code loops over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// Per K step.
    pub steps: Vec<WindowStep>,
    /// The distinct `vpermt2b` index vectors (at most 16: `zmm16`–`zmm31`).
    pub indices: Vec<[u8; 64]>,
    /// Steps per period (a divisor of the step count) and the bytes a
    /// period moves the windows by (`None`: every step unrolled).
    pub period: Option<(usize, i64)>,
    /// The window lengths whose loads are masked (at most 4: `k1`, `k5`–
    /// `k7`): those that fill no whole `xmm`, `ymm` or `zmm`.
    pub masked: Vec<usize>,
}

/// Steps a plan without a period may unroll; a period's longest.
const UNROLLED_STEPS: usize = 64;
const MAX_PERIOD: usize = 16;

impl WindowPlan {
    /// The plan for tap offsets `taps` (4 per K step) at column `stride` 1
    /// or 2, or `None` where some step's spans need more than two
    /// windows, or the steps need more than 16 index vectors, 4 distinct
    /// window lengths below 64, or neither repeat nor fit unrolled.
    pub fn new(taps: &[i32], stride: usize) -> Option<WindowPlan> {
        let span = (stride * (PIXELS - 1) + 1) as i64;
        let mut indices: Vec<[u8; 64]> = Vec::new();
        let mut steps = Vec::with_capacity(taps.len() / 4);
        for q in taps.chunks(4) {
            let offs: Vec<i64> = q.iter().map(|&o| i64::from(o)).collect();
            let a0 = *offs.iter().min()?;
            let in_a = |o: i64| o + span <= a0 + 64;
            let b0 = offs.iter().copied().filter(|&o| !in_a(o)).min();
            if let Some(b0) = b0 {
                if offs.iter().any(|&o| !in_a(o) && (o < b0 || o + span > b0 + 64)) {
                    return None;
                }
            }
            let len = |w0: i64, inside: &dyn Fn(i64) -> bool| {
                (offs.iter().filter(|&&o| inside(o)).map(|&o| o + span).max().unwrap_or(w0) - w0) as usize
            };
            let a = (a0, len(a0, &in_a));
            let b = b0.map(|b0| (b0, len(b0, &|o| !in_a(o))));
            let mut index = [0u8; 64];
            for (p, quad) in index.chunks_mut(4).enumerate() {
                for (j, &o) in offs.iter().enumerate() {
                    let (w0, high) = if in_a(o) { (a0, 0) } else { (b0.unwrap_or(a0), 64) };
                    quad[j] = (o - w0 + (stride * p) as i64 + high) as u8;
                }
            }
            let at = match indices.iter().position(|i| *i == index) {
                Some(at) => at,
                None => {
                    indices.push(index);
                    indices.len() - 1
                }
            };
            steps.push(WindowStep { a, b, index: at });
        }
        let mut masked: Vec<usize> = steps
            .iter()
            .flat_map(|s| [Some(s.a.1), s.b.map(|b| b.1)])
            .flatten()
            .filter(|l| ![16, 32, 64].contains(l))
            .collect();
        masked.sort_unstable();
        masked.dedup();
        if indices.len() > 16 || masked.len() > 4 || steps.is_empty() {
            return None;
        }
        // whole periods only: a conv's K padding (its last step's repeated
        // offsets) breaks the pattern wherever a period would leave a rest
        let period = (1..=MAX_PERIOD.min(steps.len() - 1)).filter(|p| steps.len().is_multiple_of(*p)).find_map(|p| {
            let delta = steps[p].a.0 - steps[0].a.0;
            (0..steps.len() - p).all(|q| steps[q + p] == steps[q].shifted(delta)).then_some((p, delta))
        });
        if period.is_none() && steps.len() > UNROLLED_STEPS {
            return None;
        }
        Some(WindowPlan { steps, indices, period, masked })
    }

    /// The index vectors as the blob the code reads them from.
    pub fn index_blob(&self) -> Vec<u8> {
        self.indices.iter().flatten().copied().collect()
    }
}

/// Machine code packing a unit of 16 output pixels into byte quads by a
/// [`WindowPlan`], with [`quad_pack_vbmi`]'s contract but for the second
/// argument, the plan's index blob ([`WindowPlan::index_blob`]) in place
/// of the tap table, and the fourth, unused (the plan fixes the steps).
/// Per K step and row segment: the step's windows in one or two
/// zero-masked `vmovdqu8`, each of the bytes from its first span's start
/// to its last span's end, no more (a 3x3
/// conv's three taps of a row share one), one `vpermb`/`vpermt2b` by the
/// step's index vector (held in `zmm16`–`zmm31`), a byte-masked merge for
/// segments past the first, one store. [`quad_pack_vbmi`] loads each K
/// value's span on its own (four loads, three inserts) after reading its
/// offset from the tap table.
pub fn quad_pack_windows(plan: &WindowPlan, segments: usize, gap: i64) -> Result<Vec<u8>, IcedError> {
    let (base, indices, dst, n, table) = (rdi, rsi, rdx, rcx, r8);
    let segments = segments.clamp(1, 4);
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    let idx = |i: usize| INDEX_REGS[i];
    for i in 0..plan.indices.len() {
        a.vmovdqu8(idx(i), zmmword_ptr(indices + (64 * i) as i64))?;
    }
    let length_masks: Vec<(usize, AsmRegisterK)> = plan.masked.iter().copied().zip([k1, k5, k6, k7]).collect();
    for &(l, k) in &length_masks {
        a.mov(rax, (1u64 << l) - 1)?;
        a.kmovq(k, rax)?;
    }
    let merge = [k2, k3, k4];
    for s in 1..segments {
        a.vpmovsxbd(zmm6, xmmword_ptr(table + (16 * s) as i64))?;
        a.vpmovb2m(merge[s - 1], zmm6)?;
    }
    let step = |a: &mut CodeAssembler, st: &WindowStep, at: i64| -> Result<(), IcedError> {
        for s in 0..segments {
            let disp = s as i64 * gap;
            // the first segment's windows in zmm0/zmm1, the others' in zmm2/zmm3
            let (l, h) = if s == 0 { (0, 1) } else { (2, 3) };
            let (lo, hi) = (WINDOW_REGS[l], WINDOW_REGS[h]);
            window(a, &length_masks, l, base + (disp + st.a.0), st.a.1)?;
            match st.b {
                Some((b0, b_len)) => {
                    window(a, &length_masks, h, base + (disp + b0), b_len)?;
                    a.vpermt2b(lo, idx(st.index), hi)?;
                }
                None => a.vpermb(lo, idx(st.index), lo)?,
            }
            match s {
                0 => {}
                1 => a.vmovdqu8(zmm0.k2(), lo)?,
                2 => a.vmovdqu8(zmm0.k3(), lo)?,
                _ => a.vmovdqu8(zmm0.k4(), lo)?,
            }
        }
        a.vmovdqu8(zmmword_ptr(dst + at), zmm0)
    };
    match plan.period {
        Some((p, delta)) => {
            a.mov(n, (plan.steps.len() / p) as u64)?;
            super::super::counted_loop(&mut a, n, |a| {
                for (i, st) in plan.steps[..p].iter().enumerate() {
                    step(a, st, (64 * i) as i64)?;
                }
                a.add(base, delta as i32)?;
                a.add(dst, (64 * p) as i32)
            })?;
        }
        None => {
            for (i, st) in plan.steps.iter().enumerate() {
                step(&mut a, st, (64 * i) as i64)?;
            }
        }
    }
    // the leaf ABI leaves zmm16–zmm31 clean
    for i in 0..plan.indices.len() {
        a.vpxord(idx(i), idx(i), idx(i))?;
    }
    super::super::leaf_end(a)
}

/// The windows' registers.
const WINDOW_REGS: [AsmRegisterZmm; 4] = [zmm0, zmm1, zmm2, zmm3];

/// The index vectors' registers.
const INDEX_REGS: [AsmRegisterZmm; 16] =
    [zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31];

/// `len` bytes from `at` into `zmm0`–`zmm3`'s `r`, the rest zero: the narrowest load
/// that holds them (Zen 4 loads one `zmm` per cycle but two `ymm`, and a
/// short window in a `zmm` load splits a cache line most of the time), a
/// 16- or 32-byte one zeroing the rest of `r`, masked unless exactly full.
fn window(
    a: &mut CodeAssembler,
    masks: &[(usize, AsmRegisterK)],
    r: usize,
    at: AsmMemoryOperand,
    len: usize,
) -> Result<(), IcedError> {
    let (x, y, r) = ([xmm0, xmm1, xmm2, xmm3][r], [ymm0, ymm1, ymm2, ymm3][r], WINDOW_REGS[r]);
    let width = [16, 32, 64].into_iter().find(|&w| len <= w).unwrap_or(64);
    let k = masks.iter().find(|(l, _)| *l == len).map(|&(_, k)| k);
    let on = |k: AsmRegisterK| match k {
        k if k == k1 => (x.k1().z(), y.k1().z(), r.k1().z()),
        k if k == k5 => (x.k5().z(), y.k5().z(), r.k5().z()),
        k if k == k6 => (x.k6().z(), y.k6().z(), r.k6().z()),
        _ => (x.k7().z(), y.k7().z(), r.k7().z()),
    };
    let (x, y, r) = k.map(on).unwrap_or((x, y, r));
    match width {
        16 => a.vmovdqu8(x, xmmword_ptr(at)),
        32 => a.vmovdqu8(y, ymmword_ptr(at)),
        _ => a.vmovdqu8(r, zmmword_ptr(at)),
    }
}
