//! Typed, checked access to a node's attributes. A wrong attribute type or
//! a missing required attribute is an error naming the node.

use crate::proto::{AttrDef, AttrValue, GraphDef, TensorDef};
use crate::ImportError;

#[derive(Clone, Copy)]
pub(crate) struct Attrs<'a> {
    node: &'a str,
    op: &'a str,
    attrs: &'a [AttrDef],
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a str, op: &'a str, attrs: &'a [AttrDef]) -> Attrs<'a> {
        Attrs { node, op, attrs }
    }

    pub(crate) fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.node.to_string(), op: self.op.to_string(), msg: msg.into() }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&'a AttrValue> {
        self.attrs.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    fn wrong(&self, name: &str, want: &str, got: &AttrValue) -> ImportError {
        self.err(format!("attribute '{name}' must be {want}, got {}", got.kind()))
    }

    fn missing(&self, name: &str) -> ImportError {
        self.err(format!("missing required attribute '{name}'"))
    }

    pub(crate) fn int_opt(&self, name: &str) -> Result<Option<i64>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(self.wrong(name, "an int", other)),
        }
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    pub(crate) fn int_req(&self, name: &str) -> Result<i64, ImportError> {
        self.int_opt(name)?.ok_or_else(|| self.missing(name))
    }

    pub(crate) fn bool(&self, name: &str, default: bool) -> Result<bool, ImportError> {
        Ok(self.int(name, i64::from(default))? != 0)
    }

    pub(crate) fn float_opt(&self, name: &str) -> Result<Option<f32>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Float(v)) => Ok(Some(*v)),
            Some(AttrValue::Int(v)) => Ok(Some(*v as f32)),
            Some(other) => Err(self.wrong(name, "a float", other)),
        }
    }

    pub(crate) fn float(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self.float_opt(name)?.unwrap_or(default))
    }

    pub(crate) fn ints_opt(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.wrong(name, "a list of ints", other)),
        }
    }

    pub(crate) fn ints_req(&self, name: &str) -> Result<Vec<i64>, ImportError> {
        self.ints_opt(name)?.ok_or_else(|| self.missing(name))
    }

    /// A list of non-negative ints.
    pub(crate) fn usizes_opt(&self, name: &str) -> Result<Option<Vec<usize>>, ImportError> {
        match self.ints_opt(name)? {
            None => Ok(None),
            Some(v) => v
                .iter()
                .map(|&x| usize::try_from(x))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(|_| self.err(format!("attribute '{name}' must not be negative, got {v:?}"))),
        }
    }

    pub(crate) fn floats_opt(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v.clone())),
            Some(AttrValue::Ints(v)) => Ok(Some(v.iter().map(|&x| x as f32).collect())),
            Some(other) => Err(self.wrong(name, "a list of floats", other)),
        }
    }

    pub(crate) fn string_opt(&self, name: &str) -> Result<Option<String>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Str(v)) => String::from_utf8(v.clone())
                .map(Some)
                .map_err(|_| self.err(format!("attribute '{name}' is not valid UTF-8"))),
            Some(other) => Err(self.wrong(name, "a string", other)),
        }
    }

    pub(crate) fn string(&self, name: &str, default: &str) -> Result<String, ImportError> {
        Ok(self.string_opt(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn strings_opt(&self, name: &str) -> Result<Option<Vec<String>>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Strings(v)) => v
                .iter()
                .map(|s| String::from_utf8(s.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(|_| self.err(format!("attribute '{name}' is not valid UTF-8"))),
            Some(other) => Err(self.wrong(name, "a list of strings", other)),
        }
    }

    pub(crate) fn tensor_opt(&self, name: &str) -> Result<Option<&'a TensorDef>, ImportError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Tensor(t)) => Ok(Some(t)),
            Some(other) => Err(self.wrong(name, "a tensor", other)),
        }
    }

    /// A required subgraph attribute (If branches, Loop/Scan bodies).
    pub(crate) fn graph_req(&self, name: &str) -> Result<&'a GraphDef, ImportError> {
        match self.get(name) {
            None => Err(self.missing(name)),
            Some(AttrValue::Graph(g)) => Ok(g),
            Some(other) => Err(self.wrong(name, "a graph", other)),
        }
    }

    /// Names of all attributes present (for ops that accept exactly one of
    /// several, like `Constant`).
    pub(crate) fn names(&self) -> impl Iterator<Item = &'a str> {
        self.attrs.iter().map(|a| a.name.as_str())
    }
}
