//! QConv cases as data: a case's graph in the IR text format (per-channel
//! steps and biases of its own, a residual input when the epilogue adds
//! one, a u8 output through a grid), its inputs and fixed pseudo-random
//! data, shared by the host batteries (`qconv.rs`, `qconv_pattern.rs`,
//! `quantize.rs`) and the cross-ISA one (`qconv_cross.rs`); the checks
//! the host batteries share ([`check`], [`check_quant`], [`cpus`], [`host_runs`],
//! [`object_kernels`]).

use kerf_ir::{DType, Tensor};

use super::{reference, run};

/// A QConv graph: x u8 `xsh`, w i8 `wsh` with values `w`, output `osh`.
pub struct Case<'a> {
    pub xsh: [usize; 4],
    pub wsh: [usize; 4],
    pub osh: [usize; 4],
    pub attrs: &'a str,
    pub epi: &'a str,
    pub zp: u8,
}

/// A shape as the text format writes it: `1,3,7,7`.
pub fn dims(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

/// The attributes of an unpadded square window: kernel, stride, dilation, groups.
pub fn window(k: usize, s: usize, d: usize, g: usize) -> String {
    format!("kernel=[{k},{k}], strides=[{s},{s}], dilations=[{d},{d}], pads=[0,0,0,0], group={g}")
}

/// A constant's integer values.
pub fn ints(v: &[i64]) -> String {
    format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
}

/// A constant's f32 values (round-trip precision).
pub fn floats(v: &[f32]) -> String {
    format!("[{}]", v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(","))
}

/// The QConv graph of case `c` with weights `w` (per-channel steps and
/// biases of its own, a residual input when the epilogue adds one).
pub fn graph_text(c: &Case, w: &[i64]) -> String {
    let m = c.wsh[0];
    let w_scale: Vec<f32> = (0..m).map(|i| 0.01 + 0.003 * i as f32).collect();
    let bias = bias_of(c);
    let residual = c.epi.contains("residual=true");
    format!(
        "graph \"q\"\n  input %0 \"x\": u8[{}]\n{}  const %1 \"w\": i8[{}] = {}\n  const %2 \"s\": f32[{m}] = {}\n  const %3 \"b\": f32[{m}] = {}\n  %4 = QConv{{{}, layer=\"c\", {}, x_scale=0.05, x_zp={}}}(%0, %1, %2, %3{}): f32[{}] @\"c\"\n  output \"y\" = %4\n",
        dims(&c.xsh),
        if residual { format!("  input %9 \"r\": f32[{}]\n", dims(&c.osh)) } else { String::new() },
        dims(&c.wsh),
        ints(w),
        floats(&w_scale),
        floats(&bias),
        c.attrs,
        c.epi,
        c.zp,
        if residual { ", %9" } else { "" },
        dims(&c.osh),
    )
}

/// The biases [`graph_text`] gives case `c`'s channels.
pub fn bias_of(c: &Case) -> Vec<f32> {
    (0..c.wsh[0]).map(|i| 0.25 * i as f32 - 1.0).collect()
}

/// The inputs of case `c`: `x`, and a residual when the epilogue adds one.
pub fn inputs(c: &Case, x: &[u8]) -> Vec<Tensor> {
    let mut ins = vec![Tensor::from_bytes(DType::U8, c.xsh.to_vec(), x.to_vec()).unwrap()];
    if c.epi.contains("residual=true") {
        let n: usize = c.osh.iter().product();
        let r: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.5).collect();
        ins.push(Tensor::from_f32(c.osh.to_vec(), &r).unwrap());
    }
    ins
}

/// `n` fixed pseudo-random integers in `lo..=hi`.
pub fn pseudo(n: usize, seed: usize, lo: i64, hi: i64) -> Vec<i64> {
    (0..n).map(|i| lo + ((i * 7919 + seed * 104729) % 9973) as i64 % (hi - lo + 1)).collect()
}

