//! Element types.

use std::fmt;

/// The element type of a tensor.
///
/// Narrow types — the float8 family, `f4e2m1`, and the 4- and 2-bit integers
/// — are storage types: only casts, the quantisation ops and pure data
/// movement take them (see [`DType::is_narrow`]); arithmetic happens after a
/// cast to a wider type.
///
/// **Layout contract:** every narrow type occupies one byte per element in a
/// kerf buffer (constants, arena, the generated code's inputs and outputs),
/// never packed:
/// - float8 types: the 8-bit code;
/// - `f4e2m1`: the 4-bit code in the low nibble, high nibble zero;
/// - `i4`/`i2`: the value as a sign-extended `i8` (-8..=7, -2..=1);
/// - `u4`/`u2`: the value as a `u8` (0..=15, 0..=3).
///
/// ONNX files pack 4- and 2-bit types (two or four per byte); the frontend
/// unpacks them on read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16: f32's exponent range with a 7-bit mantissa.
    BF16,
    /// IEEE 754 binary64.
    F64,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// Boolean, one byte holding 0 or 1.
    Bool,
    /// float8 E4M3, finite-only: no infinities, NaN is `S.1111.111`, max 448.
    F8E4M3FN,
    /// float8 E4M3, finite-only, no negative zero: NaN is `0x80`, max 240.
    F8E4M3FNUZ,
    /// float8 E5M2 (IEEE-like: infinities and NaNs), max 57344.
    F8E5M2,
    /// float8 E5M2, finite-only, no negative zero: NaN is `0x80`, max 57344.
    F8E5M2FNUZ,
    /// float8 E8M0: an unsigned power of two `2^(code-127)`; `0xFF` is NaN.
    F8E8M0,
    /// float4 E2M1: finite-only, no NaN, max 6.
    F4E2M1,
    /// Signed 4-bit integer (-8..=7).
    I4,
    /// Unsigned 4-bit integer (0..=15).
    U4,
    /// Signed 2-bit integer (-2..=1).
    I2,
    /// Unsigned 2-bit integer (0..=3).
    U2,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 23] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
        DType::F8E4M3FN,
        DType::F8E4M3FNUZ,
        DType::F8E5M2,
        DType::F8E5M2FNUZ,
        DType::F8E8M0,
        DType::F4E2M1,
        DType::I4,
        DType::U4,
        DType::I2,
        DType::U2,
    ];

    /// Size of one element in bytes (narrow types: one byte, see the layout
    /// contract on [`DType`]).
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F8E8M0
            | DType::F4E2M1
            | DType::I4
            | DType::U4
            | DType::I2
            | DType::U2 => 1,
        }
    }

    /// The float8 types, `f4e2m1` and the 4- and 2-bit integers: storage
    /// types that only casts, quantisation and data movement take.
    pub fn is_narrow(self) -> bool {
        matches!(
            self,
            DType::F8E4M3FN
                | DType::F8E4M3FNUZ
                | DType::F8E5M2
                | DType::F8E5M2FNUZ
                | DType::F8E8M0
                | DType::F4E2M1
                | DType::I4
                | DType::U4
                | DType::I2
                | DType::U2
        )
    }

    /// Floating-point types, narrow ones included.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F32
                | DType::F16
                | DType::BF16
                | DType::F64
                | DType::F8E4M3FN
                | DType::F8E4M3FNUZ
                | DType::F8E5M2
                | DType::F8E5M2FNUZ
                | DType::F8E8M0
                | DType::F4E2M1
        )
    }

    /// Integer types of any width and signedness (not bool).
    pub fn is_int(self) -> bool {
        !self.is_float() && self != DType::Bool
    }

    /// Signed integer types, `i4` and `i2` included.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::I4 | DType::I2)
    }

    /// The value range of an integer dtype (`None` for floats and bool).
    pub fn int_range(self) -> Option<(i64, i64)> {
        Some(match self {
            DType::I8 => (i8::MIN.into(), i8::MAX.into()),
            DType::U8 => (0, u8::MAX.into()),
            DType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DType::U16 => (0, u16::MAX.into()),
            DType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DType::U32 => (0, u32::MAX.into()),
            DType::I64 => (i64::MIN, i64::MAX),
            DType::U64 => (0, i64::MAX),
            DType::I4 => (-8, 7),
            DType::U4 => (0, 15),
            DType::I2 => (-2, 1),
            DType::U2 => (0, 3),
            _ => return None,
        })
    }

    /// The short name used by the text format (`f32`, `i64`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::F8E4M3FN => "f8e4m3fn",
            DType::F8E4M3FNUZ => "f8e4m3fnuz",
            DType::F8E5M2 => "f8e5m2",
            DType::F8E5M2FNUZ => "f8e5m2fnuz",
            DType::F8E8M0 => "f8e8m0",
            DType::F4E2M1 => "f4e2m1",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::I2 => "i2",
            DType::U2 => "u2",
        }
    }

    /// The dtype whose [`DType::name`] is `s`.
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The ONNX `TensorProto.DataType` code (also the dtype code of the
    /// generated code's descriptor and header).
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::F64 => 11,
            DType::U32 => 12,
            DType::U64 => 13,
            DType::BF16 => 16,
            DType::F8E4M3FN => 17,
            DType::F8E4M3FNUZ => 18,
            DType::F8E5M2 => 19,
            DType::F8E5M2FNUZ => 20,
            DType::U4 => 21,
            DType::I4 => 22,
            DType::F4E2M1 => 23,
            DType::F8E8M0 => 24,
            DType::U2 => 25,
            DType::I2 => 26,
        }
    }

    /// The dtype with ONNX `TensorProto.DataType` code `code`; `None` for types kerf does not support
    /// (string, complex, ...).
    pub fn from_onnx_code(code: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.onnx_code() == code)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_onnx_code(d.onnx_code()), Some(d));
        }
        assert_eq!(DType::from_onnx_code(8), None, "string is not a tensor dtype");
        assert_eq!(DType::from_onnx_code(14), None, "complex is not supported");
        assert_eq!(DType::from_onnx_code(17), Some(DType::F8E4M3FN));
    }

    #[test]
    fn narrow_types_are_one_byte() {
        for d in DType::ALL.into_iter().filter(|d| d.is_narrow()) {
            assert_eq!(d.size(), 1, "{d}");
        }
        assert!(DType::I4.is_signed_int() && DType::U2.is_int() && DType::F4E2M1.is_float());
    }
}
