#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Generated Cast kernels for the narrow dtypes against `kerf_ir::narrow`
//! (itself checked against the ONNX reference in
//! compiler/ir/tests/narrow_golden.rs), bit for bit, JIT-compiled for the
//! host and for the baseline CPU:
//! - f32 → float8/float4/E8M0 (every `saturate`/`round_mode`) on every f16
//!   value widened to f32 and its f32 neighbours (ties and just off ties);
//! - f16 → the same, on all 2^16 patterns; f64 → float8 off ties by one f64 ulp;
//! - every code → f32 and → f16;
//! - f32/i32 → 4/2-bit ints (wrapping) and back.
//!
//! The cross-ISA path (aarch64, riscv64 under qemu) runs the same kernels
//! through the op battery (testsuite/fixtures/ops, cast_* cases).

use kerf_ir::narrow::{self, CastRound};
use kerf_ir::{DType, Tensor};
use kerf_targets::{jit_compile, CompileOptions};

/// Every f16 value (by bit pattern), exactly, as f64.
fn f16_values() -> Vec<f64> {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|p| p.to_le_bytes()).collect();
    Tensor::from_bytes(DType::F16, vec![1 << 16], bytes).unwrap().to_f64_vec()
}

/// `x` rounded to f16 (nearest even), as f64.
fn to_f16(x: f64) -> f64 {
    Tensor::from_f64_values(DType::F16, vec![1], &[x]).unwrap().get_f64(0)
}

/// Runs a one-node Cast graph; returns the output bytes.
fn run(op: &str, from: DType, to: DType, input: &Tensor, cpu: &str) -> Vec<u8> {
    let n = input.numel();
    let text =
        format!("graph \"c\"\n  input %0 \"x\": {from}[{n}]\n  %1 = {op}(%0): {to}[{n}] @\"c\"\n  output \"y\" = %1\n");
    let g = kerf_ir::text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let jm = jit_compile(&g, &CompileOptions::parse("host", cpu, "t").unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let m = jm.model();
    let mut store = vec![0u64; input.bytes().len().div_ceil(8)];
    for (i, c) in input.bytes().chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        store[i] = u64::from_le_bytes(w);
    }
    // SAFETY: u64 has no padding; the view covers the tensor's bytes within the vector.
    let view = unsafe { std::slice::from_raw_parts(store.as_ptr() as *const u8, input.bytes().len()) };
    let out_bytes = m.info().outputs[0].bytes;
    let mut out = vec![0u64; out_bytes.div_ceil(8)];
    {
        // SAFETY: as above; any byte pattern is a valid u64.
        let o = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, out_bytes) };
        let mut arena = m.new_arena().unwrap();
        m.run(&[view], &mut [o], &mut arena).unwrap();
    }
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(out.as_ptr() as *const u8, out_bytes) }.to_vec()
}

fn op_text(to: DType, saturate: bool, round: CastRound) -> String {
    if saturate && round == CastRound::Up {
        format!("Cast{{to={to}}}")
    } else {
        format!("CastF8{{to={to}, saturate={saturate}, round={}}}", round.name())
    }
}

fn targets() -> Vec<(DType, bool, CastRound)> {
    let mut v = Vec::new();
    for d in [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F4E2M1, DType::F8E8M0] {
        let rounds: &[CastRound] =
            if d == DType::F8E8M0 { &[CastRound::Up, CastRound::Down, CastRound::Nearest] } else { &[CastRound::Up] };
        for &sat in &[true, false] {
            for &r in rounds {
                // float4 has no saturate attribute (always saturates): Cast only
                if d == DType::F4E2M1 && !sat {
                    continue;
                }
                v.push((d, sat, r));
            }
        }
    }
    v
}

fn check_encode(from: DType, input: &Tensor) {
    let vals = input.to_f64_vec();
    for (to, sat, round) in targets() {
        let op = op_text(to, sat, round);
        for cpu in ["native", "baseline"] {
            let got = run(&op, from, to, input, cpu);
            let mut bad = Vec::new();
            for (i, (&x, &g)) in vals.iter().zip(&got).enumerate() {
                // E8M0 converts from the f32 value (as the reference does)
                let x = if to == DType::F8E8M0 { f64::from(x as f32) } else { x };
                let want = narrow::encode(to, x, sat, round);
                if g != want {
                    bad.push(format!("#{i} {x:e}: got {g:#04x}, want {want:#04x}"));
                }
            }
            assert!(
                bad.is_empty(),
                "{from} -> {op} ({cpu}): {} differ, e.g. {:?}",
                bad.len(),
                &bad[..bad.len().min(5)]
            );
        }
    }
}

#[test]
fn f32_to_narrow_floats_is_bit_exact() {
    let mut bits = Vec::new();
    for x in f16_values() {
        let b = (x as f32).to_bits();
        bits.extend([b, b.wrapping_add(1), b.wrapping_sub(1)]);
    }
    let v: Vec<f32> = bits.into_iter().map(f32::from_bits).collect();
    check_encode(DType::F32, &Tensor::from_f32(vec![v.len()], &v).unwrap());
}

#[test]
fn f16_to_narrow_floats_is_bit_exact() {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|p| p.to_le_bytes()).collect();
    check_encode(DType::F16, &Tensor::from_bytes(DType::F16, vec![1 << 16], bytes).unwrap());
}

#[test]
fn f64_to_float8_rounds_once() {
    // values one f64 ulp off every f16 value: f64 -> f32 -> f8 would round twice
    let mut v = Vec::new();
    for x in f16_values().into_iter().step_by(3) {
        v.extend([x, f64::from_bits(x.to_bits().wrapping_add(1)), f64::from_bits(x.to_bits().wrapping_sub(1))]);
    }
    let t = Tensor::from_f64_values(DType::F64, vec![v.len()], &v).unwrap();
    check_encode(DType::F64, &t);
}

