#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Sin and Cos (against f64 `sin`/`cos`, |d| <= 2e-7 for the inputs here,
//! which are within `math::SIN_COS_MAX_ARG`) and integer Div, Mod and Fmod
//! (exact, against hand-computed values, including negative operands,
//! division by zero (0 by kerf's definition) and MIN / -1 (wraps)).

mod common;
use common::{close, run, t};
use kerf_ir::{DType, Tensor};

#[test]
fn sin_cos_vector_body_and_tail() {
    let x: Vec<f32> = (0..23).map(|i| (i as f32 - 11.0) * 0.731 + 0.05).chain([1000.5, -7000.25]).collect();
    let n = x.len();
    let g = format!("graph \"sc\"\n  input %0 \"x\": f32[{n}]\n  %1 = Sin(%0): f32[{n}] @\"s\"\n  %2 = Cos(%0): f32[{n}] @\"c\"\n  output \"s\" = %1\n  output \"c\" = %2\n");
    let ws: Vec<f32> = x.iter().map(|&v| (v as f64).sin() as f32).collect();
    let wc: Vec<f32> = x.iter().map(|&v| (v as f64).cos() as f32).collect();
    for cpu in ["native", "baseline"] {
        let got = run(&g, &[t(&[n], &x)], cpu);
        close(&format!("sin ({cpu})"), &got[0], &ws, 2e-7, 0.0);
        close(&format!("cos ({cpu})"), &got[1], &wc, 2e-7, 0.0);
    }
}

fn int_case(dt: &str, a: &[i64], b: &[i64], want: [&[f32]; 3]) {
    let n = a.len();
    let g = format!(
        "graph \"id\"\n  input %0 \"a\": {dt}[{n}]\n  input %1 \"b\": {dt}[{n}]\n  %2 = Div(%0, %1): {dt}[{n}] @\"d\"\n  %3 = Mod(%0, %1): {dt}[{n}] @\"m\"\n  %4 = Fmod(%0, %1): {dt}[{n}] @\"f\"\n  %5 = Cast{{to=f32}}(%2): f32[{n}] @\"c1\"\n  %6 = Cast{{to=f32}}(%3): f32[{n}] @\"c2\"\n  %7 = Cast{{to=f32}}(%4): f32[{n}] @\"c3\"\n  output \"d\" = %5\n  output \"m\" = %6\n  output \"f\" = %7\n"
    );
    let d = DType::from_name(dt).unwrap();
    let ins = [Tensor::from_i64_values(d, vec![n], a).unwrap(), Tensor::from_i64_values(d, vec![n], b).unwrap()];
    for cpu in ["native", "baseline"] {
        let got = run(&g, &ins, cpu);
        for (k, name) in ["Div", "Mod", "Fmod"].iter().enumerate() {
            assert_eq!(got[k], want[k], "{name} on {dt} ({cpu})");
        }
    }
}

#[test]
fn integer_div_mod_fmod() {
    let a = [7, -7, 7, -7, 5, 0, 9, -128];
    let b = [3, 3, -3, -3, 0, 4, 1, -1];
    // i8: -128 / -1 wraps to -128; x % -1 == 0
    int_case(
        "i8",
        &a,
        &b,
        [
            &[2.0, -2.0, -2.0, 2.0, 0.0, 0.0, 9.0, -128.0],
            &[1.0, 2.0, -2.0, -1.0, 0.0, 0.0, 0.0, 0.0],
            &[1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0],
        ],
    );
    int_case(
        "i64",
        &a,
        &b,
        [
            &[2.0, -2.0, -2.0, 2.0, 0.0, 0.0, 9.0, 128.0],
            &[1.0, 2.0, -2.0, -1.0, 0.0, 0.0, 0.0, 0.0],
            &[1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0],
        ],
    );
    int_case(
        "u32",
        &[7, 200, 5, 0, 4_000_000_000],
        &[3, 7, 0, 4, 3],
        [&[2.0, 28.0, 0.0, 0.0, 1_333_333_333.0], &[1.0, 4.0, 0.0, 0.0, 1.0], &[1.0, 4.0, 0.0, 0.0, 1.0]],
    );
}

