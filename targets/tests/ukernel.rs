#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The assembled AVX2 GEMM tiles (`ukernel::avx2`, used by the packed-GEMM
//! and Winograd convs where the target has AVX2 + FMA) against Cranelift's
//! 128-bit tiles: the same model compiled for the host with micro-kernels
//! on and off must give the same bits (the tiles replace the same FMA
//! chains and epilogue selects), and both must match the reference
//! evaluator (1e-5 + 1e-4·max|ref|). The shapes cover full and partial A
//! blocks (rows 1..12), several K passes (K > 384), panel groups with and
//! without leftovers and partial panels, every epilogue the tile applies
//! (none, Relu, Clip, residual) and two it leaves to Cranelift, and the
//! narrow-row convs whose rows are packed as one run of pixels (strides,
//! dilation, 5x5, padding rows and columns). Skipped,
//! with a printed reason, on hosts without AVX2.

mod common;
use common::{close, list, reference, t, xs};
use kerf_ir::Tensor;
use kerf_targets::isa::Caps;
use kerf_targets::ukernel::KSteps;
use kerf_targets::{jit_compile, CompileOptions};

/// Outputs of `text` compiled for the host (`cpu`: `native`, or a preset
/// the host runs) with micro-kernels on or off, and how many distinct
/// micro-kernels the code holds.
fn run_on(cpu: &str, text: &str, inputs: &[Tensor], ukernels: bool) -> (Vec<f32>, usize, Caps) {
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut o = CompileOptions::parse("host", cpu, "t").unwrap();
    o.ukernels = ukernels;
    let jm = jit_compile(&g, &o).unwrap_or_else(|e| panic!("{e}"));
    let m = jm.model();
    let bytes: Vec<&[u8]> = inputs.iter().map(|t| t.bytes()).collect();
    let n = m.info().outputs[0].bytes;
    let mut out = vec![0u8; n];
    let mut arena = m.new_arena().unwrap();
    m.run(&bytes, &mut [&mut out[..]], &mut arena).unwrap();
    let y = out.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (y, jm.report().micro_kernels, jm.report().caps)
}

/// A case: `c` → `m` channels on an `(h, w)` plane, `k`×`k` kernel,
/// (stride, dilation), extra conv attributes, the fused activation, a
/// residual.
type Case = (usize, usize, (usize, usize), usize, (usize, usize), &'static str, &'static str, bool);

fn graph(cs: &Case) -> (String, Vec<Tensor>) {
    let &(c, m, (h, w), k, (st, d), extra, act, residual) = cs;
    let p = d * (k - 1) / 2;
    let (oh, ow) = ((h + 2 * p - d * (k - 1) - 1) / st + 1, (w + 2 * p - d * (k - 1) - 1) / st + 1);
    let wt: Vec<f32> = xs(m * c * k * k + 3)[3..].iter().map(|v| v * 0.05).collect();
    let b: Vec<f32> = (0..m).map(|i| 0.1 * i as f32 - 0.6).collect();
    let x: Vec<f32> = xs(c * h * w).iter().map(|v| v * 0.5).collect();
    let r: Vec<f32> = xs(m * oh * ow + 7)[7..].to_vec();
    let act = format!(", act={act}");
    let text = format!(
        "graph \"g\"\n  input %0 \"x\": f32[1,{c},{h},{w}]\n  input %9 \"r\": f32[1,{m},{oh},{ow}]\n  const %1 \"w\": f32[{m},{c},{k},{k}] = {}\n  const %2 \"b\": f32[{m}] = {}\n  %3 = ConvFused{{kernel=[{k},{k}], strides=[{st},{st}], dilations=[{d},{d}], pads=[{p},{p},{p},{p}], group=1, layer=\"c\"{}{act}, residual={}}}(%0, %1, %2{}): f32[1,{m},{oh},{ow}] @\"c\"\n  output \"y\" = %3\n",
        list(&wt),
        list(&b),
        extra,
        residual,
        if residual { ", %9" } else { "" }
    );
    (text, vec![t(&[1, c, h, w], &x), t(&[1, m, oh, ow], &r)])
}

/// [`run_on`] for `native`.
fn run(text: &str, inputs: &[Tensor], ukernels: bool) -> (Vec<f32>, usize, Caps) {
    run_on("native", text, inputs, ukernels)
}

/// The presets whose assembled tiles the host runs: `native` (the 512-bit
/// tiles where the host has AVX-512F + VL, else the 256-bit ones) and,
/// on an AVX-512 host, `haswell` for the 256-bit tiles too. What the host
/// cannot run is named as untested.
fn wide_cpus() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512vl") {
            return vec!["native", "haswell"];
        }
        eprintln!("no AVX-512F + VL on this CPU: the 512-bit tiles are not run here (the 256-bit ones are)");
    }
    vec!["native"]
}

/// Case `i`: micro-kernels on and off give the same bits, match the
/// reference, and the code holds assembled tiles (micro-kernels with
/// FMAs, [`tile_fmas`]) exactly when `wide`, for each of [`wide_cpus`]. `false` (after printing why) when the host has
/// no AVX2.
fn check(i: usize, text: &str, ins: &[Tensor], wide: bool) -> bool {
    check_on(i, text, ins, &|_| wide)
}

/// [`check`] where whether the code holds assembled kernels depends on the
/// preset's capabilities (`wide(caps)`).
fn check_on(i: usize, text: &str, ins: &[Tensor], wide: &dyn Fn(&Caps) -> bool) -> bool {
    for cpu in wide_cpus() {
        let (on, n_on, caps) = run_on(cpu, text, ins, true);
        let wide = wide(&caps);
        if !caps.avx2 {
            eprintln!("skipped: the host has no AVX2 + FMA, so no assembled tiles to check");
            return false;
        }
        let (off, n_off, _) = run_on(cpu, text, ins, false);
        assert_eq!(n_off, 0, "case {i} ({cpu}): micro-kernels with ukernels off");
        // the packers (`even_pack`, `flat_pack`) only move data: the tiles
        // are the micro-kernels with multiply-adds
        let (zmm, other) = tile_fmas(text, cpu);
        assert_eq!(zmm + other > 0, wide, "case {i} ({cpu}): {n_on} micro-kernels, {zmm} + {other} FMAs");
        let diff = on.iter().zip(&off).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            diff.is_none(),
            "case {i} ({cpu}): element {diff:?}: {:?} (assembled) vs {:?}",
            diff.map(|d| on[d]),
            diff.map(|d| off[d])
        );
        let g = kerf_ir::text::parse(text).unwrap();
        close(&format!("case {i} ({cpu})"), &on, &reference(&g, ins).remove(0), 1e-5, 1e-4);
    }
    true
}

#[test]
fn avx2_tiles_equal_the_128_bit_tiles() {
    let cases = [
        // 1x1, 37 rows (three 12-row blocks and a 1-row block), 20x20: 100 panels
        (16, 37, (20, 20), 1, (1, 1), "", "None", false),
        // 19x19 = 361 pixels: 90 panels and a 1-pixel tail (the last pair partial)
        (16, 30, (19, 19), 1, (1, 1), "", "Relu", true),
        // the last pair partial: 13x13 = 42 panels + 1 pixel, 7x7 = 12 + 1,
        // 5x25 = 31 + 1 (a leftover panel and the tail: 5 pixels), 14x14 =
        // 49 panels (a leftover panel alone); K = 576 over 7x9: two K passes
        // (partial sums read back for 7 pixels), residual and HardSwish
        (24, 40, (13, 13), 1, (1, 1), "", "Relu", true),
        (32, 17, (7, 7), 1, (1, 1), "", "HardSwish", true),
        (64, 64, (5, 25), 1, (1, 1), "", "Relu", false),
        (16, 25, (14, 14), 1, (1, 1), "", "Clip, act_min=0.0, act_max=6.0", true),
        (64, 13, (7, 9), 3, (1, 1), "", "Relu", true),
        // 3x3, K = 576: two passes over K (first / last differ)
        (64, 24, (12, 12), 3, (1, 1), "", "Clip, act_min=0.0, act_max=6.0", false),
        (64, 13, (9, 14), 3, (1, 1), "", "Clip, act_min=-0.5, act_max=0.75", true),
        // Winograd's batched products
        (24, 40, (16, 16), 3, (1, 1), ", winograd=4", "Relu", true),
        (8, 7, (10, 10), 3, (1, 1), ", winograd=2", "None", false),
        // narrow rows packed flat: stride 2 to 7x7 (3x3 and 1x1), dilation 2, 5x5
        (32, 28, (14, 14), 3, (2, 1), "", "Relu", true),
        (32, 26, (14, 14), 1, (2, 1), "", "None", false),
        (8, 12, (9, 11), 3, (1, 2), "", "None", false),
        (6, 16, (6, 5), 5, (1, 1), "", "Clip, act_min=-0.5, act_max=0.75", false),
        // stride 2 on wide rows: panels per output row, their whole groups
        // by the assembled even-lane packer (`even_pack`), the rest (the
        // left border, a partial group, the columns past the last pair of
        // floats) lane by lane; odd and even input widths, a 7x7 stem
        (3, 16, (40, 70), 3, (2, 1), "", "Relu", true),
        (4, 13, (33, 67), 3, (2, 1), "", "HardSwish", false),
        (3, 12, (30, 61), 7, (2, 1), "", "None", false),
        // one input channel, K = 9, 5-pixel rows: the small-K direct conv
        // without the tiles (`conv_smallk`), the packed conv with them
        (1, 16, (13, 10), 3, (2, 1), "", "Relu", false),
        // K = 1: one input channel, 1x1 (a single K step in the tiles)
        (1, 37, (20, 20), 1, (1, 1), "", "Relu", true),
        // HardSwish (Paddle/MobileNetV3 exports)
        (16, 37, (9, 9), 1, (1, 1), "", "HardSwish", true),
        (24, 40, (16, 16), 3, (1, 1), ", winograd=4", "HardSwish", false),
        // transcendental activations: the tiles store, the math stream
        // applies them per output row (after the last of two K passes)
        (16, 37, (9, 9), 1, (1, 1), "", "Sigmoid", true),
        (64, 24, (12, 12), 3, (1, 1), "", "Tanh", false),
        (16, 30, (19, 19), 1, (1, 1), "", "Gelu, act_tanh=false", true),
        (8, 12, (9, 11), 3, (1, 2), "", "Gelu, act_tanh=true", false),
        // pointwise on small planes, channels in the lanes (`conv_lanes`):
        // 49 pixels (four 12-row blocks and one row), 25, 15 and 2 (A not
        // packed); the activation in the store, or after the residual in
        // the transposing pass
        (40, 32, (7, 7), 1, (1, 1), "", "Clip, act_min=0.0, act_max=6.0", false),
        (33, 48, (5, 5), 1, (1, 1), "", "Relu", true),
        (17, 16, (3, 5), 1, (1, 1), "", "HardSwish", true),
        (24, 64, (1, 2), 1, (1, 1), "", "None", false),
        (16, 32, (7, 7), 1, (1, 1), "", "Sigmoid", false),
        (16, 32, (7, 7), 1, (1, 1), "", "LeakyRelu, act_alpha=0.1", false),
        // epilogues left to the Cranelift tile
        (16, 24, (8, 8), 1, (1, 1), "", "LeakyRelu, act_alpha=0.1", false),
        (16, 24, (8, 8), 1, (1, 1), "", "Clip, act_min=-6.0, act_max=-0.0", false),
        // a -0 lower bound: the tiles' selects keep fmax's -0 (no +0.0 added)
        (16, 24, (8, 8), 1, (1, 1), "", "Clip, act_min=-0.0, act_max=6.0", false),
    ];
    for (i, cs) in cases.iter().enumerate() {
        let (text, ins) = graph(cs);
        let act = cs.6;
        // LeakyRelu and a -0 upper bound must stay on the Cranelift tile
        let wide = !(act.starts_with("LeakyRelu") || act.contains("act_max=-0.0"));
        if !check(i, &text, &ins, wide) {
            return;
        }
    }
}