/// No activation, no residual.
pub const PLAIN: &str = "act=None, residual=false";

/// A depthwise window (one channel per group, `c` groups) with padding `p`.
pub fn depthwise(k: usize, s: usize, p: usize, c: usize) -> String {
    format!("kernel=[{k},{k}], strides=[{s},{s}], dilations=[1,1], pads=[{p},{p},{p},{p}], group={c}")
}

/// A depthwise window of `c` channels: kernel `kh × kw`, strides,
/// dilations and pads (top, left, bottom, right).
pub fn dw_window(k: [usize; 2], s: [usize; 2], d: [usize; 2], p: [usize; 4], c: usize) -> String {
    format!(
        "kernel=[{},{}], strides=[{},{}], dilations=[{},{}], pads=[{},{},{},{}], group={c}",
        k[0], k[1], s[0], s[1], d[0], d[1], p[0], p[1], p[2], p[3]
    )
}

/// The QConv graph of case `c` with a u8 output through the grid `(scale, zp)`.
pub fn quant_text(c: &Case, w: &[i64], (scale, zp): (f32, u8)) -> String {
    graph_text(c, w)
        .replace(&format!("x_zp={}}}", c.zp), &format!("x_zp={}, out=quant, out_scale={scale:?}, out_zp={zp}}}", c.zp))
        .replace(&format!("): f32[{}] @\"c\"", dims(&c.osh)), &format!("): u8[{}] @\"c\"", dims(&c.osh)))
}

/// Case `c`'s graph ([`graph_text`], or [`quant_text`] with `out`) with
/// its residual a u8 input on the grid `res` (`QConv::res_grid`).
pub fn u8_residual_text(c: &Case, w: &[i64], out: Option<(f32, u8)>, (scale, zp): (f32, u8)) -> String {
    let text = match out {
        Some(grid) => quant_text(c, w, grid),
        None => graph_text(c, w),
    };
    let residual = format!("  input %9 \"r\": f32[{}]", dims(&c.osh));
    assert!(text.contains(&residual), "case {} has no residual", c.epi);
    let at = text.find(", x_zp=").expect("a QConv");
    let end = at + text[at..].find('}').expect("the attributes' end");
    let mut t = text.clone();
    t.insert_str(end, &format!(", res_scale={scale:?}, res_zp={zp}"));
    t.replace(&residual, &format!("  input %9 \"r\": u8[{}]", dims(&c.osh)))
}

/// Fixed pseudo-random residual codes for case `c`, and the same residual
/// dequantised on `(scale, zp)` (`f32(r − zp) · scale`) as the f32 input
/// the u8 one stands for.
pub fn u8_residual(c: &Case, (scale, zp): (f32, u8)) -> (Tensor, Tensor) {
    let n: usize = c.osh.iter().product();
    let codes: Vec<u8> = pseudo(n, 7, 0, 255).into_iter().map(|v| v as u8).collect();
    let real: Vec<f32> = codes.iter().map(|&r| (i32::from(r) - i32::from(zp)) as f32 * scale).collect();
    (Tensor::from_bytes(DType::U8, c.osh.to_vec(), codes).unwrap(), Tensor::from_f32(c.osh.to_vec(), &real).unwrap())
}