#[test]
fn f64_arithmetic_is_exact_ieee() {
    // y = max(sqrt(|a|) * b, -a / b) - c, where c is the same expression in Rust f64: the
    // residual is exactly 0 only if every op ran in f64 (f32 would leave ~1e-8 relative).
    let a: Vec<f64> = (0..7).map(|i| (i as f64 - 3.0) * 1.000_000_123_456_7 + 0.1).collect();
    let b: Vec<f64> = (0..7).map(|i| 0.3 + i as f64 * 0.777_777_777_777_7).collect();
    let c: Vec<f64> = a.iter().zip(&b).map(|(&a, &b)| (a.abs().sqrt() * b).max(-a / b)).collect();
    let cs: Vec<String> = c.iter().map(|v| format!("{v:?}")).collect();
    let g = format!(
        "graph \"f64\"\n  input %0 \"a\": f64[7]\n  input %1 \"b\": f64[7]\n  const %2 \"c\": f64[7] = [{}]\n  %3 = Abs(%0): f64[7] @\"u1\"\n  %4 = Sqrt(%3): f64[7] @\"u2\"\n  %5 = Mul(%4, %1): f64[7] @\"b1\"\n  %6 = Neg(%0): f64[7] @\"u3\"\n  %7 = Div(%6, %1): f64[7] @\"b2\"\n  %8 = Max(%5, %7): f64[7] @\"b3\"\n  %9 = Sub(%8, %2): f64[7] @\"b4\"\n  %10 = Cast{{to=f32}}(%9): f32[7] @\"c1\"\n  %11 = Cast{{to=f32}}(%8): f32[7] @\"c2\"\n  output \"r\" = %10\n  output \"y\" = %11\n",
        cs.join(",")
    );
    let ins = [
        Tensor::from_f64_values(DType::F64, vec![7], &a).unwrap(),
        Tensor::from_f64_values(DType::F64, vec![7], &b).unwrap(),
    ];
    let want: Vec<f32> = c.iter().map(|&v| v as f32).collect();
    for cpu in ["native", "baseline"] {
        let got = run(&g, &ins, cpu);
        assert_eq!(got[0], vec![0.0; 7], "f64 residual ({cpu})");
        assert_eq!(got[1], want, "f64 values ({cpu})");
    }
}

/// Reductions on f64 and integers against `kerf_ir::eval` (exact: the
/// values are small integers, or f64 sums the reference forms in the same
/// order).
#[test]
fn reductions_on_f64_and_integers() {
    let vals: Vec<i64> = (0..24).map(|i| ((i * 37) % 11) - 5).collect();
    for (dt, kinds) in [
        ("i32", &["ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceSumSquare"][..]),
        ("i8", &["ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1"][..]),
        ("u8", &["ReduceSum", "ReduceMax", "ReduceMin"][..]),
        ("f64", &["ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceMean", "ReduceL1", "ReduceL2"][..]),
    ] {
        let d = DType::from_name(dt).unwrap();
        let v: Vec<i64> =
            if d.is_signed_int() || d == DType::F64 { vals.clone() } else { vals.iter().map(|x| x + 5).collect() };
        let x = if d == DType::F64 {
            Tensor::from_f64_values(d, vec![2, 3, 4], &v.iter().map(|&a| a as f64 * 0.37).collect::<Vec<_>>()).unwrap()
        } else {
            Tensor::from_i64_values(d, vec![2, 3, 4], &v).unwrap()
        };
        for kind in kinds {
            let g = format!(
                "graph \"r\"\n  input %0 \"x\": {dt}[2,3,4]\n  %1 = {kind}{{axes=[0,2], keepdims=false}}(%0): {dt}[3] @\"r\"\n  %2 = Cast{{to=f32}}(%1): f32[3] @\"c\"\n  output \"y\" = %2\n"
            );
            let gr = kerf_ir::text::parse(&g).unwrap();
            let r = kerf_ir::eval::eval(&gr.nodes[0].op, &[&x]).unwrap().remove(0);
            let want: Vec<f32> = r.to_f64_vec().iter().map(|&a| a as f32).collect();
            for cpu in ["native", "baseline"] {
                let got = run(&g, std::slice::from_ref(&x), cpu).remove(0);
                close(&format!("{kind} on {dt} ({cpu})"), &got, &want, 1e-6, 1e-7);
            }
        }
    }
}

