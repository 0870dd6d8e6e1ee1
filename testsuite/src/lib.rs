//! Shared helpers for the end-to-end tests.
//!
//! - [`compare`]: dtype-aware tensor comparison (tolerances, ULPs, NaN/inf).
//! - [`manifest`]: the conformance manifest format.
//! - [`cases`]: discovery of the generated ONNX backend cases.
//! - [`conformance`]: running them through kerf and reporting.

pub mod cases;
pub mod compare;
pub mod conformance;
pub mod manifest;