/// The MatMul/Gemm engine's tiles: tall A (packed at run time) and short
/// A (strided, also transposed), constant and run-time B, full and
/// leftover panel groups, and every store epilogue the tile applies
/// (Gemm's alpha, beta·C per row and per column, MatMulFused's bias,
/// residual, Relu/Clip, HardSwish).
#[test]
fn avx2_matmul_tiles_equal_the_128_bit_tiles() {
    let v = |shape: &[usize], seed: usize| {
        let n: usize = shape.iter().product();
        t(shape, &xs(n + seed)[seed..].iter().map(|x| x * 0.25).collect::<Vec<_>>())
    };
    // a transposed-A Gemm with a column bias starting at `c0`, clipped to [lo, hi]
    let clip_gemm = |lo: &str, hi: &str, c0: &str| {
        format!(
            "input %0 \"a\": f32[9,7]\n  const %1 \"b\": f32[9,32] = iota(-0.5, 0.003)\n  const %2 \"c\": f32[32] = iota({c0}, 0.01)\n  %3 = GemmFused{{alpha=1.0, beta=1.0, trans_a=true, trans_b=false, layer=\"g\", act=Clip, act_min={lo}, act_max={hi}, residual=false}}(%0, %1, %2): f32[7,32] @\"g\"\n  output \"y\" = %3"
        )
    };
    let cases: [(String, Vec<Tensor>, bool); 10] = [
        // K = 1: one K step
        (
            "input %0 \"a\": f32[37,1]\n  const %1 \"b\": f32[1,40] = iota(-1.0, 0.05)\n  %2 = MatMul{layer=\"m\"}(%0, %1): f32[37,40] @\"m\"\n  output \"y\" = %2".into(),
            vec![v(&[37, 1], 11)],
            true,
        ),
        (
            "input %0 \"a\": f32[37,64]\n  const %1 \"b\": f32[64,40] = iota(-1.0, 0.001)\n  %2 = MatMul{layer=\"m\"}(%0, %1): f32[37,40] @\"m\"\n  output \"y\" = %2".into(),
            vec![v(&[37, 64], 1)],
            true,
        ),
        // zero bounds: -0 below (negative sums become -0, no +0.0 added),
        // +0 above
        (clip_gemm("-0.0", "0.25", "-0.2"), vec![v(&[9, 7], 9)], true),
        (clip_gemm("-0.25", "0.0", "-0.2"), vec![v(&[9, 7], 10)], true),
        (
            "input %0 \"a\": f32[2,20,48]\n  input %1 \"r\": f32[2,20,36]\n  const %4 \"b\": f32[48,36] = iota(0.5, -0.0007)\n  const %5 \"c\": f32[36] = iota(-0.3, 0.02)\n  %7 = MatMulFused{layer=\"m\", act=Relu, residual=true}(%0, %4, %5, %1): f32[2,20,36] @\"m\"\n  output \"y\" = %7".into(),
            vec![v(&[2, 20, 48], 2), v(&[2, 20, 36], 3)],
            true,
        ),
        (
            "input %0 \"a\": f32[13,30]\n  const %1 \"b\": f32[44,30] = iota(0.2, -0.0005)\n  const %2 \"c\": f32[1,44] = iota(0.1, 0.1)\n  %3 = Gemm{alpha=0.5, beta=2.0, trans_a=false, trans_b=true, layer=\"g\"}(%0, %1, %2): f32[13,44] @\"g\"\n  output \"y\" = %3".into(),
            vec![v(&[13, 30], 4)],
            true,
        ),
        (
            "input %0 \"a\": f32[13,30]\n  const %1 \"b\": f32[30,16] = iota(0.2, -0.001)\n  const %2 \"c\": f32[13,1] = iota(0.1, 0.1)\n  %3 = Gemm{alpha=1.0, beta=0.5, trans_a=false, trans_b=false, layer=\"g\"}(%0, %1, %2): f32[13,16] @\"g\"\n  output \"y\" = %3".into(),
            vec![v(&[13, 30], 5)],
            true,
        ),
        (
            "input %0 \"a\": f32[5,33]\n  input %1 \"b\": f32[33,24]\n  %2 = MatMul{layer=\"m\"}(%0, %1): f32[5,24] @\"m\"\n  output \"y\" = %2".into(),
            vec![v(&[5, 33], 6), v(&[33, 24], 7)],
            true,
        ),
        (clip_gemm("-1.0", "1.0", "0.0"), vec![v(&[9, 7], 8)], true),
        (
            "input %0 \"a\": f32[2,20,48]\n  input %1 \"r\": f32[2,20,36]\n  const %4 \"b\": f32[48,36] = iota(0.5, -0.0007)\n  const %5 \"c\": f32[36] = iota(-0.3, 0.02)\n  %7 = MatMulFused{layer=\"m\", act=HardSwish, residual=true}(%0, %4, %5, %1): f32[2,20,36] @\"m\"\n  output \"y\" = %7".into(),
            vec![v(&[2, 20, 48], 2), v(&[2, 20, 36], 3)],
            true,
        ),
    ];
    for (i, (body, ins, wide)) in cases.iter().enumerate() {
        if !check(i, &format!("graph \"g\"\n  {body}\n"), ins, *wide) {
            return;
        }
    }
}

/// The pattern-sparse conv's register tiles against its 128-bit passes:
/// row and column blocks with and without remainders, every partial last
/// vector from 1 to 7 lanes, several blocks of input channels (tiles that
/// start from partial sums, the last one applying the epilogue), masks of
/// 2, 4 and 5 taps, one or no kernels for a channel, removed kernels,
/// padding, dilation, bias and every epilogue (none, Relu, Clip,
/// HardSwish, residual in the tiles; LeakyRelu as the second pass). Same
/// bits, and the reference.
#[test]
fn avx2_pattern_tiles_equal_the_128_bit_passes() {
    // masks over the 3x3 taps (row-major) of 4, 2 and 5 taps
    let masks: [&[usize]; 4] = [&[1, 3, 4, 5], &[0, 4, 5, 8], &[4, 7], &[1, 2, 4, 6, 7]];
    // (input channels, output channels, plane, dilation, activation, residual)
    type Pat = (usize, usize, (usize, usize), usize, &'static str, bool);
    let cases: [Pat; 13] = [
        (8, 6, (20, 21), 1, "Relu", false),
        (12, 5, (16, 16), 1, "None", true),
        (6, 7, (9, 13), 1, "Clip, act_min=-0.25, act_max=0.5", true),
        (8, 4, (14, 19), 2, "HardSwish", false),
        (5, 3, (11, 7), 1, "Relu", true),
        (80, 4, (8, 9), 1, "Relu", true),
        (60, 3, (10, 14), 1, "HardSwish", true),
        (70, 2, (13, 6), 1, "LeakyRelu, act_alpha=0.125", true),
        (9, 3, (8, 8), 1, "Relu", false),
        (40, 3, (26, 25), 2, "Clip, act_min=0.0, act_max=6.0", false),
        (8, 6, (24, 30), 1, "None", false),
        (200, 3, (9, 10), 1, "Clip, act_min=-0.0, act_max=0.25", true),
        (64, 3, (12, 16), 1, "LeakyRelu, act_alpha=0.125", false),
    ];
    for (i, &(c, m, (h, w), d, act, residual)) in cases.iter().enumerate() {
        let vals = xs(m * c * 9 + 5);
        let mut wt = vec![0f32; m * c * 9];
        for o in 0..m {
            for ch in 0..c {
                let pick = (o * 7 + ch * 3 + i) % 6;
                if pick < 4 {
                    for &tap in masks[pick] {
                        let at = (o * c + ch) * 9 + tap;
                        wt[at] = vals[at + 5] * 0.2 + 0.01;
                    }
                }
            }
        }
        let b: Vec<f32> = (0..m).map(|j| 0.05 * j as f32 - 0.1).collect();
        let x: Vec<f32> = xs(c * h * w).iter().map(|v| v * 0.5).collect();
        let r: Vec<f32> = xs(m * h * w + 7)[7..].to_vec();
        let text = format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,{c},{h},{w}]\n  input %9 \"r\": f32[1,{m},{h},{w}]\n  const %1 \"w\": f32[{m},{c},3,3] = {}\n  const %2 \"b\": f32[{m}] = {}\n  %3 = ConvFused{{kernel=[3,3], strides=[1,1], dilations=[{d},{d}], pads=[{d},{d},{d},{d}], group=1, layer=\"c\", act={act}, residual={residual}}}(%0, %1, %2{}): f32[1,{m},{h},{w}] @\"c\"\n  output \"y\" = %3\n",
            list(&wt),
            list(&b),
            if residual { ", %9" } else { "" }
        );
        if !check(100 + i, &text, &[t(&[1, c, h, w], &x), t(&[1, m, h, w], &r)], true) {
            return;
        }
    }
}

