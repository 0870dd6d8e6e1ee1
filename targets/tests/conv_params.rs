#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Conv and ConvTranspose whose weight and bias are graph inputs (run-time
//! tensors), against the same graph with constant parameters (itself checked
//! against direct sums in `ops.rs`). Every code path: GEMM (>= 4 output
//! channels per group), pointwise 1x1, narrow/depthwise (< 4, SIMD) and the
//! scalar fallback (baseline CPU flags). Tolerance 1e-5 + 1e-4 * max|ref|.

mod common;
use common::{close, list, run, t, xs};

/// `conv` attributes, x shape, w shape, output shape.
fn conv_pair(attrs: &str, op: &str, xsh: &[usize], wsh: &[usize], osh: &[usize]) {
    let dims = |s: &[usize]| s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    let nb = if op == "Conv" { wsh[0] } else { osh[1] };
    let nw: usize = wsh.iter().product();
    let nx: usize = xsh.iter().product();
    let w: Vec<f32> = xs(nw + 3)[3..].iter().map(|v| v * 0.25).collect();
    let b: Vec<f32> = (0..nb).map(|i| 0.1 * i as f32 - 0.2).collect();
    let x = xs(nx);
    let rt = format!(
        "graph \"rt\"\n  input %0 \"x\": f32[{}]\n  input %1 \"w\": f32[{}]\n  input %2 \"b\": f32[{nb}]\n  %3 = {op}{{{attrs}}}(%0, %1, %2): f32[{}] @\"c\"\n  output \"y\" = %3\n",
        dims(xsh), dims(wsh), dims(osh)
    );
    let ct = format!(
        "graph \"ct\"\n  input %0 \"x\": f32[{}]\n  const %1 \"w\": f32[{}] = {}\n  const %2 \"b\": f32[{nb}] = {}\n  %3 = {op}{{{attrs}}}(%0, %1, %2): f32[{}] @\"c\"\n  output \"y\" = %3\n",
        dims(xsh), dims(wsh), list(&w), list(&b), dims(osh)
    );
    for cpu in ["native", "baseline"] {
        let want = run(&ct, &[t(xsh, &x)], cpu).remove(0);
        let got = run(&rt, &[t(xsh, &x), t(wsh, &w), t(&[nb], &b)], cpu).remove(0);
        close(&format!("{op} {attrs} ({cpu})"), &got, &want, 1e-5, 1e-4);
    }
}

#[test]
fn conv_with_runtime_weights_every_path() {
    // GEMM: 6 output channels, 3x3, stride 2, padding 1
    conv_pair(
        "kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], group=1, layer=\"c\"",
        "Conv",
        &[1, 3, 7, 6],
        &[6, 3, 3, 3],
        &[1, 6, 4, 3],
    );
    // pointwise 1x1
    conv_pair(
        "kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"c\"",
        "Conv",
        &[2, 5, 3, 3],
        &[4, 5, 1, 1],
        &[2, 4, 3, 3],
    );
    // depthwise (1 output channel per group), dilation 2
    conv_pair(
        "kernel=[3,3], strides=[1,1], dilations=[2,2], pads=[2,2,2,2], group=3, layer=\"c\"",
        "Conv",
        &[1, 3, 5, 7],
        &[3, 1, 3, 3],
        &[1, 3, 5, 7],
    );
    // 1-D, 2 output channels
    conv_pair(
        "kernel=[3], strides=[1], dilations=[1], pads=[1,1], group=1, layer=\"c\"",
        "Conv",
        &[1, 2, 9],
        &[2, 2, 3],
        &[1, 2, 9],
    );
}

#[test]
fn conv_transpose_with_runtime_weights() {
    conv_pair(
        "kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], group=1, output_padding=[0,0], layer=\"ct\"",
        "ConvTranspose",
        &[1, 2, 3, 4],
        &[2, 3, 3, 3],
        &[1, 3, 5, 7],
    );
}
