//! The kerf pipeline as a library: ONNX → IR → lossless rewrites → native
//! code. The `kerf` CLI and `build.rs` scripts both go through here, so a
//! model compiled either way is the same bytes.
//!
//! In a `build.rs`:
//! ```no_run
//! kerf_pipeline::Build::new("models/digits_cnn.onnx").name("digits").compile_for_cargo().unwrap();
//! ```
//! links `libdigits.a` into the crate and writes `digits.h` to `OUT_DIR`.

pub mod npy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kerf_ir::Graph;
use kerf_targets::{Artifact, CompileOptions};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Import(#[from] kerf_onnx::ImportError),
    #[error(transparent)]
    Passes(#[from] kerf_passes::PassError),
    #[error(transparent)]
    Target(#[from] kerf_targets::TargetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("'{path}': {msg}")]
    Npy { path: PathBuf, msg: String },
}

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

/// What to build and for which target.
#[derive(Clone, Debug)]
pub struct Build {
    model: PathBuf,
    name: Option<String>,
    triple: String,
    cpu: String,
    input_shapes: BTreeMap<String, Vec<usize>>,
    optimize: bool,
}

impl Build {
    /// Host target, baseline CPU of the triple, lossless rewrites on.
    pub fn new(model: impl AsRef<Path>) -> Build {
        Build {
            model: model.as_ref().to_path_buf(),
            name: None,
            triple: "host".into(),
            cpu: "baseline".into(),
            input_shapes: BTreeMap::new(),
            optimize: true,
        }
    }
    /// Prefix of the exported symbols (default: [`default_name`]).
    pub fn name(mut self, name: &str) -> Build {
        self.name = Some(name.to_string());
        self
    }
    pub fn target(mut self, triple: &str) -> Build {
        self.triple = triple.to_string();
        self
    }
    pub fn cpu(mut self, cpu: &str) -> Build {
        self.cpu = cpu.to_string();
        self
    }
    pub fn input_shape(mut self, input: &str, dims: &[usize]) -> Build {
        self.input_shapes.insert(input.to_string(), dims.to_vec());
        self
    }
    pub fn optimize(mut self, on: bool) -> Build {
        self.optimize = on;
        self
    }

    pub fn symbol_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| default_name(&self.model))
    }

    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions::new(&self.triple, &self.cpu, &self.symbol_name())
    }

    /// Imports the model and runs the lossless rewrite groups.
    pub fn graph(&self) -> Result<Graph, BuildError> {
        let opts = kerf_onnx::ImportOptions {
            input_shapes: self.input_shapes.clone(),
            name: Some(self.symbol_name()),
            ..Default::default()
        };
        let g = kerf_onnx::load_model(&self.model, &opts)?;
        if !self.optimize {
            return Ok(g);
        }
        let (g, _reports) = kerf_passes::optimize(&g, &kerf_passes::PassOptions::default())?;
        Ok(g)
    }

    /// Compiles to an object, its header and report.
    pub fn compile(&self) -> Result<Artifact, BuildError> {
        let g = self.graph()?;
        Ok(kerf_targets::compile_object(&g, &self.compile_options())?)
    }

    /// For `build.rs`: compiles for Cargo's `TARGET`, writes
    /// `lib<name>.a` and `<name>.h` into `OUT_DIR`, and tells Cargo to link
    /// the archive and to rerun when the model changes. Returns the header path.
    pub fn compile_for_cargo(mut self) -> Result<PathBuf, BuildError> {
        let out_dir = std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| BuildError::Config("OUT_DIR is not set: call this from a build.rs".into()))?;
        if self.triple == "host" {
            if let Ok(t) = std::env::var("TARGET") {
                self.triple = t;
            }
        }
        let name = self.symbol_name();
        let art = self.compile()?;
        let archive = kerf_targets::archive::write_archive(&[(format!("{name}.o"), art.object)])?;
        let lib = out_dir.join(format!("lib{name}.a"));
        let header = out_dir.join(format!("{name}.h"));
        std::fs::write(&lib, archive).map_err(|source| BuildError::Io { path: lib.clone(), source })?;
        std::fs::write(&header, art.header).map_err(|source| BuildError::Io { path: header.clone(), source })?;
        println!("cargo:rerun-if-changed={}", self.model.display());
        println!("cargo:rustc-link-search=native={}", out_dir.display());
        println!("cargo:rustc-link-lib=static={name}");
        Ok(header)
    }
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
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/models/digits_cnn/model.onnx");
        assert_eq!(default_name(&fixture), "digits_cnn");
    }
}
