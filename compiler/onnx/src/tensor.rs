//! `TensorProto` → [`Tensor`].
//!
//! Contract: the dims are checked (non-negative, product fits and stays under
//! [`MAX_CONST_ELEMENTS`]) and the stored data length is checked against them
//! before any buffer for the result is allocated. Data comes from `raw_data`,
//! from the typed fields (`float_data`, `int32_data` — which also carries
//! f16/bf16 bit patterns, bool and the small integer types —, `int64_data`,
//! `double_data`, `uint64_data`), or from an external file named by
//! `location` relative to the model's folder. External paths must be
//! relative, may not contain `..`, and must still lie inside the folder after
//! resolving symlinks.
//!
//! Narrow types: float8 codes are one byte each (`raw_data`, or one code per
//! `int32_data` entry). 4-bit types (`int4`, `uint4`, `float4e2m1`) are
//! packed two per byte and 2-bit types (`int2`, `uint2`) four per byte, first
//! element in the lowest bits, in `raw_data` and external data (⌈n/2⌉ or
//! ⌈n/4⌉ bytes) and in `int32_data` (one packed byte per entry). They are
//! unpacked here to kerf's one-byte-per-element layout (see [`DType`]): signed
//! ints sign-extended, unsigned ints and float4 codes zero-extended.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use kerf_ir::{DType, Tensor, MAX_CONST_ELEMENTS};

use crate::error::TypeSite;
use crate::proto::TensorDef;
use crate::ImportError;

/// Name of an ONNX data type code the IR cannot hold, for error messages.
fn unsupported_type_name(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "undefined",
        8 => "string",
        14 => "complex64",
        15 => "complex128",
        _ => return None,
    })
}

/// Elements per stored byte for packed ONNX types (1 for everything else).
fn per_byte(d: DType) -> usize {
    match d {
        DType::I4 | DType::U4 | DType::F4E2M1 => 2,
        DType::I2 | DType::U2 => 4,
        _ => 1,
    }
}

/// Unpacks `n` elements of a packed 4/2-bit type to one byte each.
fn unpack(d: DType, packed: &[u8], n: usize) -> Vec<u8> {
    let per = per_byte(d);
    let bits = 8 / per;
    let mask = (1u8 << bits) - 1;
    (0..n)
        .map(|i| {
            let v = (packed[i / per] >> ((i % per) * bits)) & mask;
            match d {
                // sign-extend from `bits`
                DType::I4 | DType::I2 => (((v << (8 - bits)) as i8) >> (8 - bits)) as u8,
                _ => v,
            }
        })
        .collect()
}

/// The IR dtype of an ONNX element type code, or an error naming `what`.
pub(crate) fn dtype_of(code: i32, what: &str) -> Result<DType, ImportError> {
    dtype_at(code, what, TypeSite::Tensor)
}

/// [`dtype_of`] for a value at `site`.
pub(crate) fn dtype_at(code: i32, what: &str, site: TypeSite) -> Result<DType, ImportError> {
    DType::from_onnx_code(code).ok_or_else(|| {
        let kind = unsupported_type_name(code).map_or_else(|| format!("unknown type {code}"), str::to_string);
        ImportError::UnsupportedElementType { site, name: what.to_string(), code, kind }
    })
}

/// Checks dims and returns the shape and element count.
pub(crate) fn checked_shape(name: &str, dims: &[i64]) -> Result<(Vec<usize>, usize), ImportError> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut n: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| ImportError::tensor(name, format!("negative dimension in {dims:?}")))?;
        n = n.checked_mul(d).ok_or_else(|| ImportError::tensor(name, format!("dims {dims:?} overflow")))?;
        shape.push(d);
    }
    if n > MAX_CONST_ELEMENTS {
        return Err(ImportError::tensor(
            name,
            format!("dims {dims:?} hold {n} elements, more than the limit of {MAX_CONST_ELEMENTS}"),
        ));
    }
    Ok((shape, n))
}

/// Converts a stored tensor. `base_dir` is the model's folder (needed only
/// for external data).
pub(crate) fn convert(t: &TensorDef, base_dir: Option<&Path>) -> Result<Tensor, ImportError> {
    convert_owned(t.clone(), base_dir)
}

