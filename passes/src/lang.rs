//! The e-graph language: one node type carrying a fully typed kerf op.
//!
//! `define_language!` cannot express ops with typed attributes, so
//! [`Language`] is implemented by hand. A node is an operator plus child
//! e-class ids. Tensor data never appears in a node: constants are
//! [`WeightId`]s into the analysis' weight table, because egg hashes node
//! payloads on every lookup.
//!
//! Multi-output ops (Split, LSTM, GRU) live in a *tuple* e-class whose
//! analysis records one type per output; [`NodeOp::Proj`]`(i)` selects
//! output `i` and is the only node that may take a tuple class as a child.

use std::fmt;

use egg::{Id, Language};
use kerf_ir::{Op, WeightId};

/// The operator of an e-node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeOp {
    /// The i-th graph input (a leaf).
    Input(u32),
    /// A constant from the weight table (a leaf).
    Const(WeightId),
    /// A kerf op applied to its children (one child per op input).
    Op(Op),
    /// Output `i` of the multi-output op in the child tuple class.
    Proj(u32),
}

/// An e-node: operator and child e-classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KNode {
    /// The operator.
    pub op: NodeOp,
    /// Child e-classes: one per op input, none for leaves, the tuple class for `Proj`.
    pub children: Vec<Id>,
}

impl KNode {
    /// A node with operator `op` over `children`.
    pub fn new(op: NodeOp, children: Vec<Id>) -> KNode {
        KNode { op, children }
    }

    /// A kerf op node over `children` (one per op input).
    pub fn op(op: Op, children: Vec<Id>) -> KNode {
        KNode { op: NodeOp::Op(op), children }
    }

    /// A node without children (for `Input` and `Const`).
    pub fn leaf(op: NodeOp) -> KNode {
        KNode { op, children: vec![] }
    }

    /// The kerf op, if this is an op node.
    pub fn kerf_op(&self) -> Option<&Op> {
        match &self.op {
            NodeOp::Op(op) => Some(op),
            _ => None,
        }
    }
}

/// Whether `op` produces a tuple class (outputs reached through `Proj`):
/// exactly the ops with more than one output. Everything else, including a
/// one-way Split, is a plain value class.
pub fn is_tuple(op: &Op) -> bool {
    op.num_outputs() != 1
}

/// A cheap key for egg's per-operator indexes: the variant and op name.
/// Two nodes with the same key may still differ in attributes; `matches`
/// compares the full operator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Discriminant {
    /// An `Input(i)` leaf, with its index.
    Input(u32),
    /// A `Const(w)` leaf, with its weight.
    Const(WeightId),
    /// An op node, by op name only (attributes are not part of the key).
    Op(&'static str),
    /// A `Proj(i)` node, with its output index.
    Proj(u32),
}

impl Language for KNode {
    type Discriminant = Discriminant;

    fn discriminant(&self) -> Discriminant {
        match &self.op {
            NodeOp::Input(i) => Discriminant::Input(*i),
            NodeOp::Const(w) => Discriminant::Const(*w),
            NodeOp::Op(op) => Discriminant::Op(op.name()),
            NodeOp::Proj(i) => Discriminant::Proj(*i),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for KNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            NodeOp::Input(i) => write!(f, "Input({i})"),
            NodeOp::Const(w) => write!(f, "Const({})", w.0),
            NodeOp::Op(op) => f.write_str(op.name()),
            NodeOp::Proj(i) => write!(f, "Proj({i})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_compares_attributes() {
        let a = KNode::op(Op::Reshape { shape: vec![2, 3] }, vec![Id::from(0)]);
        let b = KNode::op(Op::Reshape { shape: vec![3, 2] }, vec![Id::from(0)]);
        assert_eq!(a.discriminant(), b.discriminant());
        assert!(!a.matches(&b));
        assert!(a.matches(&a.clone()));
        assert_eq!(a.to_string(), "Reshape");
        assert_eq!(KNode::leaf(NodeOp::Proj(1)).to_string(), "Proj(1)");
    }
}
