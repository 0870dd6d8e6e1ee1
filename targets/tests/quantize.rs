#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The quantisers against the reference evaluator, byte for byte, on every
//! preset the host runs: `Quantize` (the integer conv's input quantiser,
//! near ties included: it divides) and `Requantize` (QLinear*'s f64
//! requantisation). The requantising epilogue of `QConv` is in `qconv.rs`.

mod common;
use common::qcase::*;
use common::run;
use kerf_ir::{DType, Tensor};

/// `Requantize` (QLinearConv/QLinearMatMul's requantisation in one f64
/// pass) against the reference evaluator, byte for byte: per-channel and
/// scalar multipliers, with and without the i32 bias, u8 and i8 outputs,
/// ties to even, and saturation at both ends.
#[test]
fn requantize_matches_the_reference_byte_for_byte() {
    let acc: Vec<i64> = (0..2 * 3 * 8).map(|i| (i * 7919 % 4001) - 2000).collect();
    let cases = [
        ("[3]", "[0.01,0.5,0.0025]", Some("[-300,0,41]"), 128, "u8"),
        ("[]", "[0.125]", None, -3, "i8"),
        ("[3]", "[1.0,0.25,3.0]", Some("[5,-7,0]"), 0, "i8"),
    ];
    for (mshape, mult, bias, zp, out) in cases {
        let bias_decl = bias.map_or(String::new(), |b| format!("  const %2 \"b\": i32{mshape} = {b}\n"));
        let text = format!(
            "graph \"r\"\n  input %0 \"acc\": i32[2,3,8]\n  const %1 \"m\": f32{mshape} = {mult}\n{bias_decl}  %3 = Requantize{{axis=1, zp={zp}, out={out}}}(%0, %1{}): {out}[2,3,8] @\"r\"\n  output \"y\" = %3\n",
            if bias.is_some() { ", %2" } else { "" }
        );
        let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ins = vec![Tensor::from_i64_values(DType::I32, vec![2, 3, 8], &acc).unwrap()];
        let want: Vec<u8> = kerf_ir::eval::eval_graph(&g, &ins).unwrap().remove(0).bytes().to_vec();
        for cpu in ["native", "baseline"] {
            let got: Vec<u8> = run(&text, &ins, cpu).remove(0).iter().flat_map(|f| f.to_bits().to_le_bytes()).collect();
            assert_eq!(got, want, "{mult} {bias:?} zp {zp} {out} ({cpu})");
        }
    }
}

/// `Quantize` (the integer conv's input quantiser in one pass) against the
/// reference evaluator (its definition, op by op), byte for byte: padded
/// and unpadded, rows of 7, 13, 37 and 64 elements (16-byte blocks, 4-byte
/// steps and single bytes), several planes, ties at half steps, values
/// past both ends of the grid, −0 and values rounding to it, NaN with a
/// payload, zero points 0, 7, 128 and 255.
#[test]
fn quantize_matches_the_reference_byte_for_byte() {
    let cases: [([usize; 4], [i64; 8], u8); 5] = [
        ([2, 3, 5, 7], [0, 0, 1, 1, 0, 0, 1, 1], 128),
        ([1, 2, 4, 13], [0, 0, 2, 0, 0, 0, 1, 3], 0),
        ([1, 1, 3, 37], [0; 8], 255),
        ([1, 4, 8, 64], [0, 0, 1, 1, 0, 0, 1, 1], 7),
        // zero point 0 (a lower bound of -0) on rows the blocks of 16 take
        ([1, 2, 3, 40], [0, 0, 1, 0, 0, 0, 0, 2], 0),
    ];
    for (shape, pads, zp) in cases {
        let n: usize = shape.iter().product();
        let scale = 0.05f32;
        let x: Vec<f32> = (0..n)
            .map(|i| match (i % 17, i % 5) {
                (4, _) => f32::from_bits(0x7fc0_00ff), // NaN with a payload: byte 0, as the reference's cast
                (9, _) => -0.0,
                (13, _) => -0.2 * scale,                   // rounds to -0
                (_, 0) => (i as f32 * 0.5 - 30.0) * scale, // whole and half steps
                (_, 1) => 20.0,                            // 400 steps: past the top
                (_, 2) => -20.0,                           // past the bottom
                _ => ((i * 37 % 101) as f32 - 50.0) * 0.0137,
            })
            .collect();
        let (want, runs) = quantize_runs(&shape, &pads, (scale, zp), &x);
        for (cpu, got) in runs {
            assert_eq!(got, want, "{shape:?} pads {pads:?} zp {zp} ({cpu})");
        }
    }
}

/// `Quantize{scale, zp, pads}` of `x` (`shape`): the reference
/// evaluator's bytes, and each of [`cpus`]' compiled bytes.
fn quantize_runs(
    shape: &[usize; 4],
    pads: &[i64; 8],
    (scale, zp): (f32, u8),
    x: &[f32],
) -> (Vec<u8>, Vec<(&'static str, Vec<u8>)>) {
    let os: Vec<usize> = (0..4).map(|a| shape[a] + (pads[a] + pads[a + 4]) as usize).collect();
    let text = format!(
        "graph \"q\"\n  input %0 \"x\": f32[{}]\n  %1 = Quantize{{scale={scale:?}, zp={zp}, pads={}}}(%0): u8[{}]\n  output \"y\" = %1\n",
        dims(shape),
        ints(pads),
        dims(&os)
    );
    let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ins = vec![Tensor::from_f32(shape.to_vec(), x).unwrap()];
    let want = kerf_ir::eval::eval_graph(&g, &ins).unwrap().remove(0).bytes().to_vec();
    let runs = cpus()
        .into_iter()
        .map(|cpu| {
            let jm = common::jit(&g, cpu);
            (cpu, common::run_rt(jm.model(), &ins, None))
        })
        .collect();
    (want, runs)
}

/// Inputs within a few ulps of `(k + 1/2)·scale` for every k the clamp
/// keeps, including those where a product by `1/scale` and the IEEE
/// quotient round to different integers (scale 0.05: `-6.075` just below,
/// 32 such inputs in this set; 0.0137: 96): every path must divide, or
/// decide these as the division does. (A reciprocal with a division
/// fallback near ties was tried in `ukernel::quantize`; this test caught
/// it without the fallback, and with it the pass was no faster: it is
/// bound by its rows' tails and stores, not the division.)
#[test]
fn quantize_near_ties_matches_the_division() {
    for scale in [0.05f32, 0.1, 0.0137] {
        let x: Vec<f32> = (-130..130)
            .flat_map(|k| {
                let x0 = (k as f32 + 0.5) * scale;
                (-8i32..=8).map(move |d| f32::from_bits(x0.to_bits().wrapping_add_signed(d)))
            })
            .collect();
        let (want, runs) = quantize_runs(&[1, 1, 17, 260], &[0; 8], (scale, 128), &x);
        for (cpu, got) in runs {
            let bad = got.iter().zip(&want).position(|(a, b)| a != b);
            assert!(bad.is_none(), "scale {scale} ({cpu}): x = {:?}", bad.map(|i| x[i]));
        }
    }
}
