//! Scalar codecs for the narrow element types (float8, float4, 4- and 2-bit
//! integers), with ONNX `Cast` semantics.
//!
//! These are the reference: the evaluator folds with them, and the code
//! generator's integer-only conversions are tested against them bit for bit.
//! They follow the ONNX reference implementation (`onnx.reference`, which
//! uses `ml_dtypes`):
//! - float → float8/float4 rounds to nearest, ties to even, once (from the
//!   exact f64 value);
//! - `saturate = true` maps values (and infinities) beyond the largest
//!   finite value to ±max; `saturate = false` gives ±inf where the format has
//!   infinities (E5M2) and NaN otherwise. float4 has no NaN or infinity and
//!   always saturates; a NaN becomes a zero whose sign is the NaN's flipped
//!   (what `ml_dtypes` does);
//! - FNUZ formats have no negative zero: a negative value rounding to zero
//!   gives +0, and their single NaN is `0x80`;
//! - E8M0 follows `onnx.numpy_helper.to_float8e8m0`: the value is first
//!   rounded to f32, its exponent is kept and rounded per [`CastRound`], the
//!   sign is ignored; `saturate` keeps a round-up at the top exponent from
//!   producing the NaN code `0xFF`;
//! - float → 4/2-bit integers truncate toward zero and then **wrap** to the
//!   type's width (non-finite values give 0), integer → 4/2-bit integers wrap
//!   (this is what `ml_dtypes` and the ONNX backend test data do; the
//!   quantisation ops saturate instead, explicitly).

use crate::DType;

/// ONNX Cast `round_mode` (only used for float8 E8M0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum CastRound {
    /// Round the exponent up unless the mantissa is zero (ONNX `up`, the default).
    #[default]
    Up,
    /// Truncate the mantissa, keeping the exponent (ONNX `down`).
    Down,
    /// Round to the nearer exponent by the mantissa's leading bits (ONNX `nearest`).
    Nearest,
}

impl CastRound {
    /// The ONNX attribute spelling (`up`, `down`, `nearest`), also used by the text format.
    pub fn name(self) -> &'static str {
        match self {
            CastRound::Up => "up",
            CastRound::Down => "down",
            CastRound::Nearest => "nearest",
        }
    }

    /// The mode spelled `s` (see [`CastRound::name`]).
    pub fn from_name(s: &str) -> Option<CastRound> {
        [CastRound::Up, CastRound::Down, CastRound::Nearest].into_iter().find(|r| r.name() == s)
    }
}

/// How a small float format encodes its special values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE-like: all-ones exponent is inf (mantissa 0) or NaN.
    Ieee,
    /// Finite-only; `S.1111.111` is NaN (E4M3FN).
    Fn,
    /// Finite-only, no negative zero; `0x80` is the only NaN.
    Fnuz,
    /// Finite-only, no NaN at all (E2M1).
    None,
}

/// A small sign/exponent/mantissa float format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiniFloat {
    /// Exponent field width in bits.
    pub exp_bits: u32,
    /// Mantissa field width in bits.
    pub man_bits: u32,
    /// Exponent bias.
    pub bias: i32,
    /// How infinities and NaNs are encoded.
    pub specials: Specials,
    /// Code of the largest finite magnitude (sign bit clear).
    pub max_code: u32,
}

impl MiniFloat {
    /// The format of a float8 (not E8M0) or float4 dtype.
    pub fn of(d: DType) -> Option<MiniFloat> {
        let (exp_bits, man_bits, bias, specials, max_code) = match d {
            DType::F8E4M3FN => (4, 3, 7, Specials::Fn, 0x7e),
            DType::F8E4M3FNUZ => (4, 3, 8, Specials::Fnuz, 0x7f),
            DType::F8E5M2 => (5, 2, 15, Specials::Ieee, 0x7b),
            DType::F8E5M2FNUZ => (5, 2, 16, Specials::Fnuz, 0x7f),
            DType::F4E2M1 => (2, 1, 1, Specials::None, 0x7),
            _ => return None,
        };
        Some(MiniFloat { exp_bits, man_bits, bias, specials, max_code })
    }

