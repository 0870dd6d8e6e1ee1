//! `Cast` kernels: every pair of dtypes the IR has, narrow types included.
//!
//! Conversions are done in integer code wherever rounding matters, so that
//! they are bit-exact and identical on every ISA (no reliance on an f16 or
//! float8 unit, or on the host FPU's handling of subnormals):
//! - f16/bf16 ↔ f32: bit manipulation, round to nearest even;
//! - float8/float4 → f32: field extraction (exact; every narrow value is an
//!   f32), then the ordinary conversion to the target;
//! - f32/f64 → float8/float4: round to nearest even on the source's bits
//!   (one rounding, from f64 for f64 sources), then saturation or inf/NaN per
//!   the ONNX `saturate` attribute, following [`kerf_ir::narrow`], which is
//!   the reference these kernels are tested against;
//! - → E8M0: the f32 exponent with ONNX's `round_mode`;
//! - → 4/2-bit ints: truncate toward zero to i64, then wrap to the width.
//!
//! Layout of narrow types in buffers: one byte per element (see
//! [`kerf_ir::DType`]). The loop is scalar: these casts are rare and cheap
//! next to the ops around them.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use kerf_ir::narrow::{CastRound, MiniFloat, Specials};
use kerf_ir::{DType, Op};

use super::cl_type;
use super::{Kernel, LResult};

/// The Cranelift type a dtype is loaded and stored as (narrow types are one
/// byte; f16/bf16 are 16-bit patterns).
pub fn storage_type(d: DType) -> Type {
    match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::F16 | DType::BF16 | DType::I16 | DType::U16 => types::I16,
        DType::I32 | DType::U32 => types::I32,
        DType::I64 | DType::U64 => types::I64,
        _ => types::I8,
    }
}

/// Whether `d` is a 16-bit float (f16 or bf16), stored as raw `I16` bits.
pub fn is_half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

fn is_small_int(d: DType) -> bool {
    matches!(d, DType::I4 | DType::U4 | DType::I2 | DType::U2)
}

/// Lowers `Cast` / `CastF8`: one flat scalar loop over the elements.
pub fn lower(k: &mut Kernel) -> LResult {
    let (to, saturate, round) = match &k.node.op {
        Op::Cast(to) => (*to, true, CastRound::Up),
        Op::CastF8 { to, saturate, round } => (*to, *saturate, *round),
        other => return Err(format!("{} is not a cast", other.name())),
    };
    let from = k.in_dtype(0);
    check(from, to)?;
    let n: usize = k.out_shape(0).iter().product();
    let x = k.input(0);
    let y = k.output(0);
    // f32 -> u8 (the int8 kernels' input quantiser): 16 at a time, then
    // the scalar loop for the rest
    let done = if from == DType::F32 && to == DType::U8 && k.lanes() == 4 { f32_to_u8_x16(k, x, y, n) } else { 0 };
    let (ft, tt) = (storage_type(from), storage_type(to));
    let (fs, ts) = (from.size() as i64, to.size() as i64);
    let mut failed = None;
    k.for_n(done as i64, n as i64, 1, |k, i| {
        let v = k.ld_at(ft, x, i, fs, 0);
        match cast_value(k, from, to, saturate, round, v) {
            Ok(r) => {
                debug_assert_eq!(k.b.func.dfg.value_type(r), tt);
                k.st_at(r, y, i, ts, 0);
            }
            Err(e) => failed = Some(e),
        }
    });
    failed.map_or(Ok(()), Err)
}

