//! Constant tensors: dtype, static shape and little-endian bytes.

use std::fmt;
use std::sync::Arc;

use half::{bf16, f16};
use sha2::{Digest, Sha256};

use crate::narrow::{self, CastRound};
use crate::{DType, IrError};

/// Largest constant the compiler will materialise (elements). Larger requests
/// are refused before any allocation happens.
pub const MAX_CONST_ELEMENTS: usize = 1 << 31;

/// Number of elements of a shape, or `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A dense constant tensor. Bytes are little-endian in row-major order and
/// shared, so cloning a tensor never copies its data.
#[derive(Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Arc<[u8]>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}{:?} #{})", self.dtype, self.shape, self.content_hash())
    }
}

impl Tensor {
    /// Builds a tensor from raw little-endian bytes; the length must match.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, data: Vec<u8>) -> Result<Tensor, IrError> {
        let n = numel(&shape).ok_or_else(|| IrError::ShapeOverflow(shape.clone()))?;
        let expected = n.checked_mul(dtype.size()).ok_or_else(|| IrError::ShapeOverflow(shape.clone()))?;
        if data.len() != expected {
            return Err(IrError::DataLength { dtype, shape, expected, actual: data.len() });
        }
        Ok(Tensor { dtype, shape, data: data.into() })
    }

    /// An f32 tensor of `shape` holding `values` (their count must match).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Tensor, IrError> {
        Tensor::from_bytes(DType::F32, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An i64 tensor of `shape` holding `values` (their count must match).
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Result<Tensor, IrError> {
        Tensor::from_bytes(DType::I64, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// Builds a tensor of `dtype` from f64 values, rounding/truncating as a
    /// cast would (floats round to nearest, ints saturate, bool is `!= 0`).
    pub fn from_f64_values(dtype: DType, shape: Vec<usize>, values: &[f64]) -> Result<Tensor, IrError> {
        let mut out = Vec::with_capacity(values.len() * dtype.size());
        for &v in values {
            push_f64(&mut out, dtype, v);
        }
        Tensor::from_bytes(dtype, shape, out)
    }

    /// Builds a tensor of `dtype` from i64 values (exact for every integer dtype
    /// that fits; floats round to nearest).
    pub fn from_i64_values(dtype: DType, shape: Vec<usize>, values: &[i64]) -> Result<Tensor, IrError> {
        let mut out = Vec::with_capacity(values.len() * dtype.size());
        for &v in values {
            match dtype {
                DType::I8 | DType::U8 => out.push(v as u8),
                DType::I16 | DType::U16 => out.extend_from_slice(&(v as u16).to_le_bytes()),
                DType::I32 | DType::U32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
                DType::I64 | DType::U64 => out.extend_from_slice(&v.to_le_bytes()),
                DType::Bool => out.push(u8::from(v != 0)),
                DType::I4 | DType::U4 | DType::I2 | DType::U2 => out.push(narrow::wrap_int(dtype, v)),
                _ => push_f64(&mut out, dtype, v as f64),
            }
        }
        Tensor::from_bytes(dtype, shape, out)
    }

    /// A tensor with every element equal to `value`.
    pub fn splat(dtype: DType, shape: Vec<usize>, value: f64) -> Result<Tensor, IrError> {
        let n = numel(&shape).ok_or_else(|| IrError::ShapeOverflow(shape.clone()))?;
        if n > MAX_CONST_ELEMENTS {
            return Err(IrError::TooLarge { shape, limit: MAX_CONST_ELEMENTS });
        }
        let mut one = Vec::new();
        push_f64(&mut one, dtype, value);
        Tensor::from_bytes(dtype, shape, one.repeat(n))
    }

    /// A rank-0 f32 tensor holding `v`.
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor { dtype: DType::F32, shape: vec![], data: v.to_le_bytes().to_vec().into() }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// The raw data: little-endian elements in row-major order.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Same data, new shape (the element count must match).
    pub fn reshaped(&self, shape: Vec<usize>) -> Result<Tensor, IrError> {
        if numel(&shape) != Some(self.numel()) {
            return Err(IrError::DataLength {
                dtype: self.dtype,
                shape,
                expected: self.data.len(),
                actual: self.data.len(),
            });
        }
        Ok(Tensor { dtype: self.dtype, shape, data: self.data.clone() })
    }

    /// Element `i` as f64 (ints convert exactly up to 2^53, bool is 0/1).
    pub fn get_f64(&self, i: usize) -> f64 {
        let s = self.dtype.size();
        let b = &self.data[i * s..(i + 1) * s];
        match self.dtype {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            DType::F64 => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            DType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            d if d.is_narrow() => narrow::decode(d, b[0]),
            _ => self.get_i64(i) as f64,
        }
    }

    /// Element `i` as i64 (floats truncate toward zero, u64 wraps above i64::MAX).
    pub fn get_i64(&self, i: usize) -> i64 {
        let s = self.dtype.size();
        let b = &self.data[i * s..(i + 1) * s];
        match self.dtype {
            DType::I8 => b[0] as i8 as i64,
            DType::U8 | DType::Bool => b[0] as i64,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            DType::U16 => u16::from_le_bytes([b[0], b[1]]) as i64,
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            DType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            DType::I64 | DType::U64 => i64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            DType::I4 | DType::I2 => b[0] as i8 as i64,
            DType::U4 | DType::U2 => b[0] as i64,
            _ => self.get_f64(i) as i64,
        }
    }

    /// Every element as f64, in row-major order (see [`Tensor::get_f64`]).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        (0..self.numel()).map(|i| self.get_f64(i)).collect()
    }

    /// Every element as i64, in row-major order (see [`Tensor::get_i64`]).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        (0..self.numel()).map(|i| self.get_i64(i)).collect()
    }

    /// The values as f32 (lossy for f64 and large integers).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            _ => (0..self.numel()).map(|i| self.get_f64(i) as f32).collect(),
        }
    }

    /// Converts to another dtype with ONNX `Cast` semantics (default
    /// attributes: `saturate = 1`, `round_mode = up`).
    pub fn cast(&self, to: DType) -> Result<Tensor, IrError> {
        self.cast_with(to, true, CastRound::Up)
    }

    /// [`Tensor::cast`] with explicit float8 `saturate` and E8M0 `round_mode`
    /// (see [`crate::narrow`] for the narrow types' semantics).
    pub fn cast_with(&self, to: DType, saturate: bool, round: CastRound) -> Result<Tensor, IrError> {
        if to == self.dtype {
            return Ok(self.clone());
        }
        if to.is_narrow() && to.is_float() {
            let v = self.to_f64_vec();
            let out = v.iter().map(|&x| narrow::encode(to, x, saturate, round)).collect();
            return Tensor::from_bytes(to, self.shape.clone(), out);
        }
        if self.dtype.is_int() || self.dtype == DType::Bool {
            let v = self.to_i64_vec();
            Tensor::from_i64_values(to, self.shape.clone(), &v)
        } else {
            let v = self.to_f64_vec();
            Tensor::from_f64_values(to, self.shape.clone(), &v)
        }
    }

    /// A stable content hash (dtype, shape and bytes), 16 hex digits. Used by
    /// the text format to name weights without printing them.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.dtype.name().as_bytes());
        for d in &self.shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update(&self.data);
        let digest = h.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