    /// Position of the sign bit.
    pub fn sign_shift(self) -> u32 {
        self.exp_bits + self.man_bits
    }

    /// The code of +inf, if the format has one.
    pub fn inf_code(self) -> Option<u32> {
        (self.specials == Specials::Ieee).then(|| ((1 << self.exp_bits) - 1) << self.man_bits)
    }

    /// The NaN code produced for a NaN of sign `neg`.
    pub fn nan_code(self, neg: bool) -> u32 {
        let s = u32::from(neg) << self.sign_shift();
        match self.specials {
            // ml_dtypes: E5M2 quiet NaN is 0x7e, E4M3FN's is 0x7f.
            Specials::Ieee => s | (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1)),
            Specials::Fn => s | ((1 << self.sign_shift()) - 1),
            Specials::Fnuz => 1 << self.sign_shift(),
            Specials::None => u32::from(!neg) << self.sign_shift(),
        }
    }

    /// Decodes a code to its exact value.
    pub fn decode(self, code: u8) -> f64 {
        let c = u32::from(code) & ((1 << (self.sign_shift() + 1)) - 1);
        let neg = c >> self.sign_shift() != 0;
        let mag = c & ((1 << self.sign_shift()) - 1);
        match self.specials {
            Specials::Fnuz if c == 1 << self.sign_shift() => return f64::NAN,
            Specials::Fn if mag == (1 << self.sign_shift()) - 1 => return f64::NAN,
            Specials::Ieee if mag >= self.inf_code().unwrap_or(u32::MAX) => {
                return if mag == self.inf_code().unwrap_or(0) {
                    if neg {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    }
                } else {
                    f64::NAN
                };
            }
            _ => {}
        }
        let e = (mag >> self.man_bits) as i32;
        let m = f64::from(mag & ((1 << self.man_bits) - 1));
        let scale = 2f64.powi(1 - self.bias - self.man_bits as i32);
        let v = if e == 0 {
            m * scale
        } else {
            (m + f64::from(1u32 << self.man_bits)) * 2f64.powi(e - self.bias - self.man_bits as i32)
        };
        if neg {
            -v
        } else {
            v
        }
    }

    /// Encodes `x` rounding to nearest even (see the module docs).
    pub fn encode(self, x: f64, saturate: bool) -> u8 {
        let neg = x.is_sign_negative();
        let sign = u32::from(neg) << self.sign_shift();
        if x.is_nan() {
            return self.nan_code(neg) as u8;
        }
        let saturate = saturate || self.specials == Specials::None;
        let overflow = || -> u8 {
            if saturate {
                (sign | self.max_code) as u8
            } else if let Some(inf) = self.inf_code() {
                (sign | inf) as u8
            } else {
                self.nan_code(neg) as u8
            }
        };
        let a = x.abs();
        if a.is_infinite() {
            return overflow();
        }
        // a = n * 2^(e - man_bits) with n rounded to an integer, ties to even;
        // e is clamped at the smallest normal exponent (subnormals).
        let emin = 1 - self.bias;
        let e = if a == 0.0 { emin } else { (exponent_of(a)).max(emin) };
        let q = 2f64.powi(e - self.man_bits as i32);
        let n = (a / q).round_ties_even();
        // n <= 2^(man_bits+1); the carry case lands exactly on the next binade.
        let n = n as u64;
        let (e, n) = if n >= 1 << (self.man_bits + 1) { (e + 1, n >> 1) } else { (e, n) };
        let code = if n < 1 << self.man_bits {
            n as u32 // subnormal or zero
        } else {
            let be = e + self.bias;
            if be >= (1 << self.exp_bits) {
                return overflow();
            }
            ((be as u32) << self.man_bits) | (n as u32 & ((1 << self.man_bits) - 1))
        };
        if code > self.max_code {
            return overflow();
        }
        if code == 0 && self.specials == Specials::Fnuz {
            return 0;
        }
        (sign | code) as u8
    }
}

