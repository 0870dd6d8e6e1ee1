#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fused conv epilogues with the transcendental activations (Sigmoid, Tanh,
//! exact and tanh-approximated Gelu), with and without a residual, on every
//! conv path that applies an epilogue (packed GEMM, depthwise, the second
//! pass of the scalar fallback), against the same conv followed by separate
//! Add / activation nodes. The epilogue calls the very `math` routines the
//! elementwise kernels use, so the two agree to the last bit except where
//! the conv sums themselves are ordered differently; the tolerance is the
//! op battery's (1e-5 + 1e-4 * max|ref|) and bitwise equality is checked
//! where both sides run the same conv kernel.

mod common;
use common::{close, list, run, t, xs};

const ACTS: [(&str, &str); 4] = [
    ("Sigmoid", "Sigmoid"),
    ("Tanh", "Tanh"),
    ("Gelu, act_tanh=false", "Gelu{tanh=false}"),
    ("Gelu, act_tanh=true", "Gelu{tanh=true}"),
];

fn dims(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

/// Conv `attrs` with x `xsh`, w `wsh`, output `osh`, fused vs unfused.
fn check(attrs: &str, xsh: &[usize], wsh: &[usize], osh: &[usize]) {
    let nw: usize = wsh.iter().product();
    let nx: usize = xsh.iter().product();
    let no: usize = osh.iter().product();
    let w: Vec<f32> = xs(nw + 5)[5..].iter().map(|v| v * 0.3).collect();
    let b: Vec<f32> = (0..wsh[0]).map(|i| 0.2 * i as f32 - 0.5).collect();
    let x = xs(nx);
    // residual values reach both tails of the activations
    let r: Vec<f32> = xs(no + 11)[11..].iter().map(|v| v * 2.0).collect();
    let consts = format!(
        "  input %0 \"x\": f32[{}]\n  input %9 \"r\": f32[{}]\n  const %1 \"w\": f32[{}] = {}\n  const %2 \"b\": f32[{}] = {}\n",
        dims(xsh),
        dims(osh),
        dims(wsh),
        list(&w),
        wsh[0],
        list(&b)
    );
    let o = dims(osh);
    for (fused_act, unary) in ACTS {
        for residual in [false, true] {
            let fused = format!(
                "graph \"f\"\n{consts}  %3 = ConvFused{{{attrs}, layer=\"c\", act={fused_act}, residual={residual}}}(%0, %1, %2{}): f32[{o}] @\"c\"\n  output \"y\" = %3\n",
                if residual { ", %9" } else { "" }
            );
            let add = if residual { format!("  %4 = Add(%3, %9): f32[{o}] @\"a\"\n") } else { String::new() };
            let src = if residual { "%4" } else { "%3" };
            let plain = format!(
                "graph \"p\"\n{consts}  %3 = Conv{{{attrs}, layer=\"c\"}}(%0, %1, %2): f32[{o}] @\"c\"\n{add}  %5 = {unary}({src}): f32[{o}] @\"act\"\n  output \"y\" = %5\n"
            );
            for cpu in ["native", "baseline"] {
                let ins = [t(xsh, &x), t(osh, &r)];
                let got = run(&fused, &ins, cpu).remove(0);
                let want = run(&plain, &ins, cpu).remove(0);
                let name = format!("{attrs} act={fused_act} residual={residual} ({cpu})");
                close(&name, &got, &want, 1e-5, 1e-4);
                // the same conv kernel on both sides: the epilogue adds no rounding of its own
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{name}: fused and unfused differ in bits");
            }
        }
    }
}

#[test]
fn packed_gemm_conv_applies_transcendental_epilogues() {
    // 6 output channels (>= 4 per group): the packed GEMM path
    check(
        "kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1",
        &[1, 3, 5, 6],
        &[6, 3, 3, 3],
        &[1, 6, 5, 6],
    );
}

#[test]
fn depthwise_conv_applies_transcendental_epilogues() {
    check(
        "kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=4",
        &[1, 4, 7, 9],
        &[4, 1, 3, 3],
        &[1, 4, 7, 9],
    );
}

#[test]
fn strided_depthwise_conv_applies_transcendental_epilogues() {
    check(
        "kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], group=4",
        &[1, 4, 7, 9],
        &[4, 1, 3, 3],
        &[1, 4, 4, 5],
    );
}

#[test]
fn narrow_conv_runs_the_epilogue_as_a_second_pass() {
    // 2 output channels, 1-D: neither GEMM nor depthwise
    check("kernel=[3], strides=[1], dilations=[1], pads=[1,1], group=1", &[1, 3, 11], &[2, 3, 3], &[1, 2, 11]);
}

#[test]
fn one_pixel_pointwise_conv_as_gemm_applies_transcendental_epilogues() {
    // 1x1 on 1x1 planes, two images: the MatMul engine's Gemm
    // (`matmul::pointwise_on_one_pixel`), bias per column, residual [N, M]
    check(
        "kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1",
        &[2, 40, 1, 1],
        &[24, 40, 1, 1],
        &[2, 24, 1, 1],
    );
}
