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