/// f32 -> f16/bf16 -> f32 round trips with hand-derived results: ties to
/// even (normal and subnormal), overflow to inf, NaN, the extremes.
#[test]
fn half_precision_casts_round_to_nearest_even() {
    let p = |e: i32| 2f32.powi(e);
    let x: Vec<f32> = vec![
        1.0,
        -2.0,
        65504.0,
        65519.99,
        65520.0,
        p(-24),
        p(-25),
        1.5 * p(-24),
        1.0 + p(-10),
        1.0 + p(-11),
        1.0 + 3.0 * p(-11),
        p(-14),
        f32::INFINITY,
        f32::NAN,
        0.0,
        3.0e-9,
    ];
    let want16: Vec<f32> = vec![
        1.0,
        -2.0,
        65504.0,
        65504.0,
        f32::INFINITY,
        p(-24),
        0.0,
        2.0 * p(-24),
        1.0 + p(-10),
        1.0,
        1.0 + p(-9),
        p(-14),
        f32::INFINITY,
        f32::NAN,
        0.0,
        0.0,
    ];
    let wantb: Vec<f32> = vec![
        1.0,
        -2.0,
        65536.0,
        65536.0,
        65536.0,
        p(-24),
        p(-25),
        1.5 * p(-24),
        1.0,
        1.0,
        1.0,
        p(-14),
        f32::INFINITY,
        f32::NAN,
        0.0,
        // 3e-9 = 0x314e288f: the low half 0x288f < 0x8000 rounds down
        f32::from_bits(0x314e_0000),
    ];
    let n = x.len();
    let g = format!(
        "graph \"h\"\n  input %0 \"x\": f32[{n}]\n  %1 = Cast{{to=f16}}(%0): f16[{n}] @\"a\"\n  %2 = Cast{{to=f32}}(%1): f32[{n}] @\"b\"\n  %3 = Cast{{to=bf16}}(%0): bf16[{n}] @\"c\"\n  %4 = Cast{{to=f32}}(%3): f32[{n}] @\"d\"\n  %5 = Cast{{to=bf16}}(%1): bf16[{n}] @\"e\"\n  %6 = Cast{{to=i32}}(%1): i32[{n}] @\"f\"\n  %7 = Cast{{to=f32}}(%6): f32[{n}] @\"g\"\n  output \"h\" = %2\n  output \"b\" = %4\n  output \"i\" = %7\n"
    );
    for cpu in ["native", "baseline"] {
        let got = run(&g, &[t(&[n], &x)], cpu);
        for (name, got, want) in [("f16", &got[0], &want16), ("bf16", &got[1], &wantb)] {
            for i in 0..n {
                let (a, b) = (got[i], want[i]);
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "{name} ({cpu}) element {i} ({}): got {a:e}, want {b:e}",
                    x[i]
                );
            }
        }
        // f16 -> i32 truncates the f16 value (NaN -> 0, inf saturates)
        assert_eq!(got[2][..4], [1.0, -2.0, 65504.0, 65504.0], "f16 -> i32 ({cpu})");
    }
}

/// Pow with integer operands: exact small integer results, signs of
/// negative bases, y = 0, a negative base with a fractional exponent (NaN).
#[test]
fn pow_with_integer_operands() {
    let g = "graph \"p\"\n  input %0 \"a\": i32[6]\n  input %1 \"b\": i32[6]\n  input %2 \"x\": f32[6]\n  input %3 \"y\": f32[6]\n  %4 = Pow(%0, %1): i32[6] @\"p1\"\n  %5 = Pow(%2, %1): f32[6] @\"p2\"\n  %6 = Pow(%0, %3): i32[6] @\"p3\"\n  %7 = Cast{to=f32}(%4): f32[6] @\"c1\"\n  %8 = Cast{to=f32}(%6): f32[6] @\"c2\"\n  output \"ii\" = %7\n  output \"fi\" = %5\n  output \"if\" = %8\n";
    let a = Tensor::from_i64_values(DType::I32, vec![6], &[1, 2, 3, -3, -2, 7]).unwrap();
    let b = Tensor::from_i64_values(DType::I32, vec![6], &[4, 5, 6, 3, 4, 0]).unwrap();
    let x = t(&[6], &[1.5, -2.0, 0.5, -1.25, 0.0, -3.0]);
    let y = t(&[6], &[2.0, 0.5, 3.0, 1.0, 2.5, -1.5]);
    for cpu in ["native", "baseline"] {
        let got = run(g, &[a.clone(), b.clone(), x.clone(), y.clone()], cpu);
        assert_eq!(got[0], [1.0, 32.0, 729.0, -27.0, 16.0, 1.0], "i32 ^ i32 ({cpu})");
        close(&format!("f32 ^ i32 ({cpu})"), &got[1], &[5.0625, -32.0, 0.015625, -1.953125, 0.0, 1.0], 1e-6, 1e-6);
        // 1^2, 2^0.5 -> 1, 3^3, (-3)^1, (-2)^2.5 -> NaN -> 0 (saturating), 7^-1.5 -> 0
        assert_eq!(got[2], [1.0, 1.0, 27.0, -3.0, 0.0, 0.0], "i32 ^ f32 ({cpu})");
    }
}

