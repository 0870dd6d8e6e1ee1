//! Shared helpers for the end-to-end tests.
//!
//! - [`compare`]: dtype-aware tensor comparison (tolerances, ULPs, NaN/inf).
//! - [`manifest`]: the conformance manifest format.
//! - [`cases`]: discovery of the generated ONNX backend cases.
//! - [`conformance`]: running them through kerf and reporting.
//! - [`tools`]: whether an external tool (cross GCC, qemu, valgrind) is there, and what a missing one means.

pub mod cases;
pub mod compare;
pub mod conformance;
pub mod manifest;
pub mod tools;