/// The assembled depthwise pass (`ukernel::avx2::dw_plane`, stride-1 and
/// stride-2 depthwise convs, its plane copied by `dw_copy`) against the
/// 128-bit Cranelift kernel: 3x3,
/// 5x5 and 7x7, dilation 2, odd and even pads (stride 2: which parity half
/// an input column lands in), rows whose width leaves no, a 4-pixel and a
/// 1..3-pixel tail after the 8-pixel vectors and more than one group of 8
/// vectors, narrow rows run as one flat run over the padded pitch, a batch
/// of 2, every epilogue (none, Relu, Clip, HardSwish, residual). Same bits,
/// and the reference.
#[test]
fn avx2_depthwise_passes_equal_the_128_bit_kernel() {
    // (batch, channels, plane, kernel, stride, dilation, activation, residual)
    type Dw = (usize, usize, (usize, usize), usize, usize, usize, &'static str, bool);
    let cases: [Dw; 34] = [
        // rows of 4..7 pixels on planes past 256 pixels (`dw_plane`'s two
        // overlapping xmm vectors; smaller ones take the flat passes), rows
        // of 2 (the 128-bit kernel)
        (1, 3, (60, 6), 5, 1, 1, "HardSwish", false),
        (1, 3, (50, 7), 3, 1, 1, "Relu", true),
        (1, 6, (14, 14), 5, 1, 1, "HardSwish", false),
        (2, 5, (7, 7), 5, 1, 1, "None", false),
        (1, 4, (3, 2), 5, 1, 1, "Relu", false),
        (1, 3, (9, 12), 5, 1, 2, "Clip, act_min=-0.5, act_max=0.75", false),
        (1, 3, (9, 12), 7, 1, 1, "None", true),
        // a small 3x3 "same" plane: the flat passes (the 128-bit kernel's
        // small-plane path without micro-kernels)
        (1, 4, (14, 14), 3, 1, 1, "Relu", false),
        (1, 6, (9, 40), 3, 1, 1, "None", false),
        (2, 5, (11, 13), 5, 1, 1, "HardSwish", false),
        (1, 4, (12, 79), 5, 1, 1, "Relu", true),
        (1, 3, (10, 70), 3, 1, 1, "Clip, act_min=-0.5, act_max=0.75", false),
        (1, 4, (16, 15), 7, 1, 1, "HardSwish", true),
        (1, 3, (13, 36), 3, 1, 2, "None", true),
        (1, 5, (8, 68), 5, 1, 1, "None", false),
        (2, 3, (14, 9), 5, 1, 2, "Relu", false),
        (1, 6, (19, 66), 3, 2, 1, "None", false),
        (2, 5, (21, 33), 5, 2, 1, "HardSwish", true),
        (1, 4, (24, 150), 5, 2, 1, "Relu", false),
        (1, 4, (31, 30), 7, 2, 1, "Clip, act_min=0.0, act_max=6.0", false),
        (1, 3, (26, 75), 3, 2, 2, "None", true),
        // a row's last ymm overlapping the one before (56 = 48 + 8, 50 = 48 + 2,
        // 28 = 24 + 4), narrow stride-2 rows (7 and 5 pixels: xmm pairs)
        (1, 3, (5, 56), 3, 1, 1, "Clip, act_min=0.0, act_max=6.0", true),
        (1, 3, (6, 50), 3, 1, 1, "HardSwish", false),
        (1, 4, (28, 28), 3, 1, 1, "Relu", true),
        (1, 4, (14, 14), 5, 2, 1, "HardSwish", false),
        (2, 3, (40, 10), 3, 2, 1, "None", true),
        // an output plane of at most 64 pixels: the 128-bit kernel for 3x3
        (2, 3, (10, 10), 3, 2, 1, "None", true),
        // small "same" planes: the 128-bit kernel's flat path, on AVX-512
        // its assembled form (`dw_flat`), with AVX2 only `ymm_dw_flat`: DS-CNN's 25x5 (125 pixels, the
        // last 4-lane group overlapping), 7x7, 16 pixels (one vector), 42,
        // 54 at dilation 2, 169, and 253 (16 vectors: two passes of 8)
        (1, 4, (25, 5), 3, 1, 1, "Relu", false),
        (2, 3, (7, 7), 3, 1, 1, "HardSwish", true),
        (1, 3, (4, 4), 3, 1, 1, "Relu", false),
        (1, 3, (6, 7), 3, 1, 1, "Clip, act_min=-0.5, act_max=0.75", true),
        (1, 3, (9, 6), 3, 1, 2, "None", true),
        (1, 5, (13, 13), 3, 1, 1, "None", true),
        (1, 2, (11, 23), 3, 1, 1, "Relu", false),
    ];
    for (i, &(n, c, (h, w), k, st, d, act, residual)) in cases.iter().enumerate() {
        let p = d * (k - 1) / 2;
        let dw =
            DwConv { n, c, plane: (h, w), kernel: (k, k), stride: st, dilation: (d, d), pads: [p; 4], act, residual };
        let (text, ins, (oh, ow)) = dw.graph();
        // with AVX-512, 3x3 stride-1 "same" planes of up to 16384 pixels
        // (5x5 ones of up to 256) with rows of at least 4 run on `dw_flat`;
        // else the assembled pass runs on rows of at least 4 pixels, for
        // kernels larger than 3x3 and for 3x3 planes other than output
        // planes of at most 64 pixels and small stride-1 "same" ones
        // (`lower::depthwise::wide_pays`)
        // with AVX2 only, stride-1 "same" planes of 8 to 256 pixels with
        // rows of at least 4 and up to 25 taps run on `ymm_dw_flat`
        let small_same = st == 1 && oh == h && ow == w && h * w <= 256;
        let same = st == 1 && oh == h && ow == w && w >= 4;
        let flat = |caps: &Caps| caps.avx512 && same && (k == 3 && h * w <= 16384 || k == 5 && small_same);
        let flat_ymm = same && small_same && h * w >= 8 && k <= 5;
        let wide = |caps: &Caps| flat(caps) || flat_ymm || ow >= 4 && (k > 3 || !(oh * ow <= 64 || small_same));
        if !check_on(200 + i, &text, &ins, &wide) {
            return;
        }
    }
}

/// A depthwise `ConvFused` case: batch, channels, input plane, kernel
/// `(kh, kw)`, stride, dilations, pads (top, left, bottom, right), the
/// activation's attributes and whether a residual is added.
struct DwConv {
    n: usize,
    c: usize,
    plane: (usize, usize),
    kernel: (usize, usize),
    stride: usize,
    dilation: (usize, usize),
    pads: [usize; 4],
    act: &'static str,
    residual: bool,
}

impl DwConv {
    /// The graph text, its inputs (fixed pseudo-random data, a residual
    /// input always: unused without `residual`) and the output plane.
    fn graph(&self) -> (String, Vec<Tensor>, (usize, usize)) {
        let &DwConv { n, c, plane: (h, w), kernel: (kh, kw), stride: st, dilation: (dh, dw), pads: p, act, residual } =
            self;
        let oh = (h + p[0] + p[2] - dh * (kh - 1) - 1) / st + 1;
        let ow = (w + p[1] + p[3] - dw * (kw - 1) - 1) / st + 1;
        let wt: Vec<f32> = xs(c * kh * kw + 3)[3..].iter().map(|v| v * 0.1).collect();
        let b: Vec<f32> = (0..c).map(|j| 0.1 * j as f32 - 0.2).collect();
        let x: Vec<f32> = xs(n * c * h * w).iter().map(|v| v * 0.5).collect();
        let r: Vec<f32> = xs(n * c * oh * ow + 7)[7..].to_vec();
        let text = format!(
            "graph \"g\"\n  input %0 \"x\": f32[{n},{c},{h},{w}]\n  input %9 \"r\": f32[{n},{c},{oh},{ow}]\n  const %1 \"w\": f32[{c},1,{kh},{kw}] = {}\n  const %2 \"b\": f32[{c}] = {}\n  %3 = ConvFused{{kernel=[{kh},{kw}], strides=[{st},{st}], dilations=[{dh},{dw}], pads=[{},{},{},{}], group={c}, layer=\"c\", act={act}, residual={residual}}}(%0, %1, %2{}): f32[{n},{c},{oh},{ow}] @\"c\"\n  output \"y\" = %3\n",
            list(&wt),
            list(&b),
            p[0],
            p[1],
            p[2],
            p[3],
            if residual { ", %9" } else { "" }
        );
        (text, vec![t(&[n, c, h, w], &x), t(&[n, c, oh, ow], &r)], (oh, ow))
    }
}

/// The signed zeros of the depthwise kernels' skipped and zeroed lanes:
/// with every input `-0.0`, positive weights and a `-0.0` bias, each sum
/// stays `-0.0` until the 128-bit kernel adds a zeroed lane (`+0·w`),
/// which makes it `+0.0`; so the output's signs map which taps each lane's
/// group skipped. `dw_flat` (AVX-512, `native`) must give the same map on
/// the flat path's planes (up to 256 pixels, `Groups::Flat`) and the row
/// kernel's (`Groups::Rows`), and `ymm_dw_flat` (AVX2, `haswell`) on the
/// flat path's; each skipped with a printed reason where the host lacks
/// the ISA.
#[test]
fn depthwise_signed_zeros_follow_the_128_bit_groups() {
    let planes =
        [(3, 25, 5, 3), (2, 7, 7, 3), (2, 6, 7, 3), (2, 28, 28, 3), (2, 9, 40, 3), (2, 5, 57, 3), (2, 14, 14, 5)];
    for cpu in ["native", "haswell"] {
        for (i, &(c, h, w, k)) in planes.iter().enumerate() {
            if cpu == "haswell" && h * w > 256 {
                continue;
            }
            let wt = list(&vec![0.5f32; c * k * k]);
            let b = list(&vec![-0.0f32; c]);
            let p = k / 2;
            let text = format!(
                "graph \"g\"\n  input %0 \"x\": f32[1,{c},{h},{w}]\n  const %1 \"w\": f32[{c},1,{k},{k}] = {wt}\n  const %2 \"b\": f32[{c}] = {b}\n  %3 = ConvFused{{kernel=[{k},{k}], strides=[1,1], dilations=[1,1], pads=[{p},{p},{p},{p}], group={c}, layer=\"c\", act=None, residual=false}}(%0, %1, %2): f32[1,{c},{h},{w}] @\"c\"\n  output \"y\" = %3\n"
            );
            let x = t(&[1, c, h, w], &vec![-0.0; c * h * w]);
            let (off, _, _) = run_on("native", &text, std::slice::from_ref(&x), false);
            if !host_runs(cpu) {
                eprintln!("skipped: this CPU cannot run the {cpu} preset's flat depthwise pass");
                break;
            }
            let (on, n_on, caps) = run_on(cpu, &text, &[x], true);
            if cpu == "native" && !caps.avx512 {
                eprintln!("skipped: no AVX-512F + VL on this CPU, so no dw_flat to check");
                break;
            }
            // `dw_flat`'s FMAs are on `zmm`; `ymm_dw_flat`'s on `ymm`
            let (zmm, ymm) = tile_fmas(&text, cpu);
            // (`ymm_dw_flat` alone: `dw_plane` would add its copy kernel)
            let ran = if cpu == "native" { zmm > 0 } else { ymm > 0 && n_on == 1 };
            assert!(n_on > 0 && ran, "case {i} ({cpu}): the flat pass did not run");
            let negative = off.iter().filter(|v| v.is_sign_negative()).count();
            assert!(negative > 0 && negative < off.len(), "case {i}: {negative} of {} signs negative", off.len());
            let diff = on.iter().zip(&off).position(|(a, b)| a.to_bits() != b.to_bits());
            assert!(diff.is_none(), "case {i} ({cpu}, {h}x{w}): pixel {diff:?} differs in sign");
        }
    }
}

/// Whether this host runs code compiled for `cpu` (`native` always;
/// `haswell` with AVX2 + FMA).
fn host_runs(cpu: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        cpu == "native" || has!("avx2") && has!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cpu == "native"
    }
}

/// Inputs for the math streams: specials (signed zeros, infinities, NaN,
/// subnormals, the extremes, the routines' branch points and clamps) then
/// a sweep over [-12, 12] and a spread of magnitudes.
fn math_inputs(n: usize) -> Vec<f32> {
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        f32::MAX,
        f32::MIN,
        0.625,
        -0.625,
        0.875,
        -0.875,
        4.0,
        -4.0,
        10.0,
        -10.0,
        88.7,
        89.5,
        -103.9,
        -110.5,
        1e-20,
        -3e-8,
    ];
    let mut x: Vec<f32> = specials.to_vec();
    let sweep = n.saturating_sub(x.len()) / 2;
    x.extend((0..sweep).map(|i| -12.0 + 24.0 * i as f32 / sweep.max(1) as f32));
    x.extend((0..n).map(|i| (if i % 2 == 0 { 1.0 } else { -1.0 }) * 10f32.powf(-6.0 + 8.0 * i as f32 / n as f32)));
    x.truncate(n);
    x
}

