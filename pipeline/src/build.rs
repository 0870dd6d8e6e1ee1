//! [`Build`]: the `build.rs` helper, in the style of `prost-build` and `cc`.
//!
//! ```no_run
//! // in build.rs's main():
//! kerf_pipeline::Build::new("models/digits_cnn.onnx").name("digits").compile_for_cargo().unwrap();
//! ```
//! compiles the model for Cargo's `TARGET`, writes `libdigits.a`,
//! `digits.h` and the typed Rust wrapper `digits.rs`
//! ([`kerf_targets::rust_module`]; `include!` it) into `OUT_DIR`, links the
//! archive into the crate and prints
//! `cargo:rerun-if-changed=<model>` so the model is rebuilt only when it
//! changes. It is a thin layer over [`Session`]: a model compiled here is
//! the same bytes as `kerf compile` makes.

use std::path::{Path, PathBuf};

use kerf_targets::Target;

use crate::session::Session;
use crate::PipelineError;

/// What to build and for which target (a [`Session`] with `build.rs` output).
#[derive(Clone, Debug)]
pub struct Build {
    session: Session,
    /// `(triple, cpu)` as given; parsed when the build runs.
    target: Option<(String, String)>,
}

impl Build {
    /// Host target, baseline CPU of the triple, lossless rewrites on.
    pub fn new(model: impl AsRef<Path>) -> Build {
        Build { session: Session::new(model), target: None }
    }
    /// Prefix of the exported symbols (default: the model's file or folder name).
    pub fn name(mut self, name: &str) -> Build {
        self.session = self.session.name(name);
        self
    }
    /// Target triple and CPU preset (default: Cargo's `TARGET`, baseline).
    pub fn target(mut self, triple: &str, cpu: &str) -> Build {
        self.target = Some((triple.to_string(), cpu.to_string()));
        self
    }
    /// Fixes a dynamic input's shape.
    pub fn input_shape(mut self, input: &str, dims: &[usize]) -> Build {
        self.session = self.session.input_shape(input, dims);
        self
    }
    /// The session this build runs.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Compiles for Cargo's `TARGET` (unless [`Build::target`] was given),
    /// writes `lib<name>.a`, `<name>.h` and the typed wrapper `<name>.rs` into `OUT_DIR`, and tells Cargo to
    /// link the archive and to rerun when the model changes. Returns the
    /// header path.
    pub fn compile_for_cargo(mut self) -> Result<PathBuf, PipelineError> {
        let out_dir = std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| PipelineError::Config("OUT_DIR is not set: call this from a build.rs".into()))?;
        let given = self.target.clone().or_else(|| std::env::var("TARGET").ok().map(|t| (t, "baseline".into())));
        if let Some((triple, cpu)) = given {
            self.session = self.session.target(Target::parse(&triple, &cpu)?);
        }
        let name = self.session.symbol_name();
        let g = self.session.graph()?;
        for w in g.warnings() {
            println!("cargo:warning={w}");
        }
        let art = self.session.compile(&g.graph)?;
        let archive = art.archive()?;
        let lib = out_dir.join(format!("lib{name}.a"));
        let header = out_dir.join(format!("{name}.h"));
        let module = out_dir.join(format!("{name}.rs"));
        let write = |path: &PathBuf, bytes: &[u8]| {
            std::fs::write(path, bytes).map_err(|source| PipelineError::Io { path: path.clone(), source })
        };
        write(&lib, &archive)?;
        write(&header, art.header.as_bytes())?;
        write(&module, kerf_targets::rust_module::generate(&g.graph, &name).as_bytes())?;
        println!("cargo:rerun-if-changed={}", self.session.model_path().display());
        println!("cargo:rustc-link-search=native={}", out_dir.display());
        println!("cargo:rustc-link-lib=static={name}");
        Ok(header)
    }
}