/// The first `n / 16 · 16` elements of an f32 → u8 cast, 16 per step, with
/// the scalar conversion's results for every input (`fcvt_to_uint_sat` to
/// 64 bits, then the low byte): a 32-bit truncating conversion's low byte,
/// except 0 below zero and, from 2^31 on (multiples of 256 in f32), 0, or
/// 255 from 2^64 on; NaN gives 0 both ways. Returns the count done.
fn f32_to_u8_x16(k: &mut Kernel, x: Value, y: Value, n: usize) -> usize {
    let blocks = n / 16;
    if blocks == 0 {
        return 0;
    }
    let i32x4 = |k: &mut Kernel, v: i64| {
        let c = k.b.ins().iconst(types::I32, v);
        k.b.ins().splat(types::I32X4, c)
    };
    let (low, zero) = (i32x4(k, 0xff), i32x4(k, 0));
    let f0 = k.fsplat(types::F32X4, 0.0);
    let f31 = k.fsplat(types::F32X4, 2f32.powi(31));
    let f64_ = k.fsplat(types::F32X4, 2f32.powi(64));
    k.for_n(0, blocks as i64, 1, |k, b| {
        let src = k.addr(x, b, 64);
        let r: Vec<Value> = (0..4)
            .map(|q| {
                let v = k.ld(types::F32X4, src, 16 * q);
                let t = k.b.ins().fcvt_to_sint_sat(types::I32X4, v);
                let t = k.b.ins().band(t, low);
                let neg = k.b.ins().fcmp(FloatCC::LessThan, v, f0);
                let t = k.b.ins().bitselect(neg, zero, t);
                let huge = k.b.ins().fcmp(FloatCC::GreaterThanOrEqual, v, f64_);
                let top = k.b.ins().bitselect(huge, low, zero);
                let big = k.b.ins().fcmp(FloatCC::GreaterThanOrEqual, v, f31);
                k.b.ins().bitselect(big, top, t)
            })
            .collect();
        let a = k.b.ins().snarrow(r[0], r[1]);
        let c = k.b.ins().snarrow(r[2], r[3]);
        let u = k.b.ins().unarrow(a, c);
        let dst = k.addr(y, b, 16);
        k.st(u, dst, 0);
    });
    blocks * 16
}

/// Which casts the backend implements (checked before emitting anything).
fn check(from: DType, to: DType) -> LResult {
    // f64 -> int uses no saturating conversion here (ONNX leaves it undefined
    // out of range, and the existing kernels never needed it).
    if from == DType::F64 && to.is_int() {
        return Err(format!("Cast {from} -> {to} is not supported"));
    }
    Ok(())
}

/// Converts one value of dtype `from` (in its storage type) to `to`.
pub fn cast_value(
    k: &mut Kernel,
    from: DType,
    to: DType,
    saturate: bool,
    round: CastRound,
    x: Value,
) -> LResult<Value> {
    if from == to {
        return Ok(x);
    }
    if from.is_narrow() && from.is_float() {
        let f = decode_to_f32(k, from, x);
        return cast_value(k, DType::F32, to, saturate, round, f);
    }
    if is_small_int(from) {
        // stored sign- or zero-extended in a byte: an i8/u8 as far as values go
        let wide = if from.is_signed_int() { DType::I8 } else { DType::U8 };
        return cast_value(k, wide, to, saturate, round, x);
    }
    if is_small_int(to) {
        let v = to_i64(k, from, x)?;
        let b = k.b.ins().ireduce(types::I8, v);
        return Ok(match to {
            DType::I4 | DType::I2 => {
                let s = if to == DType::I4 { 4 } else { 6 };
                let b = k.b.ins().ishl_imm_u(b, s);
                k.b.ins().sshr_imm_u(b, s)
            }
            DType::U4 => k.b.ins().band_imm_s(b, 0xf),
            _ => k.b.ins().band_imm_s(b, 0x3),
        });
    }
    if to == DType::F8E8M0 {
        let f = match from {
            DType::F32 => x,
            DType::F64 => k.b.ins().fdemote(types::F32, x),
            _ => cast_scalar(k, from, DType::F32, x)?,
        };
        return Ok(e8m0_encode(k, f, saturate, round));
    }
    if let Some(fmt) = MiniFloat::of(to) {
        return Ok(match from {
            DType::F32 => encode_mini(k, fmt, SrcFloat::F32, x, saturate),
            DType::F64 => encode_mini(k, fmt, SrcFloat::F64, x, saturate),
            d if is_half(d) => {
                let f = cast_scalar(k, d, DType::F32, x)?;
                encode_mini(k, fmt, SrcFloat::F32, f, saturate)
            }
            // ints and bool: exactly through f64 (up to 2^53)
            d => {
                let f = cast_scalar(k, d, DType::F64, x)?;
                encode_mini(k, fmt, SrcFloat::F64, f, saturate)
            }
        });
    }
    cast_scalar(k, from, to, x)
}