/// The AVX2 math streams (`ukernel::vmath`) against the 128-bit Cranelift
/// loops they replace: every standalone op with a stream, at lengths that
/// leave every tail from 0 to 7 elements, and each transcendental MatMul
/// epilogue (rows of 36 and 8 columns), chains with streamed steps and
/// Softmax's exp. Same bits (NaN against NaN), and the
/// reference evaluator where it is finite.
#[test]
fn avx2_math_streams_equal_the_128_bit_loops() {
    let ops = ["Exp", "Erf", "Tanh", "Sigmoid", "Gelu{tanh=false}", "Gelu{tanh=true}"];
    for (i, op) in ops.iter().enumerate() {
        let n = 8 * 60 + i + 2 * (i % 2);
        let x = math_inputs(n);
        let text =
            format!("graph \"g\"\n  input %0 \"x\": f32[{n}]\n  %1 = {op}(%0): f32[{n}] @\"u\"\n  output \"y\" = %1\n");
        let ins = [t(&[n], &x)];
        let (on, n_on, caps) = run(&text, &ins, true);
        if !caps.avx2 {
            eprintln!("skipped: the host has no AVX2 + FMA, so no assembled math streams to check");
            return;
        }
        let (off, _, _) = run(&text, &ins, false);
        assert_eq!(n_on, 1, "{op}: one stream expected");
        same_bits(op, &on, &off);
        let g = kerf_ir::text::parse(&text).unwrap();
        let want = reference(&g, &ins).remove(0);
        let finite = |v: &[f32]| v.iter().map(|y| if y.is_finite() { *y } else { 0.0 }).collect::<Vec<_>>();
        close(op, &finite(&on), &finite(&want), 1e-6, 1e-5);
    }
    // chains split at their streamed steps, in chunks of 512 (SiLU; a
    // stream mid-chain, a second one after it, a broadcast operand)
    for (steps, n) in [("Sigmoid Mul($0,@)", 8 * 70 + 3), ("Add(@,$1) Tanh Mul($0,@) Gelu{tanh=true}", 1100)] {
        let text = format!(
            "graph \"g\"\n  input %0 \"x\": f32[2,{n}]\n  input %1 \"b\": f32[2,1]\n  %2 = Chain{{steps=\"{steps}\"}}(%0, %1): f32[2,{n}] @\"c\"\n  output \"y\" = %2\n"
        );
        let x = math_inputs(2 * n);
        let ins = [t(&[2, n], &x), t(&[2, 1], &[0.25, -0.5])];
        let (on, n_on, caps) = run(&text, &ins, true);
        if !caps.avx2 {
            return;
        }
        let (off, _, _) = run(&text, &ins, false);
        assert!(n_on >= 1, "{steps}: no stream");
        same_bits(steps, &on, &off);
    }
    // Softmax's exp runs as a stream over each row (rows of 64, 37 with a
    // tail, 5 with none), between the max and the sum
    for len in [64, 37, 5] {
        let text = format!(
            "graph \"g\"\n  input %0 \"x\": f32[3,{len}]\n  %1 = Softmax{{axis=1}}(%0): f32[3,{len}] @\"s\"\n  output \"y\" = %1\n"
        );
        let x: Vec<f32> = xs(3 * len).iter().map(|v| v * 30.0).collect();
        let ins = [t(&[3, len], &x)];
        let (on, n_on, caps) = run(&text, &ins, true);
        if !caps.avx2 {
            return;
        }
        let (off, _, _) = run(&text, &ins, false);
        assert_eq!(n_on, usize::from(len >= 8), "softmax {len}: streams");
        same_bits(&format!("softmax {len}"), &on, &off);
        // the reference evaluator has no Softmax: f64 per row
        let want: Vec<f32> = x
            .chunks(len)
            .flat_map(|r| {
                let m = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
                let e: Vec<f64> = r.iter().map(|&v| (f64::from(v) - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| (v / s) as f32)
            })
            .collect();
        close("softmax", &on, &want, 1e-6, 1e-5);
    }
    for (act, cols) in [("Gelu, act_tanh=false", 36), ("Gelu, act_tanh=true", 8), ("Sigmoid", 36), ("Tanh", 20)] {
        let text = format!(
            "graph \"g\"\n  input %0 \"a\": f32[2,20,48]\n  const %4 \"b\": f32[48,{cols}] = iota(0.5, -0.0007)\n  const %5 \"c\": f32[{cols}] = iota(-0.3, 0.02)\n  %7 = MatMulFused{{layer=\"m\", act={act}, residual=false}}(%0, %4, %5): f32[2,20,{cols}] @\"m\"\n  output \"y\" = %7\n"
        );
        let a: Vec<f32> = xs(2 * 20 * 48).iter().map(|v| v * 2.0).collect();
        let ins = [t(&[2, 20, 48], &a)];
        let (on, _, caps) = run(&text, &ins, true);
        if !caps.avx2 {
            return;
        }
        let (off, _, _) = run(&text, &ins, false);
        same_bits(act, &on, &off);
        let g = kerf_ir::text::parse(&text).unwrap();
        close(act, &on, &reference(&g, &ins).remove(0), 1e-5, 1e-4);
    }
}

/// MaxPool's assembled row pass (`ymm` with AVX2, `zmm` with AVX-512,
/// on each of [`wide_cpus`]) against the 128-bit pass: the same bits (NaN
/// payloads included: the pass sets all bits) and a naive maximum, on
/// ResNet's 3x3 stride-2 pad-1 pool, SqueezeNet's unpadded ceil-mode one,
/// 2x2, stride-1 windows, rows just long enough for one group or not, and
/// rows whose groups of 16 leave room for one of 8 (or have none);
/// inputs with NaN, both zeros and ties. Printed and skipped without AVX2.
#[test]
fn max_pool_rows_equal_the_128_bit_pass() {
    // (channels, plane, kernel, stride, pad, ceil mode)
    let cases = [
        (3, (40, 112), 3, 2, 1, false),
        (2, (23, 111), 3, 2, 0, true),
        (2, (9, 70), 2, 2, 0, false),
        (2, (10, 37), 3, 1, 1, false),
        (1, (12, 52), 5, 1, 2, false),
        (2, (8, 36), 3, 2, 1, false),
        (1, (7, 18), 3, 1, 0, false),
        // SqueezeNet's 27 → 13 pool: no group of 16, one of 8 (with AVX-512: the ymm pass after no zmm one)
        (2, (9, 27), 3, 2, 0, true),
        // 56 → 28: with AVX-512 one group of 16, then one of 8
        (2, (10, 56), 3, 2, 1, false),
    ];
    for (i, &(c, (h, w), k, s, p, ceil)) in cases.iter().enumerate() {
        let out = |n: usize| {
            let span = n + 2 * p - k;
            if ceil {
                span.div_ceil(s) + 1
            } else {
                span / s + 1
            }
        };
        let (oh, ow) = (out(h), out(w));
        let x: Vec<f32> = xs(c * h * w)
            .iter()
            .enumerate()
            .map(|(j, &v)| match j % 37 {
                3 => f32::NAN,
                5 | 6 => 0.0,
                7 | 8 => -0.0,
                11 => f32::from_bits(0x7fc0_1234), // a NaN with a payload
                _ => (v * 4.0).round() * 0.25,     // ties between taps
            })
            .collect();
        let text = format!(
            "graph \"mp\"\n  input %0 \"x\": f32[1,{c},{h},{w}]\n  %1 = MaxPool{{kernel=[{k},{k}], strides=[{s},{s}], dilations=[1,1], pads=[{p},{p},{p},{p}], ceil_mode={ceil}}}(%0): f32[1,{c},{oh},{ow}] @\"m\"\n  output \"y\" = %1\n"
        );
        let ins = [t(&[1, c, h, w], &x)];
        let mut runs = Vec::new();
        for cpu in wide_cpus() {
            let (y, n_on, caps) = run_on(cpu, &text, &ins, true);
            if !caps.avx2 {
                eprintln!("skipped: the host has no AVX2, so no MaxPool row pass to check");
                return;
            }
            let (off, n_off, _) = run_on(cpu, &text, &ins, false);
            assert!(n_on > 0 && n_off == 0, "case {i} ({cpu}): {n_on} / {n_off} micro-kernels");
            let diff = y.iter().zip(&off).position(|(a, b)| a.to_bits() != b.to_bits());
            assert!(
                diff.is_none(),
                "case {i} ({cpu}): element {diff:?}: {:?} vs {:?}",
                diff.map(|d| y[d]),
                diff.map(|d| off[d])
            );
            runs.push(y);
        }
        // the reference evaluator has no MaxPool: the valid taps' maximum,
        // NaN where any is NaN
        for (j, got) in runs.iter().flat_map(|y| y.iter().enumerate()) {
            let (ch, oy, ox) = (j / (oh * ow), j / ow % oh, j % ow);
            let mut want = f32::NEG_INFINITY;
            for ky in 0..k {
                for kx in 0..k {
                    let (y, x0) = ((oy * s + ky) as i64 - p as i64, (ox * s + kx) as i64 - p as i64);
                    if (0..h as i64).contains(&y) && (0..w as i64).contains(&x0) {
                        let v = x[(ch * h + y as usize) * w + x0 as usize];
                        want = if v.is_nan() || want.is_nan() { f32::NAN } else { want.max(v) };
                    }
                }
            }
            assert!(*got == want || (got.is_nan() && want.is_nan()), "case {i}: element {j}: {got} vs {want}");
        }
    }
}

/// The assembled plane pad (`ukernel::avx512::pad_planes`, a constant Pad
/// of the last two axes on AVX-512BW targets) against a naive pad and
/// against Cranelift's (micro-kernels off): u8, i8, i16, f32 and f64
/// planes; output rows of fewer than 64 bytes, exactly 64 and 128, and
/// several chunks with a partial one; a left border wider than a chunk
/// (a chunk of the value only); pads on one side, on the row axis only,
/// on the column axis only; one row; many planes; border rows longer than
/// eight chunks (the fill's loop). Printed and skipped
/// without AVX-512 VNNI (whose CPUs all have AVX-512BW).
#[test]
fn plane_pads_equal_a_naive_pad() {
    // (dtype, element bytes, value, value's bits), planes, (h, w), [top, left, bottom, right]
    type PadCase = ((&'static str, usize, &'static str, u64), usize, (usize, usize), [usize; 4]);
    let cases: [PadCase; 13] = [
        (("u8", 1, "128.0", 128), 64, (7, 7), [1, 1, 1, 1]),
        (("u8", 1, "0.0", 0), 3, (56, 56), [1, 1, 1, 1]),
        (("u8", 1, "3.0", 3), 2, (5, 62), [1, 1, 1, 1]),
        (("u8", 1, "3.0", 3), 2, (4, 126), [0, 1, 2, 1]),
        (("u8", 1, "9.0", 9), 2, (3, 150), [2, 3, 0, 5]),
        (("u8", 1, "7.0", 7), 2, (4, 10), [0, 70, 0, 3]),
        (("i8", 1, "-5.0", 0xfb), 3, (1, 9), [3, 0, 0, 4]),
        (("u8", 1, "1.0", 1), 5, (6, 8), [2, 0, 3, 0]),
        (("i16", 2, "-7.0", 0xfff9), 2, (5, 33), [1, 2, 1, 2]),
        (("f32", 4, "0.5", 0x3f00_0000), 2, (4, 40), [1, 3, 2, 1]),
        (("f32", 4, "-2.0", 0xc000_0000), 1, (3, 16), [0, 0, 0, 0]),
        (("f64", 8, "3.0", 0x4008_0000_0000_0000), 2, (3, 9), [1, 1, 1, 1]),
        // border rows of more than eight chunks: the fill's loop
        (("u8", 1, "5.0", 5), 2, (3, 200), [4, 1, 3, 1]),
    ];
    for (i, &((dt, es, v, bits), planes, (h, w), [top, left, bottom, right])) in cases.iter().enumerate() {
        let (oh, ow) = (top + h + bottom, left + w + right);
        let text = format!(
            "graph \"p\"\n  input %0 \"x\": {dt}[1,{planes},{h},{w}]\n  %1 = Pad{{pads=[0,0,{top},{left},0,0,{bottom},{right}], mode=constant, value={v}}}(%0): {dt}[1,{planes},{oh},{ow}] @\"p\"\n  output \"y\" = %1\n"
        );
        let x: Vec<u8> = (0..planes * h * w * es).map(|j| (j * 7919 % 251) as u8).collect();
        let (on, n_on, caps) = run_bytes(&text, &x, true);
        if !caps.vnni {
            eprintln!("skipped: the host has no AVX-512 VNNI (and so no AVX-512BW promised), so no plane pad to check");
            return;
        }
        let (off, n_off, _) = run_bytes(&text, &x, false);
        let no_pad = top + left + bottom + right == 0;
        assert!((n_on == 1 || no_pad) && n_off == 0, "case {i}: {n_on} / {n_off} micro-kernels");
        let value = &bits.to_le_bytes()[..es];
        let mut want = Vec::with_capacity(on.len());
        for p in 0..planes {
            for y in 0..oh {
                for c in 0..ow {
                    let inside = (top..top + h).contains(&y) && (left..left + w).contains(&c);
                    match inside {
                        true => {
                            let at = ((p * h + y - top) * w + c - left) * es;
                            want.extend_from_slice(&x[at..at + es]);
                        }
                        false => want.extend_from_slice(value),
                    }
                }
            }
        }
        same_bytes(&format!("case {i}, assembled"), &on, &want);
        same_bytes(&format!("case {i}, Cranelift"), &off, &want);
    }
}

/// The one-input graph `text` compiled for `native` with micro-kernels on
/// or off, run on the input's bytes `x` ([`common::run_rt`]: a poisoned
/// arena, nothing written outside the output): the output's bytes, how many
/// distinct micro-kernels the code holds, the capabilities.
fn run_bytes(text: &str, x: &[u8], ukernels: bool) -> (Vec<u8>, usize, Caps) {
    run_bytes_on("native", text, x, ukernels)
}

/// [`run_bytes`] for the x86-64 preset `cpu` (the host must run it).
fn run_bytes_on(cpu: &str, text: &str, x: &[u8], ukernels: bool) -> (Vec<u8>, usize, Caps) {
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ty = g.ty(g.inputs[0]);
    let input = Tensor::from_bytes(ty.dtype, ty.shape.clone(), x.to_vec()).unwrap();
    let mut o = CompileOptions::parse("host", cpu, "t").unwrap();
    o.ukernels = ukernels;
    let jm = jit_compile(&g, &o).unwrap_or_else(|e| panic!("{e}"));
    let out = common::run_rt(jm.model(), &[input], None);
    (out, jm.report().micro_kernels, jm.report().caps)
}

/// The assembled byte MaxPool rows (`ukernel::avx512::byte_pool_rows`,
/// AVX-512BW, and VBMI at stride 2) against a naive maximum over the valid taps and
/// against the 128-bit pass (micro-kernels off), u8 and i8: ResNet's 3x3
/// stride-2 pad-1 pool (56 outputs: one masked group), SqueezeNet's
/// unpadded ceil-mode one (a window past the row's end), rows of 64
/// outputs and of several groups with a short last one (stride 1: 3
/// groups; stride 2: a last group of at most 32 outputs, one load per
/// pair of taps; of 33, the fewest that take two), 2x2 and 5x5 windows, a 3x2 window with row stride 1 and
/// column stride 2, a 1-wide window, seven distinct partial masks (one
/// loaded where it is used). Inputs run through every byte value.
/// On `native`, and on `cascadelake` where the host has VBMI (so `native`
/// is not already that): AVX-512BW without VBMI runs the stride-1 rows
/// assembled and the stride-2 ones on the 128-bit pass. Printed and
/// skipped without AVX-512 VNNI (BW).
#[test]
fn byte_max_pool_rows_equal_a_naive_max() {
    let mut cpus = vec!["native"];
    if common::qcase::cascadelake_adds() {
        cpus.push("cascadelake");
    }
    for cpu in cpus {
        byte_max_pool_rows_on(cpu);
    }
}

/// [`byte_max_pool_rows_equal_a_naive_max`] on one preset.
fn byte_max_pool_rows_on(cpu: &str) {
    // (planes, (h, w), (kh, kw), (sh, sw), (pad rows, pad columns), ceil mode)
    type PoolCase = (usize, (usize, usize), (usize, usize), (usize, usize), (usize, usize), bool);
    let cases: [PoolCase; 12] = [
        (4, (20, 112), (3, 3), (2, 2), (1, 1), false),
        (2, (13, 111), (3, 3), (2, 2), (0, 0), true),
        (2, (6, 64), (3, 3), (1, 1), (1, 1), false),
        (2, (5, 150), (3, 3), (1, 1), (1, 1), false),
        (2, (7, 150), (3, 3), (2, 2), (1, 1), false),
        (3, (8, 30), (2, 2), (2, 2), (0, 0), false),
        (2, (9, 41), (5, 5), (1, 1), (2, 2), false),
        (2, (9, 77), (3, 2), (1, 2), (1, 0), false),
        (2, (6, 40), (1, 1), (1, 2), (0, 0), false),
        (1, (4, 255), (3, 3), (2, 2), (1, 1), true),
        // a last group of 33 outputs: the first that needs both halves
        (1, (5, 194), (3, 3), (2, 2), (1, 1), false),
        // seven distinct partial masks: one loaded where it is used (k7)
        (2, (5, 150), (5, 5), (1, 1), (2, 2), false),
    ];
    for (dt, signed) in [("u8", false), ("i8", true)] {
        for (i, &(c, (h, w), (kh, kw), (sh, sw), (ph, pw), ceil)) in cases.iter().enumerate() {
            let out = |n: usize, k: usize, s: usize, p: usize| {
                let span = n + 2 * p - k;
                if ceil {
                    span.div_ceil(s) + 1
                } else {
                    span / s + 1
                }
            };
            let (oh, ow) = (out(h, kh, sh, ph), out(w, kw, sw, pw));
            let text = format!(
                "graph \"mp\"\n  input %0 \"x\": {dt}[1,{c},{h},{w}]\n  %1 = MaxPool{{kernel=[{kh},{kw}], strides=[{sh},{sw}], dilations=[1,1], pads=[{ph},{pw},{ph},{pw}], ceil_mode={ceil}}}(%0): {dt}[1,{c},{oh},{ow}] @\"m\"\n  output \"y\" = %1\n"
            );
            let x: Vec<u8> = (0..c * h * w).map(|j| ((j * 7919 + j / 13) % 256) as u8).collect();
            let (on, n_on, caps) = run_bytes_on(cpu, &text, &x, true);
            if !caps.vnni {
                eprintln!("skipped: the host has no AVX-512 VNNI (BW), so no byte MaxPool rows to check");
                return;
            }
            let (off, n_off, _) = run_bytes_on(cpu, &text, &x, false);
            // stride 2 deinterleaves by VBMI's `vpermt2b`
            let assembled = usize::from(sw == 1 || caps.vbmi);
            assert!(n_on == assembled && n_off == 0, "{cpu} {dt} case {i}: {n_on} / {n_off} micro-kernels");
            let geo = common::PoolGeo {
                c,
                hw: (h, w),
                kernel: (kh, kw),
                strides: (sh, sw),
                dilations: (1, 1),
                pads: (ph, pw),
                out: (oh, ow),
            };
            let want = common::byte_max_pool(&x, signed, &geo);
            same_bytes(&format!("{cpu} {dt} case {i}, assembled"), &on, &want);
            same_bytes(&format!("{cpu} {dt} case {i}, 128-bit pass"), &off, &want);
        }
    }
}

/// `got` equals `want` byte for byte, lengths included; else the first
/// difference.
fn same_bytes(name: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(diff.is_none(), "{name}: byte {diff:?}: {:?} vs {:?}", diff.map(|d| got[d]), diff.map(|d| want[d]));
}

/// Bit equality, any NaN equal to any NaN.
fn same_bits(name: &str, a: &[f32], b: &[f32]) {
    let diff = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()));
    assert!(diff.is_none(), "{name}: element {diff:?}: {:?} (AVX2) vs {:?}", diff.map(|d| a[d]), diff.map(|d| b[d]));
}

