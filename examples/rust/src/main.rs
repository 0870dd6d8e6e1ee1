//! Classifies the 450 held-out 8x8 digits with the `digits_mlp` model that
//! `build.rs` compiled ahead of time with kerf and linked into this binary,
//! and checks the accuracy against ONNX Runtime's (`meta.json`).
//!
//! `build.rs` (`kerf_pipeline::Build`) also writes the typed wrapper
//! `digits_mlp.rs` into `OUT_DIR`: `digits_mlp::Model::run` takes the image
//! as `&[f32; 64]` and returns the logits as `Box<[f32; 10]>`, over
//! `kerf_runtime::Model`, which checks the linked descriptor once and every
//! buffer on each call.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/digits_mlp.rs"));

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/fixtures/models/digits_mlp")
}

/// A parsed `.npy`: shape and raw little-endian data.
struct Npy {
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Reads a C-order `.npy` file whose dtype descriptor is `descr` (`<f4`, `<i8`).
fn read_npy(path: &Path, descr: &str) -> Result<Npy, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |why: &str| format!("{}: {why}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        _ if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(bad("truncated header")),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?;
    let header = String::from_utf8_lossy(header);
    if !header.contains(&format!("'descr': '{descr}'")) || !header.contains("'fortran_order': False") {
        return Err(bad(&format!("expected dtype {descr} in C order, header {header}")));
    }
    let shape_text =
        header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape in header"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|e| bad(&format!("shape '{s}': {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Npy { shape, data: bytes[start + hlen..].to_vec() })
}

/// Classifies the test set; returns (correct, total).
fn classify_test_set() -> Result<(usize, usize), String> {
    let mut m = digits_mlp::Model::new().map_err(|e| e.to_string())?;
    let (x, y) =
        (read_npy(&fixture_dir().join("test_x.npy"), "<f4")?, read_npy(&fixture_dir().join("test_y.npy"), "<i8")?);
    let image_bytes = 4 * digits_mlp::INPUT_SHAPE.iter().product::<usize>();
    let n = x.shape.first().copied().unwrap_or(0);
    if x.data.len() != n * image_bytes || y.data.len() != n * 8 {
        return Err(format!("test set does not fit the model: {} images of {image_bytes} bytes", n));
    }
    let mut correct = 0;
    for i in 0..n {
        let mut image = [0f32; 64];
        for (v, c) in image.iter_mut().zip(x.data[i * image_bytes..(i + 1) * image_bytes].chunks_exact(4)) {
            *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        let logits = m.run(&image).map_err(|e| e.to_string())?;
        let best = (0..logits.len()).fold(0, |b, k| if logits[k] > logits[b] { k } else { b });
        let mut label = [0u8; 8];
        label.copy_from_slice(&y.data[i * 8..i * 8 + 8]);
        if best as i64 == i64::from_le_bytes(label) {
            correct += 1;
        }
    }
    Ok((correct, n))
}

/// ONNX Runtime's accuracy on the same test set, from `meta.json`.
fn ort_accuracy() -> Result<f64, String> {
    let p = fixture_dir().join("meta.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    meta["test_set"]["ort_accuracy"].as_f64().ok_or_else(|| format!("{}: no test_set.ort_accuracy", p.display()))
}

/// Classifies and compares with ONNX Runtime: same number of correct images.
fn check() -> Result<String, String> {
    let (correct, n) = classify_test_set()?;
    let ort = ort_accuracy()?;
    let ort_correct = (ort * n as f64).round() as usize;
    let line =
        format!("digits_mlp: {correct}/{n} correct, accuracy {:.6} (ONNX Runtime {ort:.6})", correct as f64 / n as f64);
    if correct != ort_correct {
        return Err(format!("{line}: expected {ort_correct} correct"));
    }
    Ok(line)
}

fn main() {
    match check() {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accuracy_matches_onnx_runtime() {
        let line = super::check().unwrap();
        assert!(line.contains("438/450"), "{line}");
    }

    #[test]
    fn descriptor_matches_the_model() {
        let m = super::digits_mlp::Model::new().unwrap();
        let info = m.raw().info();
        assert_eq!(info.name, "digits_mlp");
        assert_eq!(info.inputs[0].dims, super::digits_mlp::INPUT_SHAPE);
        assert_eq!(info.outputs[0].dims, super::digits_mlp::LOGITS_SHAPE);
        assert_eq!(info.outputs[0].dims, vec![1, 10]);
    }
}
