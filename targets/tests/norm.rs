#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Normalisations with run-time parameters (compared with the same graph
//! whose parameters are constants, or with hand-computed f64 values) and
//! LogSoftmax precision at large magnitudes. JIT for the host, native and
//! SSE2-baseline CPU flags.
//! Tolerance: |got - ref| <= 1e-5 + 1e-4 * max|ref| unless stated.

mod common;
use common::{close, list, run, t, xs};

#[test]
fn log_softmax_near_ten_thousand_keeps_precision() {
    // An ulp of 1e4 in f32 is ~1e-3: `x - (max + lse)` loses the digits
    // that `(x - max) - lse` keeps. Reference in f64.
    let x: Vec<f32> = vec![10000.0, 10000.5, 9999.25, 10001.0, 9998.0, 10000.75, 10001.0, 9999.5, 10000.125];
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mx = xd.iter().cloned().fold(f64::MIN, f64::max);
    let lse = xd.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
    let want: Vec<f32> = xd.iter().map(|v| (v - mx - lse) as f32).collect();
    let g = "graph \"lsm\"\n  input %0 \"x\": f32[1,9]\n  %1 = LogSoftmax{axis=1}(%0): f32[1,9] @\"l\"\n  output \"y\" = %1\n";
    // strided rows (axis 0 of [9,1]) take the scalar path
    let gs = "graph \"lsm0\"\n  input %0 \"x\": f32[9,1]\n  %1 = LogSoftmax{axis=0}(%0): f32[9,1] @\"l\"\n  output \"y\" = %1\n";
    for cpu in ["native", "baseline"] {
        // 2e-5 absolute: far below the 2.4e-4 error of the old formula
        close(&format!("contiguous ({cpu})"), &run(g, &[t(&[1, 9], &x)], cpu)[0], &want, 2e-5, 0.0);
        close(&format!("strided ({cpu})"), &run(gs, &[t(&[9, 1], &x)], cpu)[0], &want, 2e-5, 0.0);
    }
}

#[test]
fn layer_norm_with_runtime_scale_and_bias() {
    let x = xs(3 * 2 * 5);
    let s: Vec<f32> = (0..10).map(|i| 0.5 + 0.1 * i as f32).collect();
    let b: Vec<f32> = (0..10).map(|i| -0.3 + 0.07 * i as f32).collect();
    let rt = "graph \"ln\"\n  input %0 \"x\": f32[3,2,5]\n  input %1 \"s\": f32[2,5]\n  input %2 \"b\": f32[2,5]\n  %3 = LayerNormalization{axis=1, epsilon=1e-5}(%0, %1, %2): f32[3,2,5] @\"n\"\n  output \"y\" = %3\n";
    let ct = format!("graph \"lnc\"\n  input %0 \"x\": f32[3,2,5]\n  const %1 \"s\": f32[2,5] = {}\n  const %2 \"b\": f32[2,5] = {}\n  %3 = LayerNormalization{{axis=1, epsilon=1e-5}}(%0, %1, %2): f32[3,2,5] @\"n\"\n  output \"y\" = %3\n", list(&s), list(&b));
    // hand reference
    let mut want = Vec::new();
    for r in 0..3 {
        let row: Vec<f64> = x[r * 10..r * 10 + 10].iter().map(|&v| v as f64).collect();
        let mean = row.iter().sum::<f64>() / 10.0;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 10.0;
        for j in 0..10 {
            want.push(((row[j] - mean) / (var + 1e-5).sqrt() * s[j] as f64 + b[j] as f64) as f32);
        }
    }
    for cpu in ["native", "baseline"] {
        let got = run(rt, &[t(&[3, 2, 5], &x), t(&[2, 5], &s), t(&[2, 5], &b)], cpu);
        close(&format!("runtime ({cpu})"), &got[0], &want, 1e-5, 1e-4);
        let got = run(&ct, &[t(&[3, 2, 5], &x)], cpu);
        close(&format!("const ({cpu})"), &got[0], &want, 1e-5, 1e-4);
    }
}

#[test]
fn batch_and_instance_norm_with_runtime_parameters() {
    let x = xs(2 * 3 * 7);
    let (sc, bi, mu, va) = ([1.0f32, 2.0, 0.5], [0.0f32, 0.1, -0.2], [0.3f32, -0.1, 0.0], [1.0f32, 0.25, 4.0]);
    let mut bn = Vec::new();
    let mut inn = Vec::new();
    for n in 0..2 {
        for c in 0..3 {
            let plane: Vec<f64> = (0..7).map(|p| x[(n * 3 + c) * 7 + p] as f64).collect();
            let mean = plane.iter().sum::<f64>() / 7.0;
            let var = plane.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 7.0;
            for &v in &plane {
                bn.push(((v - mu[c] as f64) / (va[c] as f64 + 1e-5).sqrt() * sc[c] as f64 + bi[c] as f64) as f32);
                inn.push(((v - mean) / (var + 1e-5).sqrt() * sc[c] as f64 + bi[c] as f64) as f32);
            }
        }
    }
    let g = "graph \"bn\"\n  input %0 \"x\": f32[2,3,7]\n  input %1 \"s\": f32[3]\n  input %2 \"b\": f32[3]\n  input %3 \"m\": f32[3]\n  input %4 \"v\": f32[3]\n  %5 = BatchNormalization{epsilon=1e-5}(%0, %1, %2, %3, %4): f32[2,3,7] @\"bn\"\n  %6 = InstanceNormalization{epsilon=1e-5}(%0, %1, %2): f32[2,3,7] @\"in\"\n  output \"y\" = %5\n  output \"z\" = %6\n";
    let ins = [t(&[2, 3, 7], &x), t(&[3], &sc), t(&[3], &bi), t(&[3], &mu), t(&[3], &va)];
    for cpu in ["native", "baseline"] {
        let got = run(g, &ins, cpu);
        close(&format!("batch norm ({cpu})"), &got[0], &bn, 1e-5, 1e-4);
        close(&format!("instance norm ({cpu})"), &got[1], &inn, 1e-5, 1e-4);
    }
}
