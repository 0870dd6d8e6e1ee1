//! Symbol names: the C identifier a compiled model's exported symbols start with.

use std::path::Path;

/// A C identifier derived from a model path: the file stem, or the folder
/// name when the file is called `model.onnx` (`digits_cnn/model.onnx` →
/// `digits_cnn`); other characters become `_`, a leading digit gets `m_`.
pub fn default_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let base = if stem == "model" {
        path.canonicalize()
            .ok()
            .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned()))
            .unwrap_or(stem)
    } else {
        stem
    };
    c_identifier(&base)
}

/// Makes `s` a valid C identifier.
pub fn c_identifier(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() {
        out = "model".into();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "m_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_c_identifiers() {
        assert_eq!(c_identifier("mobilenet-v2.1"), "mobilenet_v2_1");
        assert_eq!(c_identifier("18layers"), "m_18layers");
        assert_eq!(c_identifier(""), "model");
        assert_eq!(default_name(Path::new("/nonexistent/resnet18.onnx")), "resnet18");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/models/digits_cnn/model.onnx");
        assert_eq!(default_name(&fixture), "digits_cnn");
    }
}
