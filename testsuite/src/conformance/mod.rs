//! The ONNX backend conformance run (driven by `tests/onnx_backend.rs`).
//!
//! [`pipeline`] takes one case through kerf (read data → import → optimise →
//! [`exec::execute`] → compare), [`classify`] names why a case fails,
//! [`pool`] runs cases on two worker processes, [`report`] judges outcomes
//! against the manifest, [`coverage`] renders `docs/onnx-coverage.md`.

pub mod classify;
pub mod coverage;
pub mod exec;
mod interp;
pub mod pipeline;
pub mod pool;
pub mod report;