/// floor(log2(a)) for a finite positive f64.
fn exponent_of(a: f64) -> i32 {
    let bits = a.to_bits();
    let be = ((bits >> 52) & 0x7ff) as i32;
    if be == 0 {
        // subnormal f64: far below every narrow format's range
        -1075
    } else {
        be - 1023
    }
}

/// Decodes an E8M0 code: `2^(code-127)`, `0xFF` is NaN.
pub fn e8m0_decode(code: u8) -> f64 {
    if code == 0xff {
        f64::NAN
    } else {
        2f64.powi(i32::from(code) - 127)
    }
}

/// Encodes to E8M0 like `onnx.numpy_helper.to_float8e8m0` (from the f32 value).
pub fn e8m0_encode(x: f32, saturate: bool, round: CastRound) -> u8 {
    let bits = x.to_bits();
    let exp = (bits >> 23) & 0xff;
    if exp == 0xff {
        return 0xff;
    }
    let up = match round {
        CastRound::Down => false,
        CastRound::Up => bits & 0x7f_ffff != 0,
        CastRound::Nearest => {
            let g = bits & 0x40_0000 != 0;
            let r = bits & 0x20_0000 != 0;
            let s = bits & 0x1f_ffff != 0;
            g && (r || s || exp > 0)
        }
    };
    let up = up && !(saturate && exp == 0xfe);
    (exp + u32::from(up)) as u8
}

/// Decodes one stored element of a narrow dtype to its value.
pub fn decode(d: DType, byte: u8) -> f64 {
    match d {
        DType::F8E8M0 => e8m0_decode(byte),
        DType::I4 | DType::I2 => f64::from(byte as i8),
        DType::U4 | DType::U2 => f64::from(byte),
        _ => MiniFloat::of(d).map_or(0.0, |f| f.decode(byte)),
    }
}

/// Wraps an integer to a 4/2-bit integer type's stored byte.
pub fn wrap_int(d: DType, v: i64) -> u8 {
    match d {
        DType::I4 => (((v as u8) << 4) as i8 >> 4) as u8,
        DType::U4 => (v as u8) & 0xf,
        DType::I2 => (((v as u8) << 6) as i8 >> 6) as u8,
        DType::U2 => (v as u8) & 0x3,
        _ => v as u8,
    }
}