/// Case `c` with input `x`, weights `w` and a u8 residual on the grid
/// `res` ([`u8_residual`]), its output f32 or u8 through `out`: on every
/// preset the host runs ([`cpus`]) the bits of the f32-residual form fed
/// the dequantised residual, which the reference computes alike, and for
/// None/Relu/Clip the reference's.
pub fn check_u8_residual(c: &Case, x: &[u8], w: &[i64], out: Option<(f32, u8)>, res: (f32, u8)) {
    let (codes, real) = u8_residual(c, res);
    let xt = Tensor::from_bytes(DType::U8, c.xsh.to_vec(), x.to_vec()).unwrap();
    let (ins_u8, ins_f32) = ([xt.clone(), codes], [xt, real]);
    let u8_text = u8_residual_text(c, w, out, res);
    let f32_text = match out {
        Some(grid) => quant_text(c, w, grid),
        None => graph_text(c, w),
    };
    let parse = |t: &str| kerf_ir::text::parse(t).unwrap_or_else(|e| panic!("{e}\n{t}"));
    let want = kerf_ir::eval::eval_graph(&parse(&u8_text), &ins_u8).unwrap().remove(0);
    let same = kerf_ir::eval::eval_graph(&parse(&f32_text), &ins_f32).unwrap().remove(0);
    assert_eq!(want.bytes(), same.bytes(), "the reference: {} {out:?}", c.epi);
    let bits_of = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    // a u8 output is read as f32s: compare its bytes four at a time
    let want_bits: Vec<u32> = want.bytes().chunks(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
    for cpu in cpus() {
        let got = bits_of(&run(&u8_text, &ins_u8, cpu).remove(0));
        let f32_form = bits_of(&run(&f32_text, &ins_f32, cpu).remove(0));
        assert_eq!(got, f32_form, "{} {} {out:?} ({cpu})", c.attrs, c.epi);
        if exact_act(c.epi) {
            assert_eq!(got, want_bits, "{} {} {out:?} ({cpu}): the reference", c.attrs, c.epi);
        }
    }
}

/// Case `c`'s input bytes and 8-bit weights (fixed pseudo-random values).
pub fn case_data(c: &Case) -> (Vec<u8>, Vec<i64>) {
    let nx: usize = c.xsh.iter().product();
    let nw: usize = c.wsh.iter().product();
    (pseudo(nx, 1, 0, 255).into_iter().map(|v| v as u8).collect(), pseudo(nw, 2, -127, 127))
}

/// The accumulating form (`out=acc`: the i32 sums `Σ (x − zp)·w`
/// themselves) of an `xsh` input, `wsh` weight `w`, `osh` output.
pub fn acc_text(shapes: [[usize; 4]; 3], attrs: &str, zp: u8, w: &[i64]) -> String {
    let [xsh, wsh, osh] = shapes;
    format!(
        "graph \"q\"\n  input %0 \"x\": u8[{}]\n  const %1 \"w\": i8[{}] = {}\n  %2 = QConv{{{attrs}, layer=\"c\", act=None, residual=false, x_scale=1.0, x_zp={zp}, out=acc}}(%0, %1): i32[{}] @\"c\"\n  output \"y\" = %2\n",
        dims(&xsh),
        dims(&wsh),
        ints(w),
        dims(&osh),
    )
}

/// Case `c` with input `x` and weights `w` on every preset the host runs
/// ([`cpus`]) against the reference evaluator: bit for bit for None, Relu
/// and Clip; for the other activations (the kernels' own f32 routines)
/// every preset gives the baseline's bits, within 1e-5 of the reference.
pub fn check(c: &Case, x: &[u8], w: &[i64]) {
    let text = graph_text(c, w);
    let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ins = inputs(c, x);
    let want = reference(&g, &ins).remove(0);
    // None/Relu/Clip: the reference's bits (the op's contract); the other
    // activations are the kernels' own f32 routines: every tile gives the
    // baseline's bits, and those are close to the reference
    let exact = exact_act(c.epi);
    let base = run(&text, &ins, "baseline").remove(0);
    if !exact {
        super::close(&format!("{} {}", c.attrs, c.epi), &base, &want, 1e-5, 1e-5);
    }
    let want = if exact { want } else { base };
    for cpu in cpus() {
        let got = run(&text, &ins, cpu).remove(0);
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(a.to_bits() == b.to_bits(), "{} {} ({cpu}): element {i}: got {a}, want {b}", c.attrs, c.epi);
        }
    }
}

