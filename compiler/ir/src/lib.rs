//! kerf's intermediate representation.
//!
//! A [`Graph`] is an SSA dataflow graph: values with static [`TensorType`]s,
//! [`Node`]s in topological order applying an [`Op`] with resolved
//! attributes, and a [`WeightTable`] holding every constant once. It is what
//! the ONNX frontend produces, what the e-graph passes take apart and extract
//! back to, and what code generation consumes.
//!
//! The crate has no heavy dependencies: parsing ONNX lives in `kerf-onnx`,
//! the e-graph in `kerf-passes`, code generation in `kerf-targets`.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod attr;
mod dtype;
mod error;
pub mod eval;
mod eval_nn;
mod graph;
pub mod infer;
pub mod narrow;
pub mod op;
pub mod order;
pub mod quant;
pub mod stats;
mod tensor;
pub mod text;
mod weights;

pub use attr::{Attr, F32};
pub use dtype::DType;
pub use error::IrError;
pub use graph::{Graph, GraphOutput, Node, TensorType, Value, ValueDef, ValueId};
pub use op::{BinaryOp, Layer, Op, UnaryOp};
pub use quant::{
    byte_pair_partners, byte_pairs_exact, byte_pool_rows_fit, channel_pairs_exact, one_pixel_product_fits,
    pool_group_reach, pool_row_interior, weights_byte_pairs_exact, ActQuant, AxisQuant, DepthwisePlane,
    DW_FLAT_MAX_PIXELS, DW_FLAT_MAX_TAPS, DW_QUAD_MAX_BORDER_ROWS,
};
pub use tensor::{numel, Tensor, MAX_CONST_ELEMENTS};
pub use weights::{
    ChannelQuads, Origin, Quant, Sparsity, Weight, WeightGrid, WeightId, WeightTable, GRID_QMAX, POINTWISE_DENSITY_MAX,
};