/// Encodes a value to a narrow dtype's stored byte with Cast semantics.
pub fn encode(d: DType, x: f64, saturate: bool, round: CastRound) -> u8 {
    match d {
        DType::F8E8M0 => e8m0_encode(x as f32, saturate, round),
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
            let t = if x.is_finite() { x.trunc() as i64 } else { 0 };
            wrap_int(d, t)
        }
        _ => MiniFloat::of(d).map_or(0, |f| f.encode(x, saturate)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e4m3() -> MiniFloat {
        MiniFloat::of(DType::F8E4M3FN).unwrap()
    }

    #[test]
    fn every_code_round_trips() {
        for d in [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F4E2M1] {
            let f = MiniFloat::of(d).unwrap();
            let n = 1u32 << (f.sign_shift() + 1);
            for c in 0..n {
                let v = f.decode(c as u8);
                if v.is_nan() {
                    continue;
                }
                if f.specials == Specials::Ieee && v.is_infinite() {
                    assert_eq!(u32::from(f.encode(v, false)), c, "{d} code {c:#x}");
                    continue;
                }
                // -0 in FNUZ does not exist (0x80 is NaN), so every non-NaN code is canonical.
                assert_eq!(u32::from(f.encode(v, true)), c, "{d} code {c:#x} = {v}");
            }
        }
    }

    #[test]
    fn known_values() {
        let f = e4m3();
        assert_eq!(f.decode(0x7e), 448.0);
        assert_eq!(f.decode(0x01), 2f64.powi(-9));
        assert_eq!(f.encode(464.0, true), 0x7e, "tie between 448 and 480 goes to even (448)");
        assert_eq!(f.encode(465.0, false), 0x7f, "rounds past max: NaN without saturation");
        assert_eq!(f.encode(465.0, true), 0x7e);
        assert_eq!(f.encode(f64::INFINITY, true), 0x7e);
        assert_eq!(f.encode(-1e-7, true), 0x80, "negative zero kept in FN");
        let uz = MiniFloat::of(DType::F8E5M2FNUZ).unwrap();
        assert_eq!(uz.encode(-1e-7, true), 0x00, "no negative zero in FNUZ");
        assert_eq!(uz.encode(1e6, true), 0x7f);
        assert_eq!(uz.decode(0x7f), 57344.0);
        let e5 = MiniFloat::of(DType::F8E5M2).unwrap();
        assert_eq!(e5.encode(1e6, false), 0x7c);
        assert_eq!(e5.encode(-1e6, false), 0xfc);
        assert_eq!(e5.encode(f64::NAN, false), 0x7e);
        let f4 = MiniFloat::of(DType::F4E2M1).unwrap();
        assert_eq!(f4.decode(0x7), 6.0);
        assert_eq!(f4.encode(0.25, false), 0x0, "tie between 0 and 0.5 goes to even (0)");
        assert_eq!(f4.encode(0.75, false), 0x2, "tie between 0.5 and 1 goes to even (1)");
        assert_eq!(f4.encode(f64::INFINITY, false), 0x7, "float4 always saturates");
        assert_eq!(f4.encode(f64::NAN, false), 0x8);
    }

    #[test]
    fn e8m0_matches_numpy_helper() {
        assert_eq!(e8m0_encode(0.0, true, CastRound::Up), 0);
        assert_eq!(e8m0_encode(1.1, true, CastRound::Up), 128);
        assert_eq!(e8m0_encode(1.1, true, CastRound::Down), 127);
        assert_eq!(e8m0_encode(1.5, true, CastRound::Nearest), 128);
        assert_eq!(e8m0_encode(f32::MAX, true, CastRound::Up), 254);
        assert_eq!(e8m0_encode(f32::MAX, false, CastRound::Up), 255);
        assert_eq!(e8m0_decode(0), 2f64.powi(-127));
        assert!(e8m0_decode(255).is_nan());
    }

    #[test]
    fn cast_ops_print_and_parse() {
        let text = "graph \"c\"\n  input %0 \"x\": f32[3]\n  \
                    %1 = CastF8{to=f8e4m3fn, saturate=false, round=up}(%0): f8e4m3fn[3] @\"a\"\n  \
                    %2 = Cast{to=f32}(%1): f32[3] @\"b\"\n  \
                    %3 = CastF8{to=f8e8m0, saturate=true, round=nearest}(%2): f8e8m0[3] @\"c\"\n  \
                    %4 = Cast{to=i4}(%2): i4[3] @\"d\"\n  output \"y\" = %3\n  output \"z\" = %4\n";
        let g = crate::text::parse(text).unwrap();
        assert_eq!(crate::text::print(&g), text);
        // narrow types only go through casts and data movement
        let e = crate::text::parse(
            "graph \"c\"\n  input %0 \"x\": i4[3]\n  %1 = Add(%0, %0): i4[3] @\"a\"\n  output \"y\" = %1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not take i4"), "{e}");
    }

    #[test]
    fn small_ints_wrap() {
        assert_eq!(encode(DType::I4, -9.0, true, CastRound::Up) as i8, 7);
        assert_eq!(encode(DType::I4, 8.5, true, CastRound::Up) as i8, -8);
        assert_eq!(encode(DType::U4, -2.7, true, CastRound::Up), 14);
        assert_eq!(encode(DType::U2, -3.0, true, CastRound::Up), 1);
        assert_eq!(encode(DType::I2, 2.7, true, CastRound::Up) as i8, -2);
        assert_eq!(encode(DType::I4, f64::NAN, true, CastRound::Up), 0);
        assert_eq!(wrap_int(DType::I4, 300), (-4i8) as u8);
    }
}