/// [`check`] for the requantising epilogue (`out=quant`): the u8 output
/// byte for byte against the reference (the real-valued output on the
/// grid, `QOut::Quant`'s ops), on every preset the host runs, on a grid chosen
/// from the real-valued output's range so that both ends clamp. The
/// output's element count is a multiple of 4 (the harness reads outputs
/// as f32s).
pub fn check_quant(c: &Case, x: &[u8], w: &[i64]) {
    let n: usize = c.osh.iter().product();
    assert_eq!(n % 4, 0, "the harness reads whole f32s");
    let real = kerf_ir::text::parse(&graph_text(c, w)).unwrap();
    let y = reference(&real, &inputs(c, x)).remove(0);
    let (lo, hi) = y.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let scale = (hi - lo) / 270.0;
    let zp = (-lo / scale - 10.0).round().clamp(0.0, 255.0) as u8;
    let want = check_quant_on(c, x, w, (scale, zp));
    // both ends of the grid are reached (the clamp is exercised)
    let (lo, hi) = (want.iter().min().copied(), want.iter().max().copied());
    assert!(lo == Some(0) && hi == Some(255), "{} {} {:?}: output bytes {lo:?}..{hi:?}", c.attrs, c.epi, c.osh);
}

/// [`check_quant`] on the grid `(scale, zp)`; returns the expected bytes.
pub fn check_quant_on(c: &Case, x: &[u8], w: &[i64], grid: (f32, u8)) -> Vec<u8> {
    check_quant_with(c, &inputs(c, x), w, grid)
}

/// [`check_quant_on`] with these inputs.
pub fn check_quant_with(c: &Case, ins: &[Tensor], w: &[i64], grid: (f32, u8)) -> Vec<u8> {
    let ins = ins.to_vec();
    let text = quant_text(c, w, grid);
    let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let want = kerf_ir::eval::eval_graph(&g, &ins).unwrap().remove(0);
    assert_eq!(want.dtype(), DType::U8);
    for cpu in cpus() {
        let got: Vec<u8> = run(&text, &ins, cpu).remove(0).iter().flat_map(|f| f.to_le_bytes()).collect();
        for (i, (a, b)) in got.iter().zip(want.bytes()).enumerate() {
            assert_eq!(a, b, "{} {} ({cpu}): byte {i}", c.attrs, c.epi);
        }
    }
    want.bytes().to_vec()
}

/// Whether a case's epilogue `epi` has the reference's bits on every
/// kernel (None, Relu, Clip: the op's contract); the other activations
/// are the kernels' own f32 routines, whose bits every tile shares with
/// `baseline`'s.
pub fn exact_act(epi: &str) -> bool {
    ["act=None", "act=Relu", "act=Clip"].iter().any(|a| epi.starts_with(a))
}

/// The CPU presets the host can run: `native`, `baseline`, `haswell`
/// (the AVX2 pair tile) where that is not what `native` already is, and
/// `cascadelake` (the VNNI tiles with AVX2's quad packer) where the host
/// has VBMI, so that `native` packs with VBMI; the tiles the host cannot
/// run are named as untested.
pub fn cpus() -> Vec<&'static str> {
    let mut cpus = vec!["native", "baseline"];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let vnni = has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512vnni");
        if !vnni {
            eprintln!("no AVX-512 VNNI on this CPU: the byte-quad tile is not tested here (the others are)");
        } else if !has!("avx512vbmi") {
            eprintln!("no AVX-512 VBMI on this CPU: the VBMI quad packer is not tested here (AVX2's is)");
        }
        if cascadelake_adds() {
            cpus.push("cascadelake");
        }
        if has!("avx2") && has!("fma") {
            cpus.push("haswell");
        } else {
            eprintln!("no AVX2 on this CPU: the assembled integer tiles are not tested here (the 128-bit tile is)");
        }
    }
    cpus
}