/// The LSTM recurrence's assembled product (`ukernel::avx2::rnn_product`:
/// `ymm` with AVX2, `zmm` with AVX-512) against the 128-bit tile: hidden
/// 64 (16 blocks: runs of six on `ymm`, eight on `zmm`), 100 (25 blocks:
/// a tile of 24 and one of 1), 6 (2 blocks, the last padded), batch 2 and
/// bidirectional, the coupled input gate and peepholes; same bits with
/// micro-kernels on and off on every preset the host runs (the 128-bit
/// tile is checked against a direct recurrence in `ops.rs`), and each
/// preset's object holds the products of its width (any host).
#[test]
fn recurrent_products_equal_the_128_bit_tile() {
    use kerf_targets::ukernel::avx2::{rnn_product, RNN_MAX_BLOCKS};
    // (hidden, batch, directions, input_forget, peepholes)
    let cases = [(64, 1, 1, false, false), (100, 2, 2, true, true), (6, 2, 1, false, true)];
    for (i, &(h, batch, dirs, coupled, peep)) in cases.iter().enumerate() {
        let (seq, input) = (5, 7);
        let dir = if dirs == 2 { "bidirectional" } else { "forward" };
        let pv = if peep { "iota(0.05, -0.002)" } else { "fill(0.0)" };
        let pc = format!("  const %6 \"p\": f32[{dirs},{}] = {pv}\n", 3 * h);
        let text = format!(
            "graph \"lstm\"\n  input %0 \"x\": f32[{seq},{batch},{input}]\n  \
             const %1 \"w\": f32[{dirs},{g},{input}] = iota(-0.3, 0.0007)\n  \
             const %2 \"r\": f32[{dirs},{g},{h}] = iota(0.2, -0.00009)\n  \
             const %3 \"b\": f32[{dirs},{g2}] = iota(-0.1, 0.0003)\n  \
             const %4 \"h0\": f32[{dirs},{batch},{h}] = fill(0.1)\n  \
             const %5 \"c0\": f32[{dirs},{batch},{h}] = fill(-0.2)\n{pc}  \
             %7, %8, %9 = LSTM{{hidden={h}, direction={dir}, activations=\"{acts}\", clip=0.0, input_forget={coupled}, layer=\"l\"}}(%0, %1, %2, %3, %4, %5, %6): f32[{seq},{dirs},{batch},{h}], f32[{dirs},{batch},{h}], f32[{dirs},{batch},{h}] @\"l\"\n  \
             output \"y\" = %7\n",
            g = 4 * h,
            g2 = 8 * h,
            acts = if dirs == 2 { "Sigmoid,Tanh,Tanh,Sigmoid,Tanh,Tanh" } else { "Sigmoid,Tanh,Tanh" },
        );
        // which products each width's object holds: a tile of up to 24
        // blocks and the rest, over K = hidden
        let g = kerf_ir::text::parse(&text).unwrap();
        let blocks = usize::div_ceil(h, 4);
        let mut tiles = vec![blocks.min(RNN_MAX_BLOCKS)];
        tiles.extend((blocks > RNN_MAX_BLOCKS && blocks % RNN_MAX_BLOCKS != 0).then_some(blocks % RNN_MAX_BLOCKS));
        for (cpu, zmm) in [("haswell", false), ("sapphirerapids", true)] {
            let held = common::kernels(&g, cpu);
            for &n in &tiles {
                let code = rnn_product(n, h, zmm).unwrap();
                let want: Vec<_> =
                    iced_x86::Decoder::with_ip(64, &code, 0, iced_x86::DecoderOptions::NONE).into_iter().collect();
                assert!(held.contains(&want), "case {i} ({cpu}): no recurrent product of {n} blocks");
            }
        }
        let x: Vec<f32> = xs(seq * batch * input).iter().map(|v| v * 0.5).collect();
        let ins = [t(&[seq, batch, input], &x)];
        let (off, n_off, _) = run(&text, &ins, false);
        assert_eq!(n_off, 0, "case {i}: micro-kernels off");
        for cpu in wide_cpus() {
            let (on, n_on, _) = run_on(cpu, &text, &ins, true);
            assert!(n_on > 0, "case {i} ({cpu}): no micro-kernels");
            // the reference evaluator has no LSTM: the 128-bit tile is
            // checked against a direct recurrence in `ops.rs` and the
            // model tests
            same_bits(&format!("lstm case {i} ({cpu})"), &on, &off);
            assert!(on.iter().all(|v| v.is_finite() && v.abs() < 1.0), "lstm case {i}: h out of range");
        }
    }
}

/// Every memory access of the 8-lane flat depthwise pass
/// (`ymm_dw_flat`) stays inside its arguments, decoded from the machine
/// code on any host: the scratch (`r8`, `YmmFlat::scratch_bytes`), the
/// input plane (`rsi`: f32, or u8), the output plane (`rdi`: f32, or u8),
/// the residual plane (`rcx`, f32) and the weight block (`rdx`: taps, then
/// the bias, or the scale and the bias). Planes of 8 pixels up to 256,
/// partial last vectors, 3x3 and 5x5 windows, dilation 2, lopsided
/// windows; f32, u8 → f32 and u8 → u8, with a residual.
#[test]
fn flat_depthwise_pass_stays_inside_its_buffers() {
    use iced_x86::{Decoder, DecoderOptions, Register};
    use kerf_targets::ukernel::avx2::{ymm_dw_flat, DwFlat, Groups, Int, YmmFlat};
    use kerf_targets::ukernel::epi::TileEpi;
    let windows = |k: i64, d: i64| -> Vec<(i64, i64)> {
        (0..k * k).map(|t| ((t / k - k / 2) * d, (t % k - k / 2) * d)).collect()
    };
    let planes = [
        (2, 4, windows(3, 1)),
        (25, 5, windows(3, 1)),
        (16, 16, windows(5, 1)),
        (7, 9, windows(3, 2)),
        (11, 23, windows(5, 1)),
        (3, 6, vec![(0, 0), (0, 1), (1, 0), (1, 1)]),
    ];
    for (h, w, taps) in planes {
        let n = h * w;
        // (a u8 grid's `quant` is `(factor, zp)`, `QOut::grid`; any value serves these checks)
        for int in [None, Some(Int { zp: 9, quant: None }), Some(Int { zp: 200, quant: Some((0.1, 7)) })] {
            let epi = TileEpi { residual: true, ..TileEpi::default() };
            let nt = taps.len();
            let p = YmmFlat { plane: DwFlat { h, w, taps: taps.clone(), epi, groups: Groups::Flat }, int };
            let code = ymm_dw_flat(&p).unwrap_or_else(|| panic!("{h}x{w}: no pass"));
            let (in_el, out_el) =
                (if int.is_some() { 1 } else { 4 }, if p.int.and_then(|i| i.quant).is_some() { 1 } else { 4 });
            let weights = 4 * (nt + if int.is_some() { 2 } else { 1 });
            let limit = |r: Register| match r {
                Register::R8 => p.scratch_bytes(),
                Register::RSI => n * in_el,
                Register::RDI => n * out_el,
                Register::RCX => 4 * n,
                Register::RDX => weights,
                other => panic!("{h}x{w}: an access through {other:?}"),
            };
            for i in Decoder::with_ip(64, &code, 0, DecoderOptions::NONE) {
                if !(0..i.op_count()).any(|o| i.op_kind(o) == iced_x86::OpKind::Memory) {
                    continue;
                }
                let (base, at, size) =
                    (i.memory_base(), i.memory_displacement64() as i64, i.memory_size().size() as i64);
                assert_eq!(i.memory_index(), Register::None, "{h}x{w} {int:?}: {:?}", i.mnemonic());
                let end = limit(base) as i64;
                assert!(
                    at >= 0 && at + size <= end,
                    "{h}x{w} {int:?}: {:?} via {base:?} reaches {at}..{} of {end}",
                    i.mnemonic(),
                    at + size
                );
            }
        }
    }
}