#[test]
fn every_code_decodes_exactly() {
    for d in [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F8E8M0, DType::F4E2M1] {
        let n = if d == DType::F4E2M1 { 16 } else { 256 };
        let t = Tensor::from_bytes(d, vec![n], (0..n).map(|c| c as u8).collect()).unwrap();
        for to in [DType::F32, DType::F16] {
            for cpu in ["native", "baseline"] {
                let got = Tensor::from_bytes(to, vec![n], run(&format!("Cast{{to={to}}}"), d, to, &t, cpu)).unwrap();
                for c in 0..n {
                    let want = narrow::decode(d, c as u8);
                    let want = if to == DType::F16 { to_f16(want) } else { f64::from(want as f32) };
                    let g = got.get_f64(c);
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "{d} code {c:#x} -> {to} ({cpu}): got {g}, want {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn small_ints_wrap_and_widen() {
    let v = [
        -9.0f32,
        -8.5,
        -2.7,
        -1.0,
        -0.4,
        0.0,
        0.6,
        1.5,
        2.7,
        7.0,
        8.5,
        15.9,
        100.0,
        300.0,
        1e10,
        f32::NAN,
        f32::INFINITY,
    ];
    let t = Tensor::from_f32(vec![v.len()], &v).unwrap();
    let i = Tensor::from_i64_values(DType::I32, vec![6], &[-300, -9, -1, 7, 8, 300]).unwrap();
    for to in [DType::I4, DType::U4, DType::I2, DType::U2] {
        for (src, from) in [(&t, DType::F32), (&i, DType::I32)] {
            let want = src.cast(to).unwrap();
            for cpu in ["native", "baseline"] {
                let got = run(&format!("Cast{{to={to}}}"), from, to, src, cpu);
                assert_eq!(got, want.bytes(), "{from} -> {to} ({cpu}) on {:?}", src.to_f64_vec());
                // and back: the stored byte is the sign/zero-extended value
                let back = run("Cast{to=f32}", to, DType::F32, &want, cpu);
                let back = Tensor::from_bytes(DType::F32, want.shape().to_vec(), back).unwrap();
                assert_eq!(back.to_i64_vec(), want.to_i64_vec(), "{to} -> f32 ({cpu})");
            }
        }
    }
}

#[test]
fn data_movement_moves_narrow_elements() {
    // i4 and f8 values through Transpose / Concat / Slice / Gather, then widened
    let text = "graph \"m\"\n  input %0 \"a\": i4[2,3]\n  input %1 \"b\": f8e4m3fn[2,3]\n  \
                %2 = Transpose{perm=[1,0]}(%0): i4[3,2] @\"t\"\n  \
                %3 = Concat{axis=0}(%1, %1): f8e4m3fn[4,3] @\"c\"\n  \
                %4 = Slice{starts=[1,0], ends=[4,3], steps=[2,2]}(%3): f8e4m3fn[2,2] @\"s\"\n  \
                %5 = Cast{to=f32}(%2): f32[3,2] @\"w1\"\n  %6 = Cast{to=f32}(%4): f32[2,2] @\"w2\"\n  \
                output \"x\" = %5\n  output \"y\" = %6\n";
    let g = kerf_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let a = Tensor::from_i64_values(DType::I4, vec![2, 3], &[-8, -1, 0, 1, 5, 7]).unwrap();
    let b = Tensor::from_f64_values(DType::F8E4M3FN, vec![2, 3], &[0.5, -1.0, 448.0, 3.0, -0.125, 2.0]).unwrap();
    let jm = jit_compile(&g, &CompileOptions::parse("host", "native", "t").unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let m = jm.model();
    let (sa, sb) = (a.bytes().to_vec(), b.bytes().to_vec());
    let mut x = vec![0f32; 6];
    let mut y = vec![0f32; 4];
    {
        // SAFETY: f32 has no padding and any byte pattern is a valid f32.
        let xo = unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut u8, 24) };
        // SAFETY: as above.
        let yo = unsafe { std::slice::from_raw_parts_mut(y.as_mut_ptr() as *mut u8, 16) };
        let mut arena = m.new_arena().unwrap();
        m.run(&[&sa, &sb], &mut [xo, yo], &mut arena).unwrap();
    }
    assert_eq!(x, vec![-8.0, 1.0, -1.0, 5.0, 0.0, 7.0]);
    assert_eq!(y, vec![3.0, 2.0, 3.0, 2.0]);
}

#[test]
fn f32_to_u8_vector_path_matches_the_scalar_conversion() {
    // 16 at a time, then the scalar tail: every class of input in both
    let special = [
        -1e30,
        -300.0,
        -1.0,
        -0.5,
        -0.0,
        0.0,
        0.4,
        1.0,
        127.5,
        255.0,
        255.9,
        256.0,
        300.7,
        65535.0,
        16777216.0,
        2147483520.0,
        2147483648.0,
        1e12,
        1.8446743e19,
        1.8446744e19,
        1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        3.0,
        200.0,
    ];
    let v: Vec<f32> = special.iter().chain(special.iter().rev()).copied().chain([7.0, 9.9, 250.0]).collect();
    let input = Tensor::from_f32(vec![v.len()], &v).unwrap();
    // Cranelift's fcvt_to_uint_sat to 64 bits (Rust's saturating `as`), then the low byte
    let want: Vec<u8> = v.iter().map(|&x| x as u64 as u8).collect();
    for cpu in ["native", "baseline"] {
        let got = run("Cast{to=u8}", DType::F32, DType::U8, &input, cpu);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{cpu}: element {i} ({})", v[i]);
        }
    }
}