/// Whether the host runs `cascadelake` (AVX-512 + VNNI without VBMI) and
/// `native` is not already that: a host with VNNI and VBMI, whose `native`
/// packs with VBMI and pools bytes at stride 2 with it.
pub fn cascadelake_adds() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512vnni") && has!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The host CPU features a check needs.
#[derive(Clone, Copy, PartialEq)]
pub enum Cpu {
    /// AVX2 + FMA (the assembled tiles).
    Avx2,
    /// AVX-512 F/VL/BW with VNNI too (what `native` needs for its VNNI kernels).
    Vnni,
}

/// Whether the host has `need` (an x86-64 host); otherwise prints that the
/// calling check is skipped, and why.
pub fn host_runs(need: Cpu) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        let vnni = has!("avx512f") && has!("avx512vl") && has!("avx512bw") && has!("avx512vnni");
        match (need, avx2, vnni) {
            (Cpu::Avx2, true, _) | (Cpu::Vnni, true, true) => true,
            (Cpu::Avx2, false, _) => {
                eprintln!("skipped: no AVX2 on this CPU");
                false
            }
            (Cpu::Vnni, ..) => {
                eprintln!("skipped: no AVX-512 VNNI on this CPU");
                false
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = need;
        eprintln!("skipped: not an x86-64 host");
        false
    }
}

/// Micro-kernels of `g`'s x86-64 object for `cpu`: which kernels code
/// calls is decided at compile time, so any host checks it.
pub fn object_kernels(g: &kerf_ir::Graph, cpu: &str) -> usize {
    let o = kerf_targets::CompileOptions::parse("x86_64-unknown-linux-gnu", cpu, "t").unwrap();
    kerf_targets::compile_object(g, &o).unwrap().report.micro_kernels
}

/// Weights of a conv pruned with one pattern per quad of input channels
/// (`pattern_group = 4`): per (output channel, quad) half removed, the
/// others one of four 4-tap masks of a 3x3 kernel, codes in `lo..=hi`.
pub fn quad_pattern_weights(wsh: [usize; 4], lo: i64, hi: i64) -> Vec<i64> {
    const MASKS: [u32; 4] = [0b000_111_010, 0b010_110_010, 0b000_011_011, 0b010_010_011];
    let (o, c, area) = (wsh[0], wsh[1], wsh[2] * wsh[3]);
    let codes = pseudo(o * c * area, 3, lo, hi);
    (0..o * c * area)
        .map(|i| {
            let (oi, ci, tap) = (i / (c * area), i / area % c, i % area);
            let unit = oi * c.div_ceil(4) + ci / 4;
            let mask = if (unit * 7 + 3) % 5 < 2 { 0 } else { MASKS[unit * 13 % 4] };
            if mask & (1 << tap) != 0 && codes[i] != 0 {
                codes[i]
            } else if mask & (1 << tap) != 0 {
                1
            } else {
                0
            }
        })
        .collect()
}