/// Every assembled micro-kernel, decoded: a leaf (no call, no stack use),
/// touching no callee-saved register (System V: rbx, rbp, r12–r15), with
/// `vzeroupper` right before its only `ret` (the leaf ABI of
/// `kerf_targets::ukernel`), and leaving no `zmm16`–`zmm31` it wrote
/// non-zero (`vzeroupper` does not clear them).
#[test]
fn assembled_kernels_keep_the_leaf_abi() {
    for (name, code) in tile_kernels().iter().chain(&other_kernels()) {
        check_leaf(name, code);
    }
}

/// The one-quad `zmm` tile (a 28-pixel row's 16 + 12, a 7x7 plane's
/// leftovers) takes A's broadcast inside each FMA (`{1to16}`): a separate
/// `vbroadcastss zmm, m32` per FMA held Zen 4 to 75% of its FMA peak
/// (`docs/performance.md`, "Broadcasts inside the FMA"). The two-quad tile
/// shares one broadcast between its two FMAs and keeps it (fewer loads per
/// FMA, which a core with two 512-bit FMA ports needs).
#[test]
fn one_quad_zmm_tiles_broadcast_inside_their_fmas() {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind};
    use kerf_targets::ukernel::avx2::{GemmTile, Init};
    use kerf_targets::ukernel::epi::TileEpi;
    for (vecs, rows, lanes) in [(1, 12, 16), (1, 12, 12), (1, 5, 3), (2, 12, 16), (2, 7, 9)] {
        let t = GemmTile {
            rows,
            vecs,
            a_row: 4,
            a_step: 48,
            panel: 256,
            group: 4,
            ldo: 400,
            init: Init::RowBias,
            epi: TileEpi::default(),
            last_lanes: lanes,
            prefetch: false,
            indexed: None,
        };
        let code = kerf_targets::ukernel::avx512::zmm_gemm_tile(&t).unwrap();
        let ins: Vec<_> = Decoder::with_ip(64, &code, 0, DecoderOptions::NONE).into_iter().collect();
        let fmas: Vec<_> = ins.iter().filter(|i| i.mnemonic() == Mnemonic::Vfmadd231ps).collect();
        assert_eq!(fmas.len(), rows * vecs, "{vecs} quads x {rows} rows: one FMA per accumulator and K step");
        let embedded = fmas.iter().filter(|i| i.op_kind(2) == OpKind::Memory && i.is_broadcast()).count();
        let want = if vecs == 1 { rows } else { 0 };
        assert_eq!(embedded, want, "{vecs} quads x {rows} rows: FMAs with an embedded broadcast");
    }
}

/// The GEMM tiles (`ymm` and `zmm`) and the integer tiles, in every shape
/// and epilogue.
fn tile_kernels() -> Vec<(String, Vec<u8>)> {
    use kerf_targets::ukernel::avx2::*;
    use kerf_targets::ukernel::epi::{Addend, Clamp, TileEpi};
    let mut kernels: Vec<(String, Vec<u8>)> = Vec::new();
    let clamp = Some(Clamp { lo: 0.0, hi: Some(6.0) });
    for (pairs, init) in [(1, Init::Zero), (2, Init::RowBias), (2, Init::Partial), (1, Init::RowBias)] {
        for rows in 1..=12 {
            let epi = TileEpi {
                scale: Some(0.5),
                addend: Some(Addend { per_column: pairs == 2 || rows % 4 == 1, row: 64, scale: 2.0 }),
                residual: rows % 2 == 0,
                clamp: if rows % 3 == 0 { None } else { clamp },
                hardswish: rows % 3 == 0,
                finite: false,
            };
            // a partial last pair on every other row count (1..=7 columns)
            let last_lanes = if rows % 2 == 0 { 8 } else { 1 + rows % 7 };
            let t = GemmTile {
                rows,
                vecs: pairs,
                a_row: 4,
                a_step: 48,
                panel: 256,
                group: [1, 2, 4][rows % 3],
                ldo: 400,
                init,
                epi,
                last_lanes,
                prefetch: rows % 2 == 1,
                indexed: None,
            };
            if rows <= max_rows(pairs) {
                kernels.push((format!("gemm {t:?}"), gemm_tile(&t).unwrap()));
            }
            // the zmm tile: groups of four, a partial last quad of 1..=15 columns
            let z = GemmTile { group: 4, last_lanes: if rows % 2 == 0 { 16 } else { 1 + rows % 15 }, ..t };
            kernels.push((format!("zmm gemm {z:?}"), kerf_targets::ukernel::avx512::zmm_gemm_tile(&z).unwrap()));
            // block-sparse B: a 16-column block, its A offsets listed before it
            let list = 64 * (1 + rows % 3);
            let one = Indexed { list, blocks: 1, stride: list + 640 };
            let ix = GemmTile { indexed: Some(one), vecs: 2, group: 2, ..t };
            if rows <= max_rows(2) {
                kernels.push((format!("indexed gemm {ix:?}"), gemm_tile(&ix).unwrap()));
            }
            // one to four blocks per call (their accumulators: rows × blocks ≤ 24)
            let blocks = 1 + rows % 4;
            let zx = GemmTile { indexed: Some(Indexed { blocks, ..one }), rows: rows.min(24 / blocks), ..z };
            kernels
                .push((format!("indexed zmm gemm {zx:?}"), kerf_targets::ukernel::avx512::zmm_gemm_tile(&zx).unwrap()));
        }
    }
    for rows in 1..=12 {
        kernels.push((format!("qgemm {rows}"), qgemm_tile(rows, None).unwrap()));
    }
    for rows in 1..=kerf_targets::ukernel::avx2::QDOT_ROWS {
        use kerf_targets::ukernel::avx2::{qbyte_tile, qbyte_wide_tile, QdotEpi, QBYTE_WIDE_ROWS};
        use kerf_targets::ukernel::avx512::qdot_tile;
        let epi = TileEpi {
            residual: rows % 2 == 0,
            clamp: if rows % 3 == 0 { None } else { clamp },
            hardswish: rows % 3 == 0,
            ..TileEpi::default()
        };
        let e = QdotEpi { epi, ldo: 784, quant: None, res_grid: None };
        // the requantising store (u8 rows, no residual)
        let q = QdotEpi {
            epi: TileEpi { residual: false, finite: rows % 2 == 1, ..epi },
            ldo: 196,
            quant: Some((0.05, 3)),
            res_grid: None,
        };
        // a u8 residual (its step and zero point in scratch registers), u8 rows
        let r = QdotEpi { epi: TileEpi { residual: true, ..epi }, res_grid: Some((0.25, 7)), ..q };
        for steps in [KSteps::Dense, KSteps::Listed] {
            kernels.push((format!("qdot {rows} {steps:?}"), qdot_tile(rows, None, steps).unwrap()));
            kernels.push((format!("qbyte {rows} {steps:?}"), qbyte_tile(rows, None, steps).unwrap()));
            for e in [e, q, r] {
                kernels.push((format!("qdot {rows} {e:?} {steps:?}"), qdot_tile(rows, Some(&e), steps).unwrap()));
                kernels.push((format!("qbyte {rows} {e:?} {steps:?}"), qbyte_tile(rows, Some(&e), steps).unwrap()));
            }
        }
        for e in [e, q, r] {
            kernels.push((format!("qgemm {rows} {e:?}"), qgemm_tile(rows, Some(&e)).unwrap()));
            if rows <= QBYTE_WIDE_ROWS {
                // the instructions only: the ones of its constant pool follow the `ret`
                let w = qbyte_wide_tile(rows, &e).unwrap();
                assert_eq!(w.bytes.len() % 32, 0, "wide {rows}: the pool ends the function");
                kernels.push((format!("qbyte wide {rows} {e:?}"), w.bytes[..w.code_len].to_vec()));
            }
        }
        use kerf_targets::ukernel::{avx2::QdotGemv, avx512::qdot_gemv};
        // a one-pixel product of `rows` blocks, inputs 100 bytes and outputs 300 elements apart
        let shape = |last_lanes, epi, quant, images| QdotGemv {
            blocks: rows,
            last_lanes,
            epi,
            quant,
            images,
            x_stride: 100,
            out_stride: 300,
            steps: KSteps::Dense,
        };
        for (quant, last_lanes) in [(None, 16), (Some((0.5, 3)), 1 + rows % 16)] {
            // one to four images per call, as many as the accumulators allow
            let images = (1 + rows % 4).min(24 / rows);
            let epi = TileEpi { residual: quant.is_none(), ..epi };
            let g = shape(last_lanes, epi, quant, images);
            kernels.push((format!("qdot gemv {g:?}"), qdot_gemv(&g).unwrap()));
            let listed = QdotGemv { steps: KSteps::Listed, ..g };
            kernels.push((format!("qdot gemv {listed:?}"), qdot_gemv(&listed).unwrap()));
            // past the broadcast registers or the accumulators: an error, not code
            for images in [5, 24 / rows + 1] {
                assert!(qdot_gemv(&QdotGemv { images, ..g }).is_err(), "{rows} blocks of {images} images");
            }
        }
        // AVX2's one-pixel product: 8 lanes, one or two images per call
        use kerf_targets::ukernel::avx2::{ymm_gemv, GemvStep};
        for (quant, last_lanes, step) in [(None, 8, GemvStep::Pairs), (Some((0.5, 3)), 1 + rows % 8, GemvStep::Bytes)] {
            let images = (1 + rows % 2).min(12 / rows);
            let epi = TileEpi { residual: quant.is_none(), ..epi };
            let g = shape(last_lanes, epi, quant, images);
            kernels.push((format!("ymm gemv {step:?} {g:?}"), ymm_gemv(&g, step).unwrap()));
            let listed = QdotGemv { steps: KSteps::Listed, ..g };
            match step {
                GemvStep::Bytes => kernels.push((format!("ymm gemv {listed:?}"), ymm_gemv(&listed, step).unwrap())),
                GemvStep::Pairs => assert!(ymm_gemv(&listed, step).is_err(), "listed 16-bit pairs: an error"),
            }
            for images in [3, 12 / rows + 1] {
                assert!(ymm_gemv(&QdotGemv { images, ..g }, step).is_err(), "{rows} blocks of {images} images");
            }
        }
        if rows == 1 {
            for group in [2, 4] {
                let code = kerf_targets::ukernel::avx2::even_pack(group, 4608 * group).unwrap();
                kernels.push((format!("even pack, groups of {group}"), code));
                for units in [1, 2] {
                    let code = kerf_targets::ukernel::avx2::flat_pack(group, units, 4608, 12100, 256).unwrap();
                    kernels.push((format!("flat pack, {units} units of groups of {group}"), code));
                }
            }
            for pixels in [8, 16] {
                for (segments, stride) in [(1, 1), (2, 1), (4, 1), (1, 2), (3, 2), (4, 2)] {
                    let code = kerf_targets::ukernel::avx2::quad_pack(pixels, segments, stride, 58).unwrap();
                    kernels.push((format!("quad pack {pixels} rows {segments} stride {stride}"), code));
                }
            }
            for (segments, stride) in [(1, 1), (2, 1), (4, 1), (1, 2), (3, 2), (4, 2)] {
                let code = kerf_targets::ukernel::avx512::quad_pack_vbmi(segments, stride, 58).unwrap();
                kernels.push((format!("VBMI quad pack rows {segments} stride {stride}"), code));
            }
        }
        for pixels in 1..=kerf_targets::ukernel::avx512::QDOT_TAIL_PIXELS {
            let code = kerf_targets::ukernel::avx512::qdot_tail(rows, pixels).unwrap();
            kernels.push((format!("qdot tail {rows}x{pixels}"), code));
            let e = QdotEpi { epi, ldo: 196, quant: (pixels % 2 == 0).then_some((0.5, 3)), res_grid: None };
            let code = kerf_targets::ukernel::avx512::qdot_tile_tail(rows, &e, pixels).unwrap();
            kernels.push((format!("qdot tile with a {pixels}-pixel tail {rows} {e:?}"), code));
        }
        for pixels in 1..=kerf_targets::ukernel::avx2::YMM_TAIL_PIXELS {
            for quads in [false, true] {
                let code = kerf_targets::ukernel::avx2::ymm_qdot_tail(rows, pixels, quads).unwrap();
                kernels.push((format!("ymm tail {rows}x{pixels} quads {quads}"), code));
            }
        }
    }
    kernels
}

