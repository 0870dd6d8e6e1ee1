//! `.npy` files as raw little-endian tensors (any dtype kerf supports).

use std::path::Path;

use anyhow::{bail, Context, Result};
use kerf_ir::{DType, Tensor};
use npyz::WriterBuilder;

/// Reads a C-order `.npy` file into a tensor.
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).with_context(|| format!("'{}' is not a .npy file", path.display()))?;
    if npy.order() == npyz::Order::Fortran {
        bail!("'{}' is in Fortran order; save it in C order", path.display());
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr();
    let le = |v: Vec<u8>| v;
    macro_rules! typed {
        ($t:ty, $d:expr) => {{
            let v: Vec<$t> = npy.into_vec().with_context(|| format!("reading '{}'", path.display()))?;
            Tensor::from_bytes($d, shape, le(v.iter().flat_map(|x| x.to_le_bytes()).collect()))?
        }};
    }
    let t = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
        "f4" => typed!(f32, DType::F32),
        "f8" => typed!(f64, DType::F64),
        "i8" => typed!(i64, DType::I64),
        "i4" => typed!(i32, DType::I32),
        "i2" => typed!(i16, DType::I16),
        "i1" => typed!(i8, DType::I8),
        "u8" => typed!(u64, DType::U64),
        "u4" => typed!(u32, DType::U32),
        "u2" => typed!(u16, DType::U16),
        "u1" => typed!(u8, DType::U8),
        "b1" => {
            let v: Vec<bool> = npy.into_vec().with_context(|| format!("reading '{}'", path.display()))?;
            Tensor::from_bytes(DType::Bool, shape, v.iter().map(|&b| u8::from(b)).collect())?
        }
        other => bail!("'{}' has dtype '{other}', which kerf does not read", path.display()),
    };
    Ok(t)
}

/// Writes a tensor as a C-order `.npy` file.
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut buf = Vec::new();
    macro_rules! typed {
        ($t:ty, $conv:expr) => {{
            let mut w = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut buf).begin_nd()?;
            for i in 0..t.numel() {
                let v: $t = $conv(i);
                w.push(&v)?;
            }
            w.finish()?;
        }};
    }
    match t.dtype() {
        DType::F32 | DType::F16 | DType::BF16 => typed!(f32, |i| t.get_f64(i) as f32),
        DType::F64 => typed!(f64, |i| t.get_f64(i)),
        DType::I64 => typed!(i64, |i| t.get_i64(i)),
        DType::I32 => typed!(i32, |i| t.get_i64(i) as i32),
        DType::I16 => typed!(i16, |i| t.get_i64(i) as i16),
        DType::I8 => typed!(i8, |i| t.get_i64(i) as i8),
        DType::U64 => typed!(u64, |i| t.get_i64(i) as u64),
        DType::U32 => typed!(u32, |i| t.get_i64(i) as u32),
        DType::U16 => typed!(u16, |i| t.get_i64(i) as u16),
        DType::U8 => typed!(u8, |i| t.get_i64(i) as u8),
        DType::Bool => typed!(bool, |i| t.get_i64(i) != 0),
    }
    std::fs::write(path, buf).with_context(|| format!("cannot write '{}'", path.display()))
}