/// The integer pattern kernel's cases (shared by its host battery and the
/// AArch64 run under qemu): partial vectors and row blocks, a partial quad
/// (6 channels), several images, 50 quads (several channel blocks:
/// partial sums between calls), dilation 2, stride 2 (phase-split quad
/// images, odd and even sizes, rows of 16 + 3 pixels), residuals, Relu,
/// Clip, HardSwish, and LeakyRelu (which the tiles do not apply: the
/// integer GEMM takes it).
pub fn quad_pattern_cases() -> Vec<Case<'static>> {
    // the cases outlive the call: their window texts are leaked (a test)
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let a3 = leak(window(3, 1, 1, 1));
    vec![
        Case { xsh: [1, 8, 12, 12], wsh: [5, 8, 3, 3], osh: [1, 5, 10, 10], attrs: a3, epi: PLAIN, zp: 128 },
        Case {
            xsh: [2, 6, 9, 21],
            wsh: [7, 6, 3, 3],
            osh: [2, 7, 7, 19],
            attrs: a3,
            epi: "act=Relu, residual=false",
            zp: 3,
        },
        Case {
            xsh: [1, 200, 9, 9],
            wsh: [3, 200, 3, 3],
            osh: [1, 3, 7, 7],
            attrs: a3,
            epi: "act=Clip, act_min=-1.5, act_max=2.5, residual=true",
            zp: 9,
        },
        Case {
            xsh: [1, 8, 12, 36],
            wsh: [4, 8, 3, 3],
            osh: [1, 4, 8, 32],
            attrs: leak(window(3, 1, 2, 1)),
            epi: "act=HardSwish, residual=true",
            zp: 200,
        },
        Case {
            xsh: [1, 4, 6, 6],
            wsh: [2, 4, 3, 3],
            osh: [1, 2, 4, 4],
            attrs: a3,
            epi: "act=LeakyRelu, act_alpha=0.1, residual=false",
            zp: 0,
        },
        // stride 2 (phase-split quad images): odd and even input sizes,
        // rows of 16 + 3 pixels (the vector split and the scalar tail)
        Case {
            xsh: [1, 12, 13, 39],
            wsh: [6, 12, 3, 3],
            osh: [1, 6, 6, 19],
            attrs: leak(window(3, 2, 1, 1)),
            epi: "act=Relu, residual=true",
            zp: 17,
        },
        Case {
            xsh: [2, 160, 10, 10],
            wsh: [3, 160, 3, 3],
            osh: [2, 3, 4, 4],
            attrs: leak(window(3, 2, 1, 1)),
            epi: PLAIN,
            zp: 250,
        },
    ]
}

/// Weights `[m, c·kh·kw]` whose blocks of 16 output channels keep two of
/// every four K quads (rotating by block), block `empty` none and block
/// `short` one of four; kept codes in `lo..=hi`.
pub fn listed_weights(wsh: [usize; 4], (lo, hi): (i64, i64), empty: Option<usize>, short: Option<usize>) -> Vec<i64> {
    let kk = wsh[1] * wsh[2] * wsh[3];
    let codes = pseudo(wsh[0] * kk, 3, lo, hi);
    let mut w = vec![0i64; codes.len()];
    for m in 0..wsh[0] {
        let blk = m / 16;
        for k in 0..kk {
            let pos = (k / 4 + blk) % 4;
            let kept = match () {
                _ if Some(blk) == empty => false,
                _ if Some(blk) == short => pos == 0,
                _ => pos < 2,
            };
            if kept {
                w[m * kk + k] = codes[m * kk + k];
            }
        }
    }
    w
}

/// Weights `[m, c, kh, kw]` pruned as block-shared N:M in runs of four
/// input channels at each tap (`2:4x4/16`): each block of 16 output
/// channels keeps two of every four runs at every tap, the pair
/// pseudo-random per (block, tap, group of runs), so a quad of channels
/// keeps scattered taps (too many shapes for the pattern kernel, as
/// OBS-chosen masks); kept codes in `lo..=hi`.
pub fn tap_run_weights(wsh: [usize; 4], (lo, hi): (i64, i64)) -> Vec<i64> {
    const PAIRS: [[usize; 2]; 6] = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];
    let (c, area) = (wsh[1], wsh[2] * wsh[3]);
    let codes = pseudo(wsh[0] * c * area, 5, lo, hi);
    let kept = |m: usize, ci: usize, t: usize| {
        let (blk, run, group) = (m / 16, ci / 4 % 4, ci / 16);
        let pick = (blk * 7919 + t * 104_729 + group * 13 + t * t * 31) % 9973 % 6;
        PAIRS[pick].contains(&run)
    };
    (0..codes.len())
        .map(|i| {
            let (m, ci, t) = (i / (c * area), i / area % c, i % area);
            if kept(m, ci, t) {
                codes[i]
            } else {
                0
            }
        })
        .collect()
}