/// A value of a wide dtype truncated toward zero to i64 (non-finite floats
/// give 0), for the wrapping 4/2-bit integer casts.
fn to_i64(k: &mut Kernel, from: DType, x: Value) -> LResult<Value> {
    let f = if is_half(from) { cast_scalar(k, from, DType::F32, x)? } else { x };
    let fd = if is_half(from) { DType::F32 } else { from };
    if !fd.is_float() {
        return cast_scalar(k, fd, DType::I64, f);
    }
    let ty = storage_type(fd);
    let v = k.b.ins().fcvt_to_sint_sat(types::I64, f);
    let a = k.b.ins().fabs(f);
    let inf = if ty == types::F32 { k.b.ins().f32const(f32::INFINITY) } else { k.b.ins().f64const(f64::INFINITY) };
    let is_inf = k.b.ins().fcmp(FloatCC::Equal, a, inf);
    let zero = k.b.ins().iconst(types::I64, 0);
    Ok(k.b.ins().select(is_inf, zero, v))
}

/// A float8/float4 code (byte) to its exact f32 value.
pub fn decode_to_f32(k: &mut Kernel, d: DType, x: Value) -> Value {
    let flags = MemFlagsData::new();
    let c = k.b.ins().uextend(types::I32, x);
    let Some(fmt) = MiniFloat::of(d) else {
        // E8M0: 2^(c-127); 0 is the f32 subnormal 2^-127; 0xFF is NaN
        let n = k.b.ins().ishl_imm_u(c, 23);
        let is0 = k.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
        let sub = k.b.ins().iconst(types::I32, 0x0040_0000);
        let r = k.b.ins().select(is0, sub, n);
        let is_nan = k.b.ins().icmp_imm_s(IntCC::Equal, c, 0xff);
        let nan = k.b.ins().iconst(types::I32, 0x7fc0_0000);
        let r = k.b.ins().select(is_nan, nan, r);
        return k.b.ins().bitcast(types::F32, flags, r);
    };
    let (m, ss) = (fmt.man_bits, fmt.sign_shift());
    let sign = k.b.ins().ushr_imm_u(c, i64::from(ss));
    let sign = k.b.ins().band_imm_s(sign, 1);
    let sign = k.b.ins().ishl_imm_u(sign, 31);
    let mag = k.b.ins().band_imm_s(c, (1i64 << ss) - 1);
    let e = k.b.ins().ushr_imm_u(mag, i64::from(m));
    let mn = k.b.ins().band_imm_s(mag, (1i64 << m) - 1);
    let mn_hi = k.b.ins().ishl_imm_u(mn, i64::from(23 - m));
    let en = k.b.ins().iadd_imm_s(e, i64::from(127 - fmt.bias));
    let en = k.b.ins().ishl_imm_u(en, 23);
    let normal = k.b.ins().bor(en, mn_hi);
    // subnormal: mn * 2^(1 - bias - m), exact in f32
    let mf = k.b.ins().fcvt_from_uint(types::F32, mn);
    let scale = k.b.ins().f32const(2f32.powi(1 - fmt.bias - m as i32));
    let sub = k.b.ins().fmul(mf, scale);
    let sub = k.b.ins().bitcast(types::I32, flags, sub);
    let is_sub = k.b.ins().icmp_imm_s(IntCC::Equal, e, 0);
    let mut r = k.b.ins().select(is_sub, sub, normal);
    match fmt.specials {
        Specials::Ieee => {
            let all = (1i64 << fmt.exp_bits) - 1;
            let is_sp = k.b.ins().icmp_imm_s(IntCC::Equal, e, all);
            let sp = k.b.ins().bor_imm_s(mn_hi, 0x7f80_0000);
            r = k.b.ins().select(is_sp, sp, r);
        }
        Specials::Fn => {
            let is_nan = k.b.ins().icmp_imm_s(IntCC::Equal, mag, (1i64 << ss) - 1);
            let nan = k.b.ins().iconst(types::I32, 0x7fc0_0000);
            r = k.b.ins().select(is_nan, nan, r);
        }
        Specials::Fnuz | Specials::None => {}
    }
    r = k.b.ins().bor(r, sign);
    if fmt.specials == Specials::Fnuz {
        let is_nan = k.b.ins().icmp_imm_s(IntCC::Equal, c, 1i64 << ss);
        let nan = k.b.ins().iconst(types::I32, 0x7fc0_0000);
        r = k.b.ins().select(is_nan, nan, r);
    }
    k.b.ins().bitcast(types::F32, flags, r)
}

