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
use kerf_targets::{jit_compile, CompileOptions};

/// Outputs of `text` compiled for the host (`native`) with micro-kernels
/// on or off, and how many distinct micro-kernels the code holds.
fn run(text: &str, inputs: &[Tensor], ukernels: bool) -> (Vec<f32>, usize, bool) {
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut o = CompileOptions::new("host", "native", "t");
    o.ukernels = ukernels;
    let jm = jit_compile(&g, &o).unwrap_or_else(|e| panic!("{e}"));
    let m = jm.model();
    let bytes: Vec<&[u8]> = inputs.iter().map(|t| t.bytes()).collect();
    let n = m.info().outputs[0].bytes;
    let mut out = vec![0u8; n];
    let mut arena = m.new_arena();
    m.run(&bytes, &mut [&mut out[..]], &mut arena).unwrap();
    let y = out.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (y, jm.report().micro_kernels, jm.report().caps.avx2)
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

#[test]
fn avx2_tiles_equal_the_128_bit_tiles() {
    let cases = [
        // 1x1, 37 rows (three 12-row blocks and a 1-row block), 20x20: 100 panels
        (16, 37, (20, 20), 1, (1, 1), "", "None", false),
        // 19x19 = 361 pixels: 90 panels (88 assembled, 2 left) and a 1-pixel tail
        (16, 30, (19, 19), 1, (1, 1), "", "Relu", true),
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
        // epilogues left to the Cranelift tile
        (16, 24, (8, 8), 1, (1, 1), "", "LeakyRelu, act_alpha=0.1", false),
        (16, 24, (8, 8), 1, (1, 1), "", "Clip, act_min=-0.0, act_max=6.0", false),
    ];
    for (i, cs) in cases.iter().enumerate() {
        let (text, ins) = graph(cs);
        let (on, n_on, avx2) = run(&text, &ins, true);
        if !avx2 {
            eprintln!("skipped: the host has no AVX2 + FMA, so no assembled tiles to check");
            return;
        }
        let (off, n_off, _) = run(&text, &ins, false);
        assert_eq!(n_off, 0, "case {i}: micro-kernels with ukernels off");
        let act = cs.6;
        let leaves = act.starts_with("LeakyRelu") || act.contains("-0.0");
        if leaves {
            assert_eq!(n_on, 0, "case {i}: {act} must stay on the Cranelift tile");
        } else {
            assert!(n_on > 0, "case {i}: no assembled tile used");
        }
        let diff = on.iter().zip(&off).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            diff.is_none(),
            "case {i}: element {diff:?}: {:?} (AVX2) vs {:?}",
            diff.map(|d| on[d]),
            diff.map(|d| off[d])
        );
        let g = kerf_ir::text::parse(&text).unwrap();
        let want = reference(&g, &ins).remove(0);
        close(&format!("case {i}"), &on, &want, 1e-5, 1e-4);
    }
}
