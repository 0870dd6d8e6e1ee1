//! Attribute values as the text format sees them, and the hashable float
//! wrapper ops use for float attributes.

use std::fmt;

use crate::IrError;

/// An `f32` attribute that is `Eq + Hash + Ord` by bit pattern, so ops can be
/// e-graph nodes. `-0.0 != 0.0` and NaNs compare by bits: attributes are
/// identities, not numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct F32(u32);

impl F32 {
    /// Wraps `v`, keeping its exact bit pattern.
    pub fn new(v: f32) -> F32 {
        F32(v.to_bits())
    }
    /// The wrapped value, bit for bit.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl From<f32> for F32 {
    fn from(v: f32) -> F32 {
        F32::new(v)
    }
}

impl fmt::Debug for F32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.get())
    }
}

/// A generic attribute value: what the printer writes and the parser reads.
/// Ops convert to and from lists of `(name, Attr)` in a fixed order.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// An integer, printed `3`.
    Int(i64),
    /// A float, printed so that it reads back as a float (see [`fmt_f32`]).
    Float(f32),
    /// `true` or `false`.
    Bool(bool),
    /// A list of integers, printed `[1,2]`.
    Ints(Vec<i64>),
    /// A list of floats, printed `[1.0,2.5]`.
    Floats(Vec<f32>),
    /// A string, printed quoted and escaped.
    Str(String),
    /// A bare identifier such as an enum variant (`nearest`, `f32`).
    Ident(String),
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Int(v) => write!(f, "{v}"),
            Attr::Float(v) => write!(f, "{}", fmt_f32(*v)),
            Attr::Bool(v) => write!(f, "{v}"),
            Attr::Ints(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Attr::Floats(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(&fmt_f32(*x))?;
                }
                f.write_str("]")
            }
            Attr::Str(s) => write!(f, "{s:?}"),
            Attr::Ident(s) => f.write_str(s),
        }
    }
}

/// Formats an f32 so that it parses back to the same bits and is always
/// recognisable as a float (`1.0`, not `1`).
pub fn fmt_f32(v: f32) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{v:?}")
    }
}

/// Named attributes handed to an op constructor by the parser. Each getter
/// removes the attribute; `finish` rejects leftovers, so a typo is an error.
#[derive(Debug)]
pub struct AttrMap {
    op: String,
    items: Vec<(String, Attr)>,
}

impl AttrMap {
    /// The attributes `items` of op `op` (the name is used in error messages).
    pub fn new(op: &str, items: Vec<(String, Attr)>) -> AttrMap {
        AttrMap { op: op.to_string(), items }
    }

    fn take(&mut self, name: &str) -> Result<Attr, IrError> {
        let pos = self
            .items
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| IrError::Attr { op: self.op.clone(), msg: format!("missing attribute '{name}'") })?;
        Ok(self.items.remove(pos).1)
    }

    fn bad(&self, name: &str, want: &str, got: &Attr) -> IrError {
        IrError::Attr { op: self.op.clone(), msg: format!("attribute '{name}' must be {want}, got {got}") }
    }

    /// Removes and returns the integer attribute `name`; errors if it is missing or not an integer.
    pub fn int(&mut self, name: &str) -> Result<i64, IrError> {
        match self.take(name)? {
            Attr::Int(v) => Ok(v),
            other => Err(self.bad(name, "an integer", &other)),
        }
    }

    /// An optional integer attribute: `None` when absent.
    pub fn opt_int(&mut self, name: &str) -> Result<Option<i64>, IrError> {
        if self.items.iter().any(|(n, _)| n == name) {
            self.int(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Like [`AttrMap::int`], also rejecting negative values.
    pub fn usize(&mut self, name: &str) -> Result<usize, IrError> {
        let v = self.int(name)?;
        usize::try_from(v).map_err(|_| IrError::Attr {
            op: self.op.clone(),
            msg: format!("attribute '{name}' must be non-negative, got {v}"),
        })
    }

    /// Removes and returns the float attribute `name` (an integer literal is converted).
    pub fn float(&mut self, name: &str) -> Result<F32, IrError> {
        match self.take(name)? {
            Attr::Float(v) => Ok(F32::new(v)),
            Attr::Int(v) => Ok(F32::new(v as f32)),
            other => Err(self.bad(name, "a float", &other)),
        }
    }

    /// An optional float attribute: `None` when absent.
    pub fn opt_float(&mut self, name: &str) -> Result<Option<F32>, IrError> {
        if self.items.iter().any(|(n, _)| n == name) {
            self.float(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Removes and returns the boolean attribute `name`.
    pub fn bool(&mut self, name: &str) -> Result<bool, IrError> {
        match self.take(name)? {
            Attr::Bool(v) => Ok(v),
            other => Err(self.bad(name, "true or false", &other)),
        }
    }

    /// An optional boolean attribute: `None` when absent.
    pub fn opt_bool(&mut self, name: &str) -> Result<Option<bool>, IrError> {
        if self.items.iter().any(|(n, _)| n == name) {
            self.bool(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Removes and returns the integer-list attribute `name`.
    pub fn ints(&mut self, name: &str) -> Result<Vec<i64>, IrError> {
        match self.take(name)? {
            Attr::Ints(v) => Ok(v),
            other => Err(self.bad(name, "a list of integers", &other)),
        }
    }

    /// Like [`AttrMap::ints`], also rejecting negative elements.
    pub fn usizes(&mut self, name: &str) -> Result<Vec<usize>, IrError> {
        let v = self.ints(name)?;
        v.iter().map(|&x| usize::try_from(x)).collect::<Result<Vec<_>, _>>().map_err(|_| IrError::Attr {
            op: self.op.clone(),
            msg: format!("attribute '{name}' must hold non-negative integers"),
        })
    }

    /// Removes and returns the float-list attribute `name` (`[]` reads as the empty list).
    pub fn floats(&mut self, name: &str) -> Result<Vec<F32>, IrError> {
        match self.take(name)? {
            Attr::Floats(v) => Ok(v.into_iter().map(F32::new).collect()),
            Attr::Ints(v) if v.is_empty() => Ok(vec![]),
            other => Err(self.bad(name, "a list of floats", &other)),
        }
    }

    /// Removes and returns the string attribute `name`.
    pub fn string(&mut self, name: &str) -> Result<String, IrError> {
        match self.take(name)? {
            Attr::Str(v) => Ok(v),
            other => Err(self.bad(name, "a string", &other)),
        }
    }

    /// Removes and returns the bare-identifier attribute `name` (e.g. an enum variant such as `nearest`).
    pub fn ident(&mut self, name: &str) -> Result<String, IrError> {
        match self.take(name)? {
            Attr::Ident(v) => Ok(v),
            other => Err(self.bad(name, "an identifier", &other)),
        }
    }

    /// An optional bare-identifier attribute: `None` when absent.
    pub fn opt_ident(&mut self, name: &str) -> Result<Option<String>, IrError> {
        if self.items.iter().any(|(n, _)| n == name) {
            self.ident(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An [`IrError::Attr`] for this op, for checks beyond an attribute's kind.
    pub fn error(&self, msg: impl Into<String>) -> IrError {
        IrError::Attr { op: self.op.clone(), msg: msg.into() }
    }

    /// Ends parsing: errors if an attribute was never taken (an unknown or misspelled name).
    pub fn finish(self) -> Result<(), IrError> {
        match self.items.first() {
            None => Ok(()),
            Some((n, _)) => Err(IrError::Attr { op: self.op, msg: format!("unknown attribute '{n}'") }),
        }
    }
}