/// The source format of a float → float8/float4 conversion.
#[derive(Clone, Copy)]
enum SrcFloat {
    F32,
    F64,
}

impl SrcFloat {
    /// (integer type, mantissa bits, exponent bias, +inf bits)
    fn params(self) -> (Type, i64, i64, i64) {
        match self {
            SrcFloat::F32 => (types::I32, 23, 127, 0x7f80_0000),
            SrcFloat::F64 => (types::I64, 52, 1023, 0x7ff0_0000_0000_0000),
        }
    }
}

/// f32/f64 → float8/float4 code (I8), round to nearest even on the bits.
fn encode_mini(k: &mut Kernel, fmt: MiniFloat, src: SrcFloat, x: Value, saturate: bool) -> Value {
    let flags = MemFlagsData::new();
    let (it, sm, sb, inf_bits) = src.params();
    let w = i64::from(it.bits());
    let (m, bias, ss) = (i64::from(fmt.man_bits), i64::from(fmt.bias), i64::from(fmt.sign_shift()));
    let bits = k.b.ins().bitcast(it, flags, x);
    let sign = k.b.ins().ushr_imm_u(bits, w - 1);
    let a = k.b.ins().band_imm_s(bits, !(1i64 << (w - 1)) & if w == 32 { 0xffff_ffff } else { -1 });
    let e = k.b.ins().ushr_imm_u(a, sm);
    // Normal results: rebias the exponent, round the low (sm - m) bits away.
    let shift = sm - m;
    let t = k.b.ins().iadd_imm_s(a, (bias - sb) << sm);
    let lsb = k.b.ins().ushr_imm_u(t, shift);
    let lsb = k.b.ins().band_imm_s(lsb, 1);
    let t = k.b.ins().iadd_imm_s(t, (1i64 << (shift - 1)) - 1);
    let t = k.b.ins().iadd(t, lsb);
    let norm = k.b.ins().ushr_imm_u(t, shift);
    // Subnormal results: the mantissa with its implicit bit, shifted right by
    // a variable amount with round to nearest even. Shifts past sm + 2 give 0
    // either way, so the amount is clamped there (also for source subnormals).
    let mm = k.b.ins().band_imm_s(a, (1i64 << sm) - 1);
    let mant = k.b.ins().bor_imm_s(mm, 1i64 << sm);
    let c0 = shift + 1 - bias + sb;
    let c0v = k.b.ins().iconst(it, c0);
    let sh = k.b.ins().isub(c0v, e);
    let cap = k.b.ins().iconst(it, sm + 2);
    let sh = k.b.ins().umin(sh, cap);
    let q = k.b.ins().ushr(mant, sh);
    let back = k.b.ins().ishl(q, sh);
    let rem = k.b.ins().isub(mant, back);
    let one = k.b.ins().iconst(it, 1);
    let sh1 = k.b.ins().iadd_imm_s(sh, -1);
    let half = k.b.ins().ishl(one, sh1);
    let gt = k.b.ins().icmp(IntCC::UnsignedGreaterThan, rem, half);
    let eq = k.b.ins().icmp(IntCC::Equal, rem, half);
    let qodd = k.b.ins().band_imm_s(q, 1);
    let qodd = k.b.ins().icmp_imm_s(IntCC::NotEqual, qodd, 0);
    let tie_up = k.b.ins().band(eq, qodd);
    let up = k.b.ins().bor(gt, tie_up);
    let up = k.b.ins().uextend(it, up);
    let sub = k.b.ins().iadd(q, up);
    let is_sub = k.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, a, (1 - bias + sb) << sm);
    let code = k.b.ins().select(is_sub, sub, norm);
    // Overflow (values past the largest finite, and infinities).
    let max = i64::from(fmt.max_code);
    let ovf = k.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, code, max);
    let ovf_mag = if saturate || fmt.specials == Specials::None {
        max
    } else {
        match fmt.specials {
            Specials::Ieee => i64::from(fmt.inf_code().unwrap_or(fmt.max_code)),
            Specials::Fn => (1i64 << ss) - 1,
            _ => 1i64 << ss, // FNUZ: NaN 0x80
        }
    };
    let ovf_v = k.b.ins().iconst(it, ovf_mag);
    let code = k.b.ins().select(ovf, ovf_v, code);
    let sbit = k.b.ins().ishl_imm_u(sign, ss);
    let mut r = k.b.ins().bor(code, sbit);
    if fmt.specials == Specials::Fnuz {
        // no negative zero
        let z = k.b.ins().icmp_imm_s(IntCC::Equal, code, 0);
        let zero = k.b.ins().iconst(it, 0);
        r = k.b.ins().select(z, zero, r);
    }
    // NaN inputs.
    let is_nan = k.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, a, inf_bits);
    let nan = match fmt.specials {
        Specials::Fnuz => k.b.ins().iconst(it, 1i64 << ss),
        Specials::Fn => k.b.ins().bor_imm_s(sbit, (1i64 << ss) - 1),
        Specials::Ieee => k.b.ins().bor_imm_s(sbit, i64::from(fmt.nan_code(false))),
        // ml_dtypes: float4 has no NaN; a NaN becomes the zero of the opposite sign
        Specials::None => k.b.ins().bxor_imm_s(sbit, 1i64 << ss),
    };
    let r = k.b.ins().select(is_nan, nan, r);
    k.b.ins().ireduce(types::I8, r)
}