/// Like [`convert`], moving `raw_data` into the result instead of copying.
pub(crate) fn convert_owned(mut t: TensorDef, base_dir: Option<&Path>) -> Result<Tensor, ImportError> {
    let name = t.name.as_str();
    let dtype = dtype_of(t.data_type, name)?;
    let (shape, n) = checked_shape(name, &t.dims)?;
    let per = per_byte(dtype);
    // bytes stored in the file (packed types: fewer than the unpacked size)
    let expected = if per > 1 { n.div_ceil(per) } else { n * dtype.size() };
    if t.segmented {
        return Err(ImportError::tensor(name, "segmented tensors are not supported"));
    }
    if let Some(ext) = &t.external {
        let bytes = read_external(name, ext, expected, base_dir)?;
        let bytes = if per > 1 { unpack(dtype, &bytes, n) } else { bytes };
        return Ok(Tensor::from_bytes(dtype, shape, bytes)?);
    }
    if !t.raw_data.is_empty() {
        if t.raw_data.len() != expected {
            return Err(ImportError::tensor(
                name,
                format!("raw_data has {} bytes, {dtype}{shape:?} needs {expected}", t.raw_data.len()),
            ));
        }
        if per > 1 {
            return Ok(Tensor::from_bytes(dtype, shape, unpack(dtype, &t.raw_data, n))?);
        }
        return Ok(Tensor::from_bytes(dtype, shape, std::mem::take(&mut t.raw_data))?);
    }
    if per > 1 {
        if t.int32_data.len() != expected {
            return Err(ImportError::tensor(
                name,
                format!("int32_data has {} packed bytes, {dtype}{shape:?} needs {expected}", t.int32_data.len()),
            ));
        }
        let packed: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
        return Ok(Tensor::from_bytes(dtype, shape, unpack(dtype, &packed, n))?);
    }
    let count_check = |field: &str, len: usize| -> Result<(), ImportError> {
        if len != n {
            return Err(ImportError::tensor(name, format!("{field} has {len} values, {dtype}{shape:?} needs {n}")));
        }
        Ok(())
    };
    let mut out = Vec::new();
    match dtype {
        DType::F32 => {
            count_check("float_data", t.float_data.len())?;
            out.reserve(expected);
            t.float_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        DType::F64 => {
            count_check("double_data", t.double_data.len())?;
            out.reserve(expected);
            t.double_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        DType::I64 => {
            count_check("int64_data", t.int64_data.len())?;
            out.reserve(expected);
            t.int64_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        DType::U32 | DType::U64 => {
            count_check("uint64_data", t.uint64_data.len())?;
            out.reserve(expected);
            for v in &t.uint64_data {
                if dtype == DType::U32 {
                    out.extend_from_slice(&(*v as u32).to_le_bytes());
                } else {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        // float8 codes are one per int32_data entry (packed types returned above)
        _ => {
            count_check("int32_data", t.int32_data.len())?;
            out.reserve(expected);
            for &v in &t.int32_data {
                match dtype.size() {
                    1 => out.push(v as u8),
                    2 => out.extend_from_slice(&(v as u16).to_le_bytes()),
                    _ => out.extend_from_slice(&v.to_le_bytes()),
                }
            }
        }
    }
    Ok(Tensor::from_bytes(dtype, shape, out)?)
}

fn read_external(
    name: &str,
    entries: &[(String, String)],
    expected: usize,
    base_dir: Option<&Path>,
) -> Result<Vec<u8>, ImportError> {
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for (k, v) in entries {
        let num = |v: &str| {
            v.parse::<u64>().map_err(|_| ImportError::tensor(name, format!("external data {k} '{v}' is not a number")))
        };
        match k.as_str() {
            "location" => location = Some(v.as_str()),
            "offset" => offset = num(v)?,
            "length" => length = Some(num(v)?),
            _ => {}
        }
    }
    let location = location.ok_or_else(|| ImportError::tensor(name, "external data has no location"))?;
    let base = base_dir.ok_or_else(|| {
        ImportError::tensor(name, "external data needs the model's folder (load the model from a file)")
    })?;
    let rel = Path::new(location);
    if rel.is_absolute() || location.starts_with('/') || location.starts_with('\\') {
        return Err(ImportError::tensor(name, format!("external data location '{location}' must be a relative path")));
    }
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ImportError::tensor(
            name,
            format!("external data location '{location}' may not contain '..' or leave the model's folder"),
        ));
    }
    let full = base.join(rel);
    let io = |e: std::io::Error| ImportError::Io { path: full.clone(), source: e };
    let canon_base = base.canonicalize().map_err(|e| ImportError::Io { path: base.to_path_buf(), source: e })?;
    let canon = full.canonicalize().map_err(io)?;
    if !canon.starts_with(&canon_base) {
        return Err(ImportError::tensor(
            name,
            format!("external data location '{location}' resolves outside the model's folder"),
        ));
    }
    let mut file = File::open(&canon).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ImportError::tensor(name, format!("external data location '{location}' is not a file")));
    }
    if let Some(l) = length {
        if l != expected as u64 {
            return Err(ImportError::tensor(
                name,
                format!("external data length {l} does not match the {expected} bytes its dims need"),
            ));
        }
    }
    let end = offset.checked_add(expected as u64);
    if end.is_none_or(|e| e > meta.len()) {
        return Err(ImportError::tensor(
            name,
            format!("external data [{offset}, +{expected}) runs past the end of '{location}' ({} bytes)", meta.len()),
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; expected];
    file.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_are_checked_before_allocation() {
        assert_eq!(checked_shape("t", &[2, 3]).unwrap(), (vec![2, 3], 6));
        assert_eq!(checked_shape("t", &[]).unwrap(), (vec![], 1));
        assert_eq!(checked_shape("t", &[0, 5]).unwrap(), (vec![0, 5], 0));
        assert!(checked_shape("t", &[-1]).unwrap_err().to_string().contains("negative dimension"));
        assert!(checked_shape("t", &[i64::MAX, 4]).unwrap_err().to_string().contains("overflow"));
        let e = checked_shape("t", &[1 << 16, 1 << 16]).unwrap_err().to_string();
        assert!(e.contains("more than the limit"), "{e}");
    }

    fn packed(data_type: i32, dims: Vec<i64>, raw: Vec<u8>, int32: Vec<i32>) -> TensorDef {
        TensorDef { name: "p".into(), dims, data_type, raw_data: raw, int32_data: int32, ..TensorDef::default() }
    }

    #[test]
    fn packed_sub_byte_types_are_unpacked() {
        // int4 [1, -2, 3, -8, 7]: low nibble first, odd count leaves the last high nibble unused
        let want = vec![1u8, (-2i8) as u8, 3, (-8i8) as u8, 7];
        let t = convert(&packed(22, vec![5], vec![0xe1, 0x83, 0x07], vec![]), None).unwrap();
        assert_eq!((t.dtype(), t.bytes().to_vec()), (DType::I4, want.clone()));
        // the same in int32_data (one packed byte per entry)
        let t = convert(&packed(22, vec![5], vec![], vec![0xe1, 0x83, 0x07]), None).unwrap();
        assert_eq!(t.bytes(), &want[..]);
        assert_eq!(t.to_i64_vec(), vec![1, -2, 3, -8, 7]);
        // uint4 and float4 zero-extend
        let t = convert(&packed(21, vec![2], vec![0xf3], vec![]), None).unwrap();
        assert_eq!(t.bytes(), &[3, 15]);
        let t = convert(&packed(23, vec![3], vec![0x9a, 0x07], vec![]), None).unwrap();
        assert_eq!(t.to_f64_vec(), vec![-1.0, -0.5, 6.0]);
        // int2 / uint2: four per byte, lowest bits first
        let t = convert(&packed(26, vec![5], vec![0b1100_1001, 0b01], vec![]), None).unwrap();
        assert_eq!(t.to_i64_vec(), vec![1, -2, 0, -1, 1]);
        let t = convert(&packed(25, vec![4], vec![], vec![0b1110_0100]), None).unwrap();
        assert_eq!(t.to_i64_vec(), vec![0, 1, 2, 3]);
        // float8 codes are one per entry
        let t = convert(&packed(17, vec![3], vec![], vec![0x38, 0xc0, 0x7e]), None).unwrap();
        assert_eq!(t.to_f64_vec(), vec![1.0, -2.0, 448.0]);
        // wrong packed lengths are errors
        let e = convert(&packed(22, vec![5], vec![0xe1, 0x83], vec![]), None).unwrap_err().to_string();
        assert!(e.contains("raw_data has 2 bytes"), "{e}");
        let e = convert(&packed(26, vec![5], vec![], vec![1]), None).unwrap_err().to_string();
        assert!(e.contains("needs 2"), "{e}");
    }

    #[test]
    fn external_without_folder_is_refused() {
        let t = TensorDef {
            name: "w".into(),
            dims: vec![1],
            data_type: 1,
            external: Some(vec![("location".into(), "w.bin".into())]),
            ..TensorDef::default()
        };
        let e = convert(&t, None).unwrap_err().to_string();
        assert!(e.starts_with("tensor 'w': external data needs the model's folder"), "{e}");
    }
}