/// The depthwise passes and copies, the pattern tiles, the MaxPool row
/// passes, the quantisers, the math streams and the recurrent products.
fn other_kernels() -> Vec<(String, Vec<u8>)> {
    use kerf_targets::ukernel::avx2::*;
    use kerf_targets::ukernel::epi::{Clamp, TileEpi};
    use kerf_targets::ukernel::pattern::{Elem, EntryKind, PatternTile};
    let mut kernels: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (h, w, kh, kw, sw, quant)) in
        [(8, 20, 3, 3, 1, false), (5, 200, 3, 3, 1, true), (9, 33, 5, 3, 2, false), (4, 70, 2, 4, 2, true)]
            .into_iter()
            .enumerate()
    {
        use kerf_targets::ukernel::avx512::{dw_quad, DwQuad};
        let epi = TileEpi {
            residual: i % 2 == 0,
            clamp: (i != 2).then_some(Clamp { lo: 0.0, hi: Some(6.0) }),
            hardswish: i == 2,
            ..TileEpi::default()
        };
        let (oh, ow) = (h / 2 + 1, (w + 2 - kw) / sw + 1);
        let (sh, dh, dw, ph, pw, zp) = (2, 1, 1, 1, 1, 7);
        let quant = quant.then_some((0.05, 3));
        let plane = kerf_ir::DepthwisePlane { h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw };
        let g = DwQuad { plane, zp, epi, quant };
        kernels.push((format!("depthwise quads {g:?}"), dw_quad(&g).unwrap()));
    }
    for (i, (h, w)) in [(25, 5), (7, 7), (11, 23), (4, 4), (30, 31)].into_iter().enumerate() {
        use kerf_targets::ukernel::avx2::{DwFlat, Groups};
        use kerf_targets::ukernel::avx512::dw_flat;
        let epi = TileEpi {
            residual: i % 2 == 0,
            clamp: (i != 1).then_some(Clamp { lo: 0.0, hi: Some(6.0) }),
            hardswish: i == 1,
            ..TileEpi::default()
        };
        // 3x3 windows, and a 5x5 one whose taps past 16 read broadcast weights
        let k = if i == 2 { 5 } else { 3 };
        let taps = (0..k * k).map(|t| (t / k - k / 2, t % k - k / 2)).collect();
        let groups = if h * w <= 256 { Groups::Flat } else { Groups::Rows };
        let p = DwFlat { h, w, taps, epi, groups };
        kernels.push((format!("depthwise flat {p:?}"), dw_flat(&p).unwrap()));
        // the 8-lane pass on planes of up to 256 pixels: f32, and from u8
        // to f32 or to u8
        use kerf_targets::ukernel::avx2::{ymm_dw_flat, Int, YmmFlat};
        let ints = [None, Some(Int { zp: 3, quant: None }), Some(Int { zp: 7, quant: Some((0.05, 3)) })];
        for int in ints.into_iter().filter(|_| h * w <= 256) {
            let q = YmmFlat { plane: p.clone(), int };
            kernels.push((format!("depthwise flat {q:?}"), ymm_dw_flat(&q).unwrap()));
        }
    }
    for (blocks, kk) in [(1, 1), (8, 64), (16, 64), (24, 100), (3, 7)] {
        for zmm in [false, true] {
            let code = kerf_targets::ukernel::avx2::rnn_product(blocks, kk, zmm).unwrap();
            kernels.push((format!("recurrent product {blocks} x {kk} (zmm: {zmm})"), code));
        }
    }
    let clamp = Some(Clamp { lo: 0.0, hi: Some(6.0) });
    for (cols, hardswish) in [(8, false), (79, true), (70, false), (3, true), (130, false)] {
        let epi = TileEpi {
            residual: cols % 2 == 0,
            clamp: if hardswish { None } else { clamp },
            hardswish,
            ..TileEpi::default()
        };
        let p = DwPlane {
            taps: (0..25).map(|t| (t / 5) * 400 + (t % 5) * 4).collect(),
            rows: 3,
            cols,
            out_row: 600,
            in_row: 400,
            epi,
            scaled: false,
        };
        kernels.push((format!("depthwise {p:?}"), dw_plane(&p).unwrap()));
        // the integer conv's: scaled sums
        let q = DwPlane { scaled: true, ..p };
        kernels.push((format!("depthwise {q:?}"), dw_plane(&q).unwrap()));
    }
    for (cols, split, pad) in [
        (8, false, 1),
        (61, false, 2),
        (6, false, 1),
        (3, false, 2),
        (16, true, 1),
        (75, true, 2),
        (40, true, 0),
        (14, true, 1),
    ] {
        let c =
            DwCopy { rows: 3, cols, split, pad, half: (cols + 2 * pad).div_ceil(2), dst_row: 400, zero_point: None };
        kernels.push((format!("depthwise copy {c:?}"), dw_copy(&c).unwrap()));
        let u = DwCopy { zero_point: Some(128), ..c };
        kernels.push((format!("depthwise copy {u:?}"), dw_copy(&u).unwrap()));
    }
    let kinds: Vec<EntryKind> =
        [vec![0], vec![0, 1], vec![0, 2], vec![0, 1, 2], vec![0, 2, 4]].into_iter().map(EntryKind::Column).collect();
    let kinds = [kinds, vec![EntryKind::Kernel(1), EntryKind::Kernel(4), EntryKind::Kernel(5)]].concat();
    for (accumulate, last_lanes, rows, vecs, lanes, back) in [
        (false, 8, 12, 1, 8, 0),
        (true, 7, 7, 1, 8, 0),
        (true, 1, 3, 4, 8, 0),
        (false, 3, 2, 6, 8, 0),
        (true, 6, 1, 2, 8, 0),
        (true, 4, 6, 2, 8, 0),
        // a row's last vector starting early (14 pixels: at 0 and 6)
        (true, 8, 5, 2, 8, 2),
        (false, 8, 3, 3, 8, 7),
        (false, 16, 12, 1, 16, 0),
        (true, 9, 3, 4, 16, 0),
        (true, 1, 2, 6, 16, 0),
    ] {
        let relu = TileEpi { clamp: Some(Clamp { lo: 0.0, hi: None }), ..TileEpi::default() };
        for (epi, quant) in [
            (None, None),
            (
                Some(TileEpi { residual: true, clamp: Some(Clamp { lo: 0.0, hi: Some(6.0) }), ..TileEpi::default() }),
                None,
            ),
            // the requantising byte store (quads only)
            (Some(relu), Some((20.0, 3))),
        ] {
            for elem in [Elem::F32, Elem::Quads, Elem::QuadsVnni] {
                let t = PatternTile {
                    elem,
                    kinds: kinds.clone(),
                    rows,
                    vecs,
                    lanes,
                    last_lanes,
                    back,
                    out_row: 224,
                    in_row: 256,
                    accumulate,
                    epi,
                    quant,
                    res_u8: None,
                };
                // AVX2's quads hold at most 10 accumulators, and are `ymm`
                // only; bytes are stored from quads only
                let shape_ok = elem != Elem::Quads || rows * vecs <= 10 && lanes == 8;
                assert_eq!(t.fits(), shape_ok && (quant.is_none() || elem.quads()), "{t:?}");
                if t.fits() {
                    kernels.push((format!("pattern tile {t:?}"), pattern_tile(&t).unwrap()));
                }
                // a u8 residual (quads only; with the byte store, column
                // entries only: the sixth argument's register)
                let residual = TileEpi { residual: true, ..relu };
                for quant in [None, Some((20.0, 3))] {
                    let columns: Vec<EntryKind> =
                        kinds.iter().filter(|k| matches!(k, EntryKind::Column(_))).cloned().collect();
                    for kinds in [kinds.clone(), columns] {
                        let all_columns = kinds.iter().all(|k| matches!(k, EntryKind::Column(_)));
                        let u = PatternTile { kinds, epi: Some(residual), quant, res_u8: Some((0.25, 9)), ..t.clone() };
                        let fits = shape_ok && elem.quads() && (quant.is_none() || all_columns);
                        assert_eq!(u.fits(), fits, "{u:?}");
                        if fits {
                            kernels.push((format!("pattern tile {u:?}"), pattern_tile(&u).unwrap()));
                        }
                    }
                }
            }
        }
    }
    for (kh, kw, stride) in [(3, 3, 2), (2, 2, 2), (3, 3, 1), (5, 4, 1), (1, 3, 2)] {
        use kerf_targets::ukernel::pool::{max_pool_row, PoolRow};
        for zmm in [false, true] {
            let p = PoolRow { kh, kw, stride, row_bytes: 448, zmm };
            kernels.push((format!("max pool row {p:?}"), max_pool_row(&p).unwrap()));
        }
    }
    {
        use kerf_targets::ukernel::avx512::{pad_planes, PadPlanes};
        for (w, left, right, top) in [(7, 1, 1, 1), (150, 3, 5, 2), (10, 70, 3, 0), (62, 1, 1, 20)] {
            let p = PadPlanes { h: 4, w, top, bottom: 1, left, right, value: 9, elem: 1 };
            kernels.push((format!("plane pad {p:?}"), pad_planes(&p).unwrap().unwrap()));
        }
        // four-byte elements, a row of 16 whole chunks
        let p = PadPlanes { h: 2, w: 8, top: 1, bottom: 1, left: 4, right: 1012, value: 1, elem: 4 };
        kernels.push((format!("plane pad {p:?}"), pad_planes(&p).unwrap().unwrap()));
    }
    {
        use kerf_targets::ukernel::avx512::{quad_pack_windows, WindowPlan};
        // a 3x3 conv's taps over 8 channels of 58x58 planes (a period), a
        // 7x7 stem's over 3 channels of 230-wide ones (unrolled)
        for (c, k, (h, w), stride) in [(8, 3, (58, 58), 1), (3, 7, (229, 230), 2)] {
            let mut taps: Vec<i32> =
                (0..c * k * k).map(|i| (i / (k * k)) * h * w + (i % (k * k) / k) * w + i % k).collect();
            while !taps.len().is_multiple_of(4) {
                taps.push(*taps.last().unwrap());
            }
            let plan = WindowPlan::new(&taps, stride).unwrap();
            assert_eq!(plan.period.is_some(), stride == 1, "{plan:?}");
            for segments in 1..=4 {
                let code = quad_pack_windows(&plan, segments, 2).unwrap();
                kernels.push((format!("window packer {c}x{k}x{k} stride {stride}, {segments} segments"), code));
            }
        }
    }
    {
        use kerf_targets::ukernel::avx512::{byte_pool_rows, BytePoolRows};
        for (kh, kw, stride, pad, out_w, signed) in
            [(3, 3, 2, 1, 56, false), (3, 3, 1, 1, 150, true), (2, 2, 2, 0, 75, false), (5, 5, 1, 2, 64, false)]
        {
            let in_w = out_w * stride + 1;
            let p = BytePoolRows { kh, kw, stride, pad, in_w, out_w, row_step: 2 * in_w, signed };
            kernels.push((format!("byte pool rows {p:?}"), byte_pool_rows(&p).unwrap().unwrap()));
        }
    }
    for zmm in [false, true] {
        use kerf_targets::ukernel::quantize::{quantize_blocks, QuantBlocks};
        let q = QuantBlocks { scale: 0.05, zp: 7, zmm };
        kernels.push((format!("quantizer {q:?}"), quantize_blocks(&q).unwrap()));
    }
    {
        use kerf_targets::ukernel::vmath::{stream, VFn};
        for f in VFn::ALL {
            // the instructions only: the constant pool follows the `ret`
            let s = stream(f).unwrap();
            kernels.push((format!("math stream {f:?}"), s.bytes[..s.code_len].to_vec()));
        }
    }
    kernels
}