/// f32 → E8M0 code (I8), like `onnx.numpy_helper.to_float8e8m0`.
fn e8m0_encode(k: &mut Kernel, f: Value, saturate: bool, round: CastRound) -> Value {
    let flags = MemFlagsData::new();
    let bits = k.b.ins().bitcast(types::I32, flags, f);
    let exp = k.b.ins().ushr_imm_u(bits, 23);
    let exp = k.b.ins().band_imm_s(exp, 0xff);
    let frac = k.b.ins().band_imm_s(bits, 0x7f_ffff);
    let up = match round {
        CastRound::Down => k.b.ins().iconst(types::I8, 0),
        CastRound::Up => k.b.ins().icmp_imm_s(IntCC::NotEqual, frac, 0),
        CastRound::Nearest => {
            let g = k.b.ins().band_imm_s(bits, 0x40_0000);
            let g = k.b.ins().icmp_imm_s(IntCC::NotEqual, g, 0);
            let rs = k.b.ins().band_imm_s(bits, 0x3f_ffff);
            let rs = k.b.ins().icmp_imm_s(IntCC::NotEqual, rs, 0);
            let lsb = k.b.ins().icmp_imm_s(IntCC::NotEqual, exp, 0);
            let any = k.b.ins().bor(rs, lsb);
            k.b.ins().band(g, any)
        }
    };
    let up = if saturate {
        let top = k.b.ins().icmp_imm_s(IntCC::NotEqual, exp, 0xfe);
        k.b.ins().band(up, top)
    } else {
        up
    };
    let up = k.b.ins().uextend(types::I32, up);
    let r = k.b.ins().iadd(exp, up);
    let special = k.b.ins().icmp_imm_s(IntCC::Equal, exp, 0xff);
    let ff = k.b.ins().iconst(types::I32, 0xff);
    let r = k.b.ins().select(special, ff, r);
    k.b.ins().ireduce(types::I8, r)
}

