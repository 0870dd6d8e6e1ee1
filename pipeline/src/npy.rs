//! `.npy` files as tensors (C order, any dtype kerf supports): what
//! `kerf run` reads and writes and what the tests read references from.

use std::path::Path;

use kerf_ir::{DType, Tensor};
use npyz::WriterBuilder;

use crate::PipelineError;

type Result<T> = std::result::Result<T, PipelineError>;

fn err(path: &Path, msg: impl std::fmt::Display) -> PipelineError {
    PipelineError::Npy { path: path.to_path_buf(), msg: msg.to_string() }
}

/// Reads a C-order `.npy` file into a tensor.
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| err(path, format!("not a .npy file: {e}")))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(err(path, "Fortran order; save it in C order"));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr();
    macro_rules! typed {
        ($t:ty, $d:expr) => {{
            let v: Vec<$t> = npy.into_vec().map_err(|e| err(path, e))?;
            Tensor::from_bytes($d, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()).map_err(|e| err(path, e))?
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
            let v: Vec<bool> = npy.into_vec().map_err(|e| err(path, e))?;
            Tensor::from_bytes(DType::Bool, shape, v.iter().map(|&b| u8::from(b)).collect())
                .map_err(|e| err(path, e))?
        }
        other => return Err(err(path, format!("dtype '{other}' is not one kerf reads"))),
    };
    Ok(t)
}

/// Writes a tensor as a C-order `.npy` file.
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut buf = Vec::new();
    macro_rules! typed {
        ($t:ty, $conv:expr) => {{
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut buf)
                .begin_nd()
                .map_err(|e| err(path, e))?;
            for i in 0..t.numel() {
                let v: $t = $conv(i);
                w.push(&v).map_err(|e| err(path, e))?;
            }
            w.finish().map_err(|e| err(path, e))?;
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
        // npy has no narrow types: their values, widened
        DType::I4 | DType::I2 => typed!(i8, |i| t.get_i64(i) as i8),
        DType::U4 | DType::U2 => typed!(u8, |i| t.get_i64(i) as u8),
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 | DType::F4E2M1 => {
            typed!(f32, |i| t.get_f64(i) as f32)
        }
    }
    std::fs::write(path, buf).map_err(|e| err(path, e))
}