/// The leaf ABI of one kernel (see [`assembled_kernels_keep_the_leaf_abi`]).
fn check_leaf(name: &str, code: &[u8]) {
    use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, Mnemonic, OpAccess, Register};
    let saved = [Register::RBX, Register::RBP, Register::R12, Register::R13, Register::R14, Register::R15];
    let mut info = InstructionInfoFactory::new();
    let ins: Vec<_> = Decoder::with_ip(64, code, 0, DecoderOptions::NONE).into_iter().collect();
    assert!(ins.iter().all(|i| !i.is_invalid()), "{name}: undecodable bytes");
    let n = ins.len();
    assert!(n >= 2 && ins[n - 1].mnemonic() == Mnemonic::Ret, "{name}: does not end with ret");
    assert_eq!(ins[n - 2].mnemonic(), Mnemonic::Vzeroupper, "{name}: no vzeroupper before ret");
    let mut dirty = std::collections::BTreeSet::new();
    for i in &ins[..n - 1] {
        // the VEX form of vpdpbusd is AVX-VNNI, which AVX-512 VNNI CPUs lack
        if i.mnemonic() == Mnemonic::Vpdpbusd {
            assert_eq!(i.encoding(), iced_x86::EncodingKind::EVEX, "{name}: VEX-encoded vpdpbusd");
        }
        assert!(
            !matches!(i.mnemonic(), Mnemonic::Call | Mnemonic::Ret | Mnemonic::Push | Mnemonic::Pop),
            "{name}: {:?}",
            i.mnemonic()
        );
        for r in info.info(i).used_registers() {
            let full = r.register().full_register();
            let upper = (Register::ZMM16 as u32..=Register::ZMM31 as u32).contains(&(full as u32));
            if upper && r.access() != OpAccess::Read {
                // a register xor-ed with itself is clean again
                match zeroes(i) {
                    true => dirty.remove(&full),
                    false => dirty.insert(full),
                };
            }
            assert!(
                !saved.contains(&full) && (full != Register::RSP || stack_argument(i)),
                "{name}: {:?} uses {:?}",
                i.mnemonic(),
                r.register()
            );
        }
    }
    assert!(dirty.is_empty(), "{name}: leaves {dirty:?} non-zero");
}

/// Whether `i` reads a stack argument: a `mov` into a general register
/// from `[rsp + 8·n]`, `n ≥ 1` (past the return address; the leaf ABI's
/// seventh argument).
fn stack_argument(i: &iced_x86::Instruction) -> bool {
    use iced_x86::{Mnemonic, OpKind, Register};
    i.mnemonic() == Mnemonic::Mov
        && i.op_kind(0) == OpKind::Register
        && i.op_kind(1) == OpKind::Memory
        && i.memory_base() == Register::RSP
        && i.memory_index() == Register::None
        && i.memory_displacement64() >= 8
        && i.memory_displacement64().is_multiple_of(8)
}

/// Whether `i` is a zeroing idiom: an xor of one register with itself.
fn zeroes(i: &iced_x86::Instruction) -> bool {
    use iced_x86::{Mnemonic, OpKind};
    matches!(i.mnemonic(), Mnemonic::Vpxord | Mnemonic::Vpxorq | Mnemonic::Vxorps | Mnemonic::Vpxor)
        && i.op_count() == 3
        && (0..3).all(|o| i.op_kind(o) == OpKind::Register)
        && i.op1_register() == i.op0_register()
        && i.op2_register() == i.op0_register()
}

/// The FMAs of the micro-kernels an object for `cpu` calls: (on `zmm`,
/// on `ymm` or `xmm`).
fn tile_fmas(text: &str, cpu: &str) -> (usize, usize) {
    use iced_x86::{Mnemonic, Register};
    let g = kerf_ir::text::parse(text).unwrap();
    let mut fmas = (0, 0);
    for i in common::kernel_instructions(&g, cpu).iter().filter(|i| i.mnemonic() == Mnemonic::Vfmadd231ps) {
        match i.op0_register().is_zmm() {
            true => fmas.0 += 1,
            false => fmas.1 += usize::from(i.op0_register() != Register::None),
        }
    }
    fmas
}

/// Which tiles an object's code calls is decided at compile time, so any
/// host checks it: a 1x1 conv (its product on the GEMM engine), a MatMul
/// and a pattern-pruned 3x3 conv on 32-pixel rows compiled for
/// `sapphirerapids` call micro-kernels whose FMAs are on `zmm` registers
/// (the 512-bit tiles, B in groups of four panels; the pattern tile at 16
/// pixels per vector); for `haswell`, on `ymm` only; the pattern conv on
/// 28-pixel rows on `ymm` for both (`conv_pattern::tile_lanes`). A conv's last vector
/// of at most 8 pixels runs on the 256-bit tile at either width: a 3x3
/// conv on rows of 20 pixels (16 + 4) calls it for `sapphirerapids`, one
/// on rows of 25 (16 + 9) does not.
#[test]
fn sapphirerapids_objects_call_the_zmm_tiles() {
    let (conv, _) = graph(&(16, 37, (20, 20), 1, (1, 1), "", "Relu", false));
    let matmul = "graph \"g\"\n  input %0 \"a\": f32[24,40]\n  input %1 \"b\": f32[40,70]\n  %2 = MatMul{layer=\"m\"}(%0, %1): f32[24,70] @\"m\"\n  output \"y\" = %2\n";
    // 16 → 8 channels, every kernel the 4-tap mask {1, 3, 4, 5} or removed
    let w: Vec<String> = (0..8 * 16 * 9)
        .map(|i| {
            if (i / 9) % 3 != 2 && [1, 3, 4, 5].contains(&(i % 9)) {
                format!("{:?}", 0.01 * (i % 7) as f32 + 0.02)
            } else {
                "0.0".into()
            }
        })
        .collect();
    let pattern = |width: usize| {
        format!(
            "graph \"p\"\n  input %0 \"x\": f32[1,16,12,{width}]\n  const %1 \"w\": f32[8,16,3,3] = [{}]\n  \
             %2 = Conv{{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer=\"c\"}}(%0, %1): f32[1,8,12,{width}] @\"c\"\n  \
             output \"y\" = %2\n",
            w.join(",")
        )
    };
    let (whole, early) = (pattern(32), pattern(28));
    // the conv engine's last vector of at most 8 on the 256-bit tile: the
    // 1x1 conv's two pixel blocks of 200 (12 vectors and 8); the MatMul
    // and the pattern tile on whole 16-pixel vectors stay on `zmm` alone
    for (text, last_ymm) in [(conv.as_str(), true), (matmul, false), (whole.as_str(), false)] {
        let (zmm, other) = tile_fmas(text, "sapphirerapids");
        assert!(zmm > 0 && (other > 0) == last_ymm, "sapphirerapids: {zmm} zmm FMAs, {other} others ({text})");
        let (zmm, other) = tile_fmas(text, "haswell");
        assert!(zmm == 0 && other > 0, "haswell: {zmm} zmm FMAs, {other} others ({text})");
    }
    // 28-pixel rows: `ymm` tiles whose last vector starts early (at 20)
    // rather than `zmm` ones with a partial second vector
    let (zmm, other) = tile_fmas(&early, "sapphirerapids");
    assert!(zmm == 0 && other > 0, "28-pixel pattern rows: {zmm} zmm FMAs, {other} others");
    for (w, last_ymm) in [(20, true), (25, false)] {
        let h = 6;
        let (text, _) = graph(&(16, 24, (h, w), 3, (1, 1), "", "Relu", false));
        let (zmm, other) = tile_fmas(&text, "sapphirerapids");
        assert!(zmm > 0 && (other > 0) == last_ymm, "{h}x{w}: {zmm} zmm FMAs, {other} others");
    }
}

/// The f32 conv's assembled B packers run where they apply, decided at
/// compile time, so any host checks it: `haswell` objects of a stride-2
/// 3x3 stem (`even_pack`) and of a 1x1 conv (`flat_pack`) hold a
/// micro-kernel without multiply-adds beside the tiles; with micro-kernels
/// the layers' bits are the 128-bit ones (`avx2_tiles_equal_the_128_bit_tiles`).
#[test]
fn packers_are_called_where_they_apply() {
    use iced_x86::Mnemonic;
    for (case, what) in [
        ((3, 16, (56, 56), 3, (2, 1), "", "Relu", false), "even_pack"),
        ((128, 16, (55, 55), 1, (1, 1), "", "Relu", false), "flat_pack"),
    ] {
        let g = kerf_ir::text::parse(&graph(&case).0).unwrap();
        let kernels = common::kernels(&g, "haswell");
        let fma = |k: &Vec<iced_x86::Instruction>| k.iter().any(|i| i.mnemonic() == Mnemonic::Vfmadd231ps);
        let packers = kernels.iter().filter(|k| !fma(k)).count();
        assert!(packers > 0 && kernels.iter().any(fma), "{what}: {} kernels, {packers} without FMAs", kernels.len());
    }
}

/// 1-D depthwise "same" convs (`h = 1`: rows of 40 and 9 pixels, windows
/// of 3 and 5) on the flat passes: same bits as the 128-bit flat path, and
/// the reference.
#[test]
fn one_dimensional_depthwise_convs_take_the_flat_passes() {
    for (i, (w, k)) in [(40, 3), (9, 5)].into_iter().enumerate() {
        let c = 3;
        let p = k / 2;
        let wt: Vec<f32> = xs(c * k + 3)[3..].iter().map(|v| v * 0.1).collect();
        let b: Vec<f32> = (0..c).map(|j| 0.1 * j as f32 - 0.2).collect();
        let text = format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,{c},{w}]\n  input %9 \"r\": f32[1,{c},{w}]\n  const %1 \"w\": f32[{c},1,{k}] = {}\n  const %2 \"b\": f32[{c}] = {}\n  %3 = ConvFused{{kernel=[{k}], strides=[1], dilations=[1], pads=[{p},{p}], group={c}, layer=\"c\", act=Relu, residual=true}}(%0, %1, %2, %9): f32[1,{c},{w}] @\"c\"\n  output \"y\" = %3\n",
            list(&wt),
            list(&b)
        );
        let x: Vec<f32> = xs(c * w).iter().map(|v| v * 0.5).collect();
        let r: Vec<f32> = xs(c * w + 7)[7..].to_vec();
        if !check_on(450 + i, &text, &[t(&[1, c, w], &x), t(&[1, c, w], &r)], &|_| true) {
            return;
        }
    }
}

/// `dw_flat` and `ymm_dw_flat` on windows other than square and centred: 1x3, 3x1 and 2x2
/// "same" convs with lopsided pads (the taps' offsets from the output
/// pixel, not the window's centre), dilation 2 along one axis, a residual
/// and Relu; same bits as the 128-bit kernels (flat path and row kernel),
/// and the reference.
#[test]
fn dw_flat_takes_any_same_window() {
    // (plane, kernel, pads top/left/bottom/right, dilations)
    type W = ((usize, usize), (usize, usize), [usize; 4], (usize, usize));
    let cases: [W; 6] = [
        ((9, 7), (1, 3), [0, 1, 0, 1], (1, 1)),
        ((12, 6), (3, 1), [1, 0, 1, 0], (1, 1)),
        ((8, 8), (2, 2), [0, 0, 1, 1], (1, 1)),
        ((10, 9), (2, 2), [1, 1, 0, 0], (1, 1)),
        ((20, 30), (3, 3), [2, 1, 2, 1], (2, 1)),
        ((7, 40), (1, 3), [0, 2, 0, 2], (1, 2)),
    ];
    for (i, &((h, w), kernel, pads, dilation)) in cases.iter().enumerate() {
        let dw = DwConv { n: 1, c: 3, plane: (h, w), kernel, stride: 1, dilation, pads, act: "Relu", residual: true };
        let (text, ins, _) = dw.graph();
        // with AVX-512 `dw_flat`; with AVX2 only `ymm_dw_flat` on planes
        // of up to 256 pixels, the padded-plane pass past them (every row
        // here holds at least 4 pixels)
        if !check_on(400 + i, &text, &ins, &|_| true) {
            return;
        }
    }
    // 5x5 windows: with AVX-512 on planes of up to 256 pixels `dw_flat`
    // (the taps past 16 with broadcast weights from memory), else, and
    // with AVX2 only, the assembled pass (`dw_plane`)
    for (i, (h, w)) in [(14, 14), (7, 9), (16, 17)].into_iter().enumerate() {
        let dw = DwConv {
            n: 1,
            c: 3,
            plane: (h, w),
            kernel: (5, 5),
            stride: 1,
            dilation: (1, 1),
            pads: [2; 4],
            act: "HardSwish",
            residual: i != 1,
        };
        let (text, ins, _) = dw.graph();
        // which pass an AVX-512 object calls is decided at compile time:
        // `dw_flat`'s FMAs are on `zmm`, `dw_plane`'s on `ymm` (any host)
        let (zmm, ymm) = tile_fmas(&text, "sapphirerapids");
        assert_eq!((zmm > 0, ymm > 0), (h * w <= 256, h * w > 256), "5x5 on {h}x{w}");
        if !check_on(410 + i, &text, &ins, &|_| true) {
            return;
        }
    }
}