/// Clip on integers: bounds clamped to the type's range, absent bounds
/// (±inf) leave that side open.
#[test]
fn clip_on_integers() {
    let v = [-128i64, -5, 0, 3, 7, 100, 127];
    for (dt, vals, lo, hi, want) in [
        ("i8", &v[..], "-4.0", "6.0", vec![-4.0, -4.0, 0.0, 3.0, 6.0, 6.0, 6.0]),
        ("i8", &v[..], "-inf", "inf", vec![-128.0, -5.0, 0.0, 3.0, 7.0, 100.0, 127.0]),
        ("u8", &[0, 5, 200, 255, 1, 9, 10][..], "2.0", "300.0", vec![2.0, 5.0, 200.0, 255.0, 2.0, 9.0, 10.0]),
        ("i32", &v[..], "-1000.0", "50.0", vec![-128.0, -5.0, 0.0, 3.0, 7.0, 50.0, 50.0]),
    ] {
        let g = format!(
            "graph \"c\"\n  input %0 \"x\": {dt}[7]\n  %1 = Clip{{min={lo}, max={hi}}}(%0): {dt}[7] @\"c\"\n  %2 = Cast{{to=f32}}(%1): f32[7] @\"f\"\n  output \"y\" = %2\n"
        );
        let x = Tensor::from_i64_values(DType::from_name(dt).unwrap(), vec![7], vals).unwrap();
        for cpu in ["native", "baseline"] {
            assert_eq!(run(&g, std::slice::from_ref(&x), cpu)[0], want, "Clip {lo}..{hi} on {dt} ({cpu})");
        }
    }
}

/// `fmax(a, b)` as Cranelift defines it: NaN if either is, `+0` over `-0`.
fn fmax_ref(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        return f32::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_positive() || b.is_sign_positive() { 0.0 } else { -0.0 };
    }
    if a > b {
        a
    } else {
        b
    }
}

/// `fmin(a, b)`: NaN if either is, `-0` under `+0`.
fn fmin_ref(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        return f32::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() || b.is_sign_negative() { -0.0 } else { 0.0 };
    }
    if a < b {
        a
    } else {
        b
    }
}

/// f32 Clip bit for bit as `fmin(fmax(x, lo), hi)` (NaN stays NaN), for
/// every kind of bound the vector compare-selects handle differently
/// (`+0` and `-0` lower bounds, `+0` and `-0` upper ones, ordinary ones),
/// on inputs at and around the bounds, signed zeros, infinities and NaN; a
/// vector body of 16 and a scalar tail of 3, standalone and as a chain step.
#[test]
fn clip_signed_zeros_and_nan_bit_for_bit() {
    let x: Vec<f32> = [0.0, -0.0, 6.0, -3.0, 1.5, -1.5, 7.0, -7.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]
        .into_iter()
        .chain([1e-30, -1e-30, 3.0, 2.5, -0.0, 0.0, 5.999, -2.999])
        .collect();
    let n = x.len();
    for (lo, hi) in [(0.0f32, 6.0f32), (-0.0, 6.0), (-3.0, 0.0), (-3.0, -0.0), (-2.5, 2.5), (-0.0, 0.0)] {
        let want: Vec<f32> = x.iter().map(|&v| fmin_ref(fmax_ref(v, lo), hi)).collect();
        // standalone, and inside a chain (after an exact Mul by 1)
        let g = format!(
            "graph \"c\"\n  input %0 \"x\": f32[{n}]\n  const %3 \"one\": f32[] = [1.0]\n  %1 = Clip{{min={lo:?}, max={hi:?}}}(%0): f32[{n}] @\"c\"\n  %2 = Chain{{steps=\"Mul(@,$1) Clip{{min={lo:?},max={hi:?}}}\"}}(%0, %3): f32[{n}] @\"k\"\n  output \"y\" = %1\n  output \"z\" = %2\n"
        );
        for cpu in ["native", "baseline"] {
            for (o, got) in run(&g, &[t(&[n], &x)], cpu).iter().enumerate() {
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                    assert!(same, "Clip [{lo:?}, {hi:?}] output {o} ({cpu}): x = {:?} gave {a:?}, want {b:?}", x[i]);
                }
            }
        }
    }
}
