//! `.npy` files as tensors (C order): what `kerf run` reads and writes and
//! what the tests read references from.
//!
//! Read: every numpy dtype a model input can have — `f2` (float16), `f4`,
//! `f8`, `i1`/`i2`/`i4`/`i8`, `u1`/`u2`/`u4`/`u8`, `b1` (bool) — and
//! bfloat16 as `ml_dtypes` saves it (`<V2`: two raw little-endian bytes
//! per element; numpy has no bfloat16 of its own). Big-endian data and
//! other dtypes are errors naming the file and the dtype.
//!
//! Write: each dtype as itself, bfloat16 as `<V2` (what `ml_dtypes` reads
//! back), and the narrow types numpy lacks (int4/uint4/int2/uint2,
//! float8/float4) widened to their values as int8/uint8/float32.

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
    let descr = descr.trim_matches('\'');
    check_length(&bytes, &shape, descr).map_err(|e| err(path, e))?;
    if descr.starts_with('>') && !descr.ends_with('1') {
        return Err(err(
            path,
            format!("big-endian dtype '{descr}'; save it little-endian (arr.astype(arr.dtype.newbyteorder('<')))"),
        ));
    }
    let t = match descr.trim_start_matches(['<', '|', '=', '>']) {
        "f2" => typed!(half::f16, DType::F16),
        "V2" => {
            // bfloat16 (ml_dtypes): raw, from the data's start (`check_length`: all there)
            let n: usize = shape.iter().product();
            let data = data_start(&bytes).and_then(|s| bytes.get(s..s + 2 * n)).map(<[u8]>::to_vec);
            let data = data.ok_or_else(|| err(path, "shorter than its header says"))?;
            Tensor::from_bytes(DType::BF16, shape, data).map_err(|e| err(path, e))?
        }
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
        other => {
            return Err(err(
                path,
                format!(
                    "dtype '{other}' is not one kerf reads (float16/32/64, bfloat16 as <V2, int8-64, uint8-64, bool)"
                ),
            ))
        }
    };
    Ok(t)
}

/// Where a `.npy` file's data starts: after the magic (6 bytes), the
/// version (2), the header's length (a u16 in version 1, else a u32) and
/// the header.
fn data_start(bytes: &[u8]) -> Option<usize> {
    match bytes.get(6)? {
        1 => bytes.get(8..10).map(|b| 10 + usize::from(u16::from_le_bytes([b[0], b[1]]))),
        _ => bytes.get(8..12).map(|b| 12 + u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
    }
}

/// Whether the data after the header holds the `shape`'s elements of
/// `descr` (its trailing digits: bytes per element): a truncated file
/// (a copy cut short, a download stopped) says so instead of the reader's
/// "failed to fill whole buffer".
fn check_length(bytes: &[u8], shape: &[usize], descr: &str) -> std::result::Result<(), String> {
    let Ok(size) = descr.trim_start_matches(|c: char| !c.is_ascii_digit()).parse::<usize>() else {
        return Ok(()); // not a dtype kerf reads: the match below says so
    };
    let data = data_start(bytes).map_or(0, |s| bytes.len().saturating_sub(s));
    let need = shape.iter().try_fold(size, |n, &d| n.checked_mul(d));
    match need {
        Some(need) if data >= need => Ok(()),
        _ => Err(format!(
            "truncated: the header says {shape:?} of '{descr}' ({} bytes) but {data} bytes of data follow it",
            need.map_or("more than 2^64".to_string(), |n| n.to_string())
        )),
    }
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
        DType::F32 => typed!(f32, |i| t.get_f64(i) as f32),
        DType::F16 => typed!(half::f16, |i| half::f16::from_f64(t.get_f64(i))),
        DType::BF16 => return write_raw(path, "<V2", t),
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

/// Writes a tensor's raw little-endian bytes under dtype `descr` (for
/// dtypes npyz has no Rust type for, e.g. bfloat16 as `<V2`).
fn write_raw(path: &Path, descr: &str, t: &Tensor) -> Result<()> {
    let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let len = u16::try_from(header.len()).map_err(|_| err(path, "header too long"))?;
    let mut buf = b"\x93NUMPY\x01\x00".to_vec();
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(header.as_bytes());
    buf.extend_from_slice(t.bytes());
    std::fs::write(path, buf).map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(t: &Tensor, name: &str) -> Tensor {
        let dir = std::env::temp_dir().join(format!("kerf-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        write(&p, t).unwrap();
        read(&p).unwrap()
    }

    #[test]
    fn every_input_dtype_round_trips() {
        for dtype in [
            DType::F16,
            DType::BF16,
            DType::F32,
            DType::F64,
            DType::I8,
            DType::I16,
            DType::I32,
            DType::I64,
            DType::U8,
            DType::U16,
            DType::U32,
            DType::U64,
            DType::Bool,
        ] {
            let t = Tensor::from_f64_values(dtype, vec![2, 3], &[1.0, 0.0, 1.0, 1.0, 0.0, 1.0]).unwrap();
            let back = roundtrip(&t, &format!("{dtype}.npy"));
            assert_eq!(back.dtype(), dtype);
            assert_eq!(back.shape(), &[2, 3]);
            assert_eq!(back.bytes(), t.bytes(), "{dtype}");
        }
    }

    /// Files as numpy and ml_dtypes write them (headers copied from
    /// `np.save` of `np.float16([1.5, -2])` and `ml_dtypes.bfloat16([1.5, -2])`).
    #[test]
    fn numpy_float16_and_ml_dtypes_bfloat16_read() {
        let file = |descr: &str, data: &[u8]| {
            let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}");
            h.push_str(&" ".repeat(117 - h.len()));
            h.push('\n');
            let mut b = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(data);
            b
        };
        let dir = std::env::temp_dir().join(format!("kerf-npy-np-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (descr, data, dtype) in
            [("<f2", [0x00, 0x3e, 0x00, 0xc0], DType::F16), ("<V2", [0xc0, 0x3f, 0x00, 0xc0], DType::BF16)]
        {
            let p = dir.join(format!("{}.npy", &descr[1..]));
            std::fs::write(&p, file(descr, &data)).unwrap();
            let t = read(&p).unwrap();
            assert_eq!(t.dtype(), dtype);
            assert_eq!(t.to_f64_vec(), vec![1.5, -2.0], "{descr}");
        }
        let p = dir.join("big.npy");
        std::fs::write(&p, file(">f2", &[0x3e, 0x00, 0xc0, 0x00])).unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("big-endian"));
    }

    /// A file cut short names what is missing, for every element size
    /// (bfloat16's raw read included, which would otherwise take the
    /// header's last bytes as data).
    #[test]
    fn truncated_files_say_so() {
        let dir = std::env::temp_dir().join(format!("kerf-npy-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for dtype in [DType::F32, DType::BF16, DType::U8, DType::I64] {
            let t = Tensor::from_f64_values(dtype, vec![2, 3], &[1.0; 6]).unwrap();
            let p = dir.join(format!("{dtype}.npy"));
            write(&p, &t).unwrap();
            let whole = std::fs::read(&p).unwrap();
            std::fs::write(&p, &whole[..whole.len() - 1]).unwrap();
            let e = read(&p).unwrap_err().to_string();
            let need = t.bytes().len();
            assert!(
                e.contains("truncated") && e.contains(&format!("({need} bytes) but {} bytes", need - 1)),
                "{dtype}: {e}"
            );
        }
    }
}