/// An f16 or bf16 bit pattern (`I16`) to f32, in integer code (no `f16`
/// type, which Cranelift does not convert on every ISA): exact.
pub fn half_to_f32(k: &mut Kernel, d: DType, h: Value) -> Value {
    let flags = MemFlagsData::new();
    let w = k.b.ins().uextend(types::I32, h);
    if d == DType::BF16 {
        let b = k.b.ins().ishl_imm_u(w, 16);
        return k.b.ins().bitcast(types::F32, flags, b);
    }
    let ins = k.b.ins();
    let sign = ins.band_imm_s(w, 0x8000);
    let sign = k.b.ins().ishl_imm_u(sign, 16);
    let e = k.b.ins().ushr_imm_u(w, 10);
    let e = k.b.ins().band_imm_s(e, 0x1f);
    let m = k.b.ins().band_imm_s(w, 0x3ff);
    let m13 = k.b.ins().ishl_imm_u(m, 13);
    // normal: exponent rebiased by 127 - 15
    let en = k.b.ins().iadd_imm_s(e, 112);
    let en = k.b.ins().ishl_imm_u(en, 23);
    let normal = k.b.ins().bor(en, m13);
    // inf / NaN
    let special = k.b.ins().bor_imm_s(m13, 0x7f80_0000);
    // zero / subnormal: m * 2^-24 exactly
    let mf = k.b.ins().fcvt_from_uint(types::F32, m);
    let scale = k.b.ins().f32const(5.960_464_5e-8);
    let sub = k.b.ins().fmul(mf, scale);
    let sub = k.b.ins().bitcast(types::I32, flags, sub);
    let is_max = k.b.ins().icmp_imm_s(IntCC::Equal, e, 0x1f);
    let is_zero = k.b.ins().icmp_imm_s(IntCC::Equal, e, 0);
    let r = k.b.ins().select(is_max, special, normal);
    let r = k.b.ins().select(is_zero, sub, r);
    let r = k.b.ins().bor(r, sign);
    k.b.ins().bitcast(types::F32, flags, r)
}