fn push_f64(out: &mut Vec<u8>, dtype: DType, v: f64) {
    match dtype {
        DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
        DType::F64 => out.extend_from_slice(&v.to_le_bytes()),
        DType::F16 => out.extend_from_slice(&f16::from_f64(v).to_le_bytes()),
        DType::BF16 => out.extend_from_slice(&bf16::from_f64(v).to_le_bytes()),
        // Float -> int casts truncate toward zero and saturate (Rust `as`).
        DType::I8 => out.push(v as i8 as u8),
        DType::U8 => out.push(v as u8),
        DType::I16 => out.extend_from_slice(&(v as i16).to_le_bytes()),
        DType::U16 => out.extend_from_slice(&(v as u16).to_le_bytes()),
        DType::I32 => out.extend_from_slice(&(v as i32).to_le_bytes()),
        DType::U32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
        DType::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
        DType::U64 => out.extend_from_slice(&(v as u64).to_le_bytes()),
        DType::Bool => out.push(u8::from(v != 0.0)),
        d => out.push(narrow::encode(d, v, true, CastRound::Up)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked() {
        assert!(Tensor::from_bytes(DType::F32, vec![2, 2], vec![0; 15]).is_err());
        assert!(Tensor::from_bytes(DType::F32, vec![usize::MAX, 4], vec![]).is_err());
        assert!(Tensor::from_bytes(DType::F32, vec![2, 2], vec![0; 16]).is_ok());
    }

    #[test]
    fn casts_follow_onnx() {
        let t = Tensor::from_f32(vec![3], &[1.7, -1.7, 0.0]).unwrap();
        assert_eq!(t.cast(DType::I64).unwrap().to_i64_vec(), vec![1, -1, 0]);
        assert_eq!(t.cast(DType::Bool).unwrap().to_i64_vec(), vec![1, 1, 0]);
        let h = t.cast(DType::F16).unwrap();
        assert!((h.get_f64(0) - 1.7).abs() < 1e-3);
    }

    #[test]
    fn hash_depends_on_shape_and_dtype() {
        let a = Tensor::from_f32(vec![4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let b = a.reshaped(vec![2, 2]).unwrap();
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash(), a.clone().content_hash());
        assert_eq!(a.content_hash().len(), 16);
    }
}
