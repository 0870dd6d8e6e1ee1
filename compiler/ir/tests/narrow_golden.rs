#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kerf_ir::narrow` against the ONNX reference implementation's Cast
//! (ml_dtypes / onnx.numpy_helper), from `data/narrow_golden.txt`
//! (regenerate with `testsuite/scripts/make_narrow_golden.py`):
//! every code decoded, every f16 bit pattern encoded, and for f32 both sides
//! of every point where the reference's result changes (which, with the
//! codes never revisiting a value along each range, pins the result for all
//! 2^32 patterns) plus the midpoint of every run.

use half::f16;
use kerf_ir::narrow::{self, CastRound};
use kerf_ir::DType;

const GOLDEN: &str = include_str!("data/narrow_golden.txt");

fn runs(fields: &[&str]) -> Vec<(u64, u8)> {
    fields
        .iter()
        .map(|f| {
            let (s, c) = f.split_once(':').unwrap();
            (u64::from_str_radix(s, 16).unwrap(), u8::from_str_radix(c, 16).unwrap())
        })
        .collect()
}

struct Line<'a> {
    kind: &'a str,
    dtype: DType,
    saturate: bool,
    round: CastRound,
    rest: Vec<&'a str>,
}

fn lines() -> Vec<Line<'static>> {
    GOLDEN
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dtype = DType::from_name(f[1]).unwrap();
            if f[0] == "decode" {
                return Line { kind: f[0], dtype, saturate: true, round: CastRound::Up, rest: f[2..].to_vec() };
            }
            Line {
                kind: f[0],
                dtype,
                saturate: f[2] == "1",
                round: CastRound::from_name(f[3]).unwrap(),
                rest: f[4..].to_vec(),
            }
        })
        .collect()
}

#[test]
fn decode_matches_reference_for_every_code() {
    let mut n = 0;
    for l in lines().iter().filter(|l| l.kind == "decode") {
        for (c, hex) in l.rest.iter().enumerate() {
            let want = f32::from_bits(u32::from_str_radix(hex, 16).unwrap());
            let got = narrow::decode(l.dtype, c as u8) as f32;
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{} code {c:#x}: got {got}, reference {want}",
                l.dtype
            );
            n += 1;
        }
    }
    assert_eq!(n, 5 * 256 + 16);
}

#[test]
fn every_f16_pattern_encodes_like_the_reference() {
    let mut tables = 0;
    for l in lines().iter().filter(|l| l.kind == "enc16") {
        let r = runs(&l.rest);
        let mut bad = Vec::new();
        for (k, &(start, code)) in r.iter().enumerate() {
            let end = r.get(k + 1).map_or(0x10000, |n| n.0);
            for p in start..end {
                let x = f16::from_bits(p as u16).to_f64();
                let got = narrow::encode(l.dtype, x, l.saturate, l.round);
                if got != code {
                    bad.push(format!("{p:#06x} ({x}): got {got:#x}, reference {code:#x}"));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "{} saturate={} {:?}: {} of 65536 differ, e.g. {:?}",
            l.dtype,
            l.saturate,
            l.round,
            bad.len(),
            &bad[..bad.len().min(5)]
        );
        tables += 1;
    }
    assert_eq!(tables, 16, "5 types x 2 saturate + e8m0's 2 extra round modes x 2 saturate");
}

#[test]
fn f32_encodes_like_the_reference_at_every_boundary() {
    let enc =
        |l: &Line, bits: u64| narrow::encode(l.dtype, f64::from(f32::from_bits(bits as u32)), l.saturate, l.round);
    for l in lines().iter().filter(|l| l.kind == "enc32") {
        let r = runs(&l.rest);
        for (k, &(start, code)) in r.iter().enumerate() {
            let end = r.get(k + 1).map_or(0x1_0000_0000, |n| n.0);
            for bits in [start, (start + end) / 2, end - 1] {
                assert_eq!(
                    enc(l, bits),
                    code,
                    "{} saturate={} {:?}: f32 bits {bits:#010x} ({})",
                    l.dtype,
                    l.saturate,
                    l.round,
                    f32::from_bits(bits as u32)
                );
            }
        }
    }
}