/// f32 to an f16 or bf16 bit pattern (`I16`), rounding to nearest even, in
/// integer code; overflow gives inf, NaN stays NaN (quiet).
pub fn f32_to_half(k: &mut Kernel, d: DType, x: Value) -> Value {
    let flags = MemFlagsData::new();
    let b = k.b.ins().bitcast(types::I32, flags, x);
    let a = k.b.ins().band_imm_s(b, 0x7fff_ffff);
    let is_nan = k.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, a, 0x7f80_0000);
    let sign = k.b.ins().ushr_imm_u(b, 16);
    let sign = k.b.ins().band_imm_s(sign, 0x8000);
    let r = if d == DType::BF16 {
        // round the low 16 bits away, ties to even
        let lsb = k.b.ins().ushr_imm_u(b, 16);
        let lsb = k.b.ins().band_imm_s(lsb, 1);
        let t = k.b.ins().iadd_imm_s(b, 0x7fff);
        let t = k.b.ins().iadd(t, lsb);
        let t = k.b.ins().ushr_imm_u(t, 16);
        let q = k.b.ins().bor_imm_s(sign, 0x7fc0);
        k.b.ins().select(is_nan, q, t)
    } else {
        // Giesen's float_to_half_fast3_rtne
        let ovf = k.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, a, 0x477f_f000);
        let small = k.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, a, 0x3880_0000);
        // subnormal results: adding 0.5 puts the f16 lsb at the f32 lsb, the FPU rounds
        let af = k.b.ins().bitcast(types::F32, flags, a);
        let half = k.b.ins().f32const(0.5);
        let sf = k.b.ins().fadd(af, half);
        let si = k.b.ins().bitcast(types::I32, flags, sf);
        let sub = k.b.ins().iadd_imm_s(si, -0x3f00_0000);
        // normal results
        let odd = k.b.ins().ushr_imm_u(a, 13);
        let odd = k.b.ins().band_imm_s(odd, 1);
        let n = k.b.ins().iadd_imm_s(a, ((15 - 127) << 23) + 0xfff);
        let n = k.b.ins().iadd(n, odd);
        let n = k.b.ins().ushr_imm_u(n, 13);
        let inf = k.b.ins().iconst(types::I32, 0x7c00);
        let qnan = k.b.ins().iconst(types::I32, 0x7e00);
        let r = k.b.ins().select(small, sub, n);
        let r = k.b.ins().select(ovf, inf, r);
        let r = k.b.ins().select(is_nan, qnan, r);
        k.b.ins().bor(r, sign)
    };
    k.b.ins().ireduce(types::I16, r)
}

/// Converts a scalar between the wide dtypes (ONNX Cast; floats → ints
/// truncate and saturate, ints → bool compare with zero).
pub fn cast_scalar(k: &mut Kernel, from: DType, to: DType, x: Value) -> LResult<Value> {
    if from == to {
        return Ok(x);
    }
    if is_half(from) {
        let f = half_to_f32(k, from, x);
        return if is_half(to) { Ok(f32_to_half(k, to, f)) } else { cast_scalar(k, DType::F32, to, f) };
    }
    if is_half(to) {
        let f = cast_scalar(k, from, DType::F32, x)?;
        return Ok(f32_to_half(k, to, f));
    }
    let (Some(ft), Some(tt)) = (cl_type(from), cl_type(to)) else {
        return Err(format!("Cast {from} -> {to} is not supported"));
    };
    if from == to || (ft == tt && from != DType::Bool && to != DType::Bool) {
        return Ok(x);
    }
    let ins = k.b.ins();
    Ok(match (from.is_float(), to.is_float()) {
        (true, true) => {
            if ft.bits() < tt.bits() {
                ins.fpromote(tt, x)
            } else {
                ins.fdemote(tt, x)
            }
        }
        (true, false) => {
            if to == DType::Bool {
                let z = if ft == types::F32 { k.b.ins().f32const(0.0) } else { k.b.ins().f64const(0.0) };
                k.b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else if to.is_signed_int() {
                let w = k.b.ins().fcvt_to_sint_sat(types::I64, x);
                if tt == types::I64 {
                    w
                } else {
                    k.b.ins().ireduce(tt, w)
                }
            } else {
                let w = k.b.ins().fcvt_to_uint_sat(types::I64, x);
                if tt == types::I64 {
                    w
                } else {
                    k.b.ins().ireduce(tt, w)
                }
            }
        }
        (false, true) => {
            let w = if ft == types::I64 {
                x
            } else if from.is_signed_int() {
                ins.sextend(types::I64, x)
            } else {
                ins.uextend(types::I64, x)
            };
            if from.is_signed_int() {
                k.b.ins().fcvt_from_sint(tt, w)
            } else {
                k.b.ins().fcvt_from_uint(tt, w)
            }
        }
        (false, false) => {
            if to == DType::Bool {
                k.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
            } else if ft.bits() > tt.bits() {
                ins.ireduce(tt, x)
            } else if ft.bits() == tt.bits() {
                x
            } else if from.is_signed_int() {
                ins.sextend(tt, x)
            } else {
                ins.uextend(tt, x)
            }
        }
    })
}
