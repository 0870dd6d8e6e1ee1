//! The IR text format: deterministic printing and parsing.
//!
//! ```text
//! graph "tiny"
//!   input %0 "x": f32[1,4]
//!   const %1 "w": f32[3,4] = #5d41402abc4b2a76
//!   const %2 "b": f32[3] = [0.5,0.25,-1.0]
//!   %3 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%0, %1, %2): f32[1,3] @"fc"
//!   output "y" = %3
//! ```
//!
//! Values are renumbered on print (inputs, then constants in order of first
//! use, then node outputs), attributes print in each op's fixed order, and
//! weights of more than [`INLINE_LIMIT`] elements print as shape + content
//! hash. The parser accepts inline data, `fill(v)` and `iota(start,step)`
//! generators, and hashes that a [`WeightTable`] resolves, and re-checks every
//! declared type against inference.

use std::collections::HashMap;
use std::fmt::Write;

use crate::attr::{fmt_f32, Attr};
use crate::{
    DType, Graph, IrError, Op, Origin, Quant, Sparsity, Tensor, TensorType, ValueDef, ValueId, WeightGrid, WeightTable,
};

/// Weights with at most this many elements print their values.
pub const INLINE_LIMIT: usize = 8;

/// Prints a graph in the text format.
pub fn print(g: &Graph) -> String {
    let mut num: HashMap<ValueId, usize> = HashMap::new();
    let mut next = 0;
    let mut out = String::new();
    let _ = writeln!(out, "graph {:?}", g.name);
    for &i in &g.inputs {
        num.insert(i, next);
        let v = g.value(i);
        let _ = writeln!(out, "  input %{next} {:?}: {}", v.name, ty_text(g, &v.ty));
        next += 1;
    }
    let uses = g.nodes.iter().flat_map(|n| n.inputs.iter().copied()).chain(g.outputs.iter().map(|o| o.value));
    for v in uses {
        if num.contains_key(&v) {
            continue;
        }
        if let ValueDef::Const(w) = g.value(v).def {
            num.insert(v, next);
            let wt = g.weights.get(w);
            let (name, ty) = (&g.value(v).name, ty_text(g, &g.value(v).ty));
            let _ = writeln!(
                out,
                "  const %{next} {name:?}: {ty} = {}{}{}",
                const_text(&wt.tensor),
                layout_text(&wt.sparsity),
                grid_text(wt.grid.as_ref())
            );
            next += 1;
        }
    }
    for n in &g.nodes {
        let mut outs = Vec::new();
        for &o in &n.outputs {
            num.insert(o, next);
            outs.push(format!("%{next}"));
            next += 1;
        }
        let attrs: Vec<String> = n.op.attrs().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let attrs = if attrs.is_empty() { String::new() } else { format!("{{{}}}", attrs.join(", ")) };
        let ins: Vec<String> =
            n.inputs.iter().map(|i| format!("%{}", num.get(i).copied().unwrap_or(usize::MAX))).collect();
        let tys: Vec<String> = n.outputs.iter().map(|&o| ty_text(g, g.ty(o))).collect();
        let _ = writeln!(
            out,
            "  {} = {}{}({}): {} @{:?}",
            outs.join(", "),
            n.op.name(),
            attrs,
            ins.join(", "),
            tys.join(", "),
            n.name
        );
    }
    for o in &g.outputs {
        let _ = writeln!(out, "  output {:?} = %{}", o.name, num.get(&o.value).copied().unwrap_or(usize::MAX));
    }
    out
}

/// A type, with its grid when it has one:
/// `u8[1,4] quant(scale: f32[] = [0.05], zp: u8[] = [128])`, per channel
/// `i8[8,4] quant(axis=0, scale: f32[8] = #…, zp: i8[8] = [0,…])`.
fn ty_text(g: &Graph, ty: &TensorType) -> String {
    let Some(q) = &ty.quant else { return ty.to_string() };
    let param = |w| {
        let t = g.weights.tensor(w);
        format!("{} = {}", TensorType::new(t.dtype(), t.shape().to_vec()), const_text(t))
    };
    let axis = q.axis.map(|a| format!("axis={a}, ")).unwrap_or_default();
    format!("{ty} quant({axis}scale: {}, zp: {})", param(q.scale), param(q.zero_point))
}

/// A weight's int8 grid after its data and layout (nothing without one):
/// ` grid=int8(axis=0, scales=[…])`.
fn grid_text(g: Option<&WeightGrid>) -> String {
    let Some(g) = g else { return String::new() };
    let s: Vec<String> = g.scales.iter().map(|x| format!("{x:?}")).collect();
    format!(" grid=int8(axis={}, scales=[{}])", g.axis, s.join(","))
}

/// A weight's recorded layout after its data (nothing when dense):
/// ` layout=pattern(kernel=[3,3], masks=[…], kept=N)` (the assignment is
/// re-derived from the data on parse, see [`parse_layout`]),
/// ` layout=unstructured(nonzeros=N)`.
fn layout_text(s: &Sparsity) -> String {
    match s {
        Sparsity::Dense => String::new(),
        Sparsity::Pattern { kernel, patterns, assignment } => {
            let masks: Vec<String> = patterns.iter().map(u32::to_string).collect();
            let kept = assignment.iter().filter(|a| a.is_some()).count();
            format!(" layout=pattern(kernel=[{},{}], masks=[{}], kept={kept})", kernel[0], kernel[1], masks.join(","))
        }
        Sparsity::Unstructured { nonzeros } => format!(" layout=unstructured(nonzeros={nonzeros})"),
    }
}

fn const_text(t: &Tensor) -> String {
    if t.numel() > INLINE_LIMIT {
        return format!("#{}", t.content_hash());
    }
    let items: Vec<String> = (0..t.numel())
        .map(|i| match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => fmt_f32(t.get_f64(i) as f32),
            DType::F64 => format!("{:?}", t.get_f64(i)),
            _ => t.get_i64(i).to_string(),
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Val(usize),
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Hash(String),
    P(char),
}

fn lex(line: &str, ln: usize) -> Result<Vec<Tok>, IrError> {
    let perr = |msg: String| IrError::Parse { line: ln, msg };
    let cs: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut toks = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == ';' {
            break; // comment
        } else if c == '%' {
            let s = i + 1;
            i += 1;
            while i < cs.len() && cs[i].is_ascii_digit() {
                i += 1;
            }
            let t: String = cs[s..i].iter().collect();
            toks.push(Tok::Val(t.parse().map_err(|_| perr(format!("bad value name '%{t}'")))?));
        } else if c == '#' {
            let s = i + 1;
            i += 1;
            while i < cs.len() && cs[i].is_ascii_alphanumeric() {
                i += 1;
            }
            toks.push(Tok::Hash(cs[s..i].iter().collect()));
        } else if c == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                match cs.get(i) {
                    None => return Err(perr("unterminated string".into())),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let e = cs.get(i + 1).copied().unwrap_or(' ');
                        i += 2;
                        match e {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            '0' => s.push('\0'),
                            '\\' | '"' | '\'' => s.push(e),
                            'u' => {
                                // \u{XXXX}
                                let close = (i..cs.len())
                                    .find(|&k| cs[k] == '}')
                                    .ok_or_else(|| perr("bad \\u escape".into()))?;
                                let hex: String = cs[i + 1..close].iter().collect();
                                let ch = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or_else(|| perr(format!("bad \\u escape '{hex}'")))?;
                                s.push(ch);
                                i = close + 1;
                            }
                            _ => return Err(perr(format!("unknown escape '\\{e}'"))),
                        }
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Str(s));
        } else if c.is_ascii_digit() || (c == '-' && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == 'i')) {
            let s = i;
            i += 1;
            while i < cs.len()
                && (cs[i].is_ascii_alphanumeric()
                    || cs[i] == '.'
                    || ((cs[i] == '-' || cs[i] == '+') && matches!(cs[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let t: String = cs[s..i].iter().collect();
            if let Ok(v) = t.parse::<i64>() {
                toks.push(Tok::Int(v));
            } else if let Ok(v) = t.parse::<f64>() {
                toks.push(Tok::Float(v));
            } else {
                return Err(perr(format!("bad number '{t}'")));
            }
        } else if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_' || cs[i] == '.') {
                i += 1;
            }
            let t: String = cs[s..i].iter().collect();
            match t.as_str() {
                "inf" => toks.push(Tok::Float(f64::INFINITY)),
                // `NaN` as `{:?}` prints it
                "nan" | "NaN" => toks.push(Tok::Float(f64::NAN)),
                _ => toks.push(Tok::Ident(t)),
            }
        } else if "=,()[]{}:@".contains(c) {
            toks.push(Tok::P(c));
            i += 1;
        } else {
            return Err(perr(format!("unexpected character '{c}'")));
        }
    }
    Ok(toks)
}

struct Cursor {
    toks: Vec<Tok>,
    pos: usize,
    line: usize,
}

impl Cursor {
    fn err(&self, msg: impl Into<String>) -> IrError {
        IrError::Parse { line: self.line, msg: msg.into() }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn punct(&mut self, c: char) -> Result<(), IrError> {
        match self.next() {
            Some(Tok::P(p)) if p == c => Ok(()),
            other => Err(self.err(format!("expected '{c}', found {other:?}"))),
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::P(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn string(&mut self) -> Result<String, IrError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            other => Err(self.err(format!("expected a string, found {other:?}"))),
        }
    }
    fn val(&mut self) -> Result<usize, IrError> {
        match self.next() {
            Some(Tok::Val(v)) => Ok(v),
            other => Err(self.err(format!("expected a value like %3, found {other:?}"))),
        }
    }
    fn ident(&mut self) -> Result<String, IrError> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            other => Err(self.err(format!("expected a name, found {other:?}"))),
        }
    }
    /// A number; `NaN` and `inf` too (as `{:?}` prints them: the lexer
    /// makes them floats).
    fn number(&mut self) -> Result<f64, IrError> {
        match self.next() {
            Some(Tok::Int(v)) => Ok(v as f64),
            Some(Tok::Float(v)) => Ok(v),
            other => Err(self.err(format!("expected a number, found {other:?}"))),
        }
    }
    fn ty(&mut self) -> Result<TensorType, IrError> {
        let d = self.ident()?;
        let dtype = DType::from_name(&d).ok_or_else(|| self.err(format!("unknown dtype '{d}'")))?;
        self.punct('[')?;
        let mut shape = Vec::new();
        while !self.eat(']') {
            match self.next() {
                Some(Tok::Int(v)) if v >= 0 => shape.push(v as usize),
                other => return Err(self.err(format!("expected a dimension, found {other:?}"))),
            }
            self.eat(',');
        }
        Ok(TensorType::new(dtype, shape))
    }
    fn attr(&mut self) -> Result<Attr, IrError> {
        match self.next() {
            Some(Tok::Int(v)) => Ok(Attr::Int(v)),
            Some(Tok::Float(v)) => Ok(Attr::Float(v as f32)),
            Some(Tok::Str(s)) => Ok(Attr::Str(s)),
            Some(Tok::Ident(s)) if s == "true" => Ok(Attr::Bool(true)),
            Some(Tok::Ident(s)) if s == "false" => Ok(Attr::Bool(false)),
            Some(Tok::Ident(s)) => Ok(Attr::Ident(s)),
            Some(Tok::P('[')) => {
                let mut ints = Vec::new();
                let mut floats = Vec::new();
                let mut any_float = false;
                while !self.eat(']') {
                    match self.next() {
                        Some(Tok::Int(v)) => {
                            ints.push(v);
                            floats.push(v as f32);
                        }
                        Some(Tok::Float(v)) => {
                            any_float = true;
                            floats.push(v as f32);
                        }
                        other => return Err(self.err(format!("expected a number in list, found {other:?}"))),
                    }
                    self.eat(',');
                }
                Ok(if any_float { Attr::Floats(floats) } else { Attr::Ints(ints) })
            }
            other => Err(self.err(format!("expected an attribute value, found {other:?}"))),
        }
    }
}

/// Parses a graph whose weights are all inline or generated.
pub fn parse(text: &str) -> Result<Graph, IrError> {
    parse_with_weights(text, None)
}

/// Parses a graph; `#hash` weights are looked up in `table`.
pub fn parse_with_weights(text: &str, table: Option<&WeightTable>) -> Result<Graph, IrError> {
    let by_hash: HashMap<String, Tensor> =
        table.map(|t| t.iter().map(|(_, w)| (w.tensor.content_hash(), w.tensor.clone())).collect()).unwrap_or_default();
    let mut g: Option<Graph> = None;
    let mut vals: HashMap<usize, ValueId> = HashMap::new();
    for (li, raw) in text.lines().enumerate() {
        let ln = li + 1;
        let toks = lex(raw, ln)?;
        if toks.is_empty() {
            continue;
        }
        let mut c = Cursor { toks, pos: 0, line: ln };
        let head = c.peek().cloned();
        if head == Some(Tok::Ident("graph".into())) {
            c.next();
            if g.is_some() {
                return Err(c.err("a second 'graph' header"));
            }
            g = Some(Graph::new(c.string()?));
            continue;
        }
        let graph = g.as_mut().ok_or_else(|| c.err("expected 'graph \"name\"' first"))?;
        let define = |vals: &mut HashMap<usize, ValueId>, c: &Cursor, n: usize, v: ValueId| {
            if vals.insert(n, v).is_some() {
                return Err(c.err(format!("%{n} is defined twice")));
            }
            Ok(())
        };
        match head {
            Some(Tok::Ident(k)) if k == "input" => {
                c.next();
                let n = c.val()?;
                let name = c.string()?;
                c.punct(':')?;
                let ty = c.ty()?;
                let quant = parse_quant(&mut c, graph, &by_hash, &ty)?;
                let v = graph.add_input(name, TensorType { quant, ..ty });
                define(&mut vals, &c, n, v)?;
            }
            Some(Tok::Ident(k)) if k == "const" => {
                c.next();
                let n = c.val()?;
                let name = c.string()?;
                c.punct(':')?;
                let ty = c.ty()?;
                let quant = parse_quant(&mut c, graph, &by_hash, &ty)?;
                c.punct('=')?;
                let t = parse_const(&mut c, &ty, &by_hash)?;
                let layout = parse_layout(&mut c, &t)?;
                let grid = parse_grid(&mut c, &t)?;
                let v = graph.add_const(name, t, Origin::Initializer);
                if let ValueDef::Const(w) = graph.value(v).def {
                    graph.weights.get_mut(w).sparsity = layout;
                    graph.weights.get_mut(w).grid = grid;
                }
                graph.values[v.0 as usize].ty.quant = quant;
                define(&mut vals, &c, n, v)?;
            }
            Some(Tok::Ident(k)) if k == "output" => {
                c.next();
                let name = c.string()?;
                c.punct('=')?;
                let n = c.val()?;
                let v = *vals.get(&n).ok_or_else(|| c.err(format!("%{n} is not defined")))?;
                graph.add_output(name, v);
            }
            Some(Tok::Val(_)) => {
                for (n, v) in parse_node(&mut c, graph, &vals, &by_hash)? {
                    define(&mut vals, &c, n, v)?;
                }
            }
            other => return Err(c.err(format!("unexpected {other:?} at start of line"))),
        }
        if c.pos < c.toks.len() {
            return Err(c.err(format!("trailing {:?}", c.toks[c.pos])));
        }
    }
    let g = g.ok_or(IrError::Parse { line: 1, msg: "empty input".into() })?;
    g.validate()?;
    Ok(g)
}

/// A node line, `%3, %4 = Op{attrs}(%1, %2): types @"name"`: the node is
/// added to `g` (declared types checked against inference, their grids
/// kept); returns the text numbers with the values they name.
fn parse_node(
    c: &mut Cursor,
    g: &mut Graph,
    vals: &HashMap<usize, ValueId>,
    by_hash: &HashMap<String, Tensor>,
) -> Result<Vec<(usize, ValueId)>, IrError> {
    let mut outs = vec![c.val()?];
    while c.eat(',') {
        outs.push(c.val()?);
    }
    c.punct('=')?;
    let opname = c.ident()?;
    let mut attrs = Vec::new();
    if c.eat('{') {
        while !c.eat('}') {
            let k = c.ident()?;
            c.punct('=')?;
            attrs.push((k, c.attr()?));
            c.eat(',');
        }
    }
    let op = Op::from_parts(&opname, attrs).map_err(|e| c.err(e.to_string()))?;
    c.punct('(')?;
    let mut ins = Vec::new();
    while !c.eat(')') {
        let n = c.val()?;
        ins.push(*vals.get(&n).ok_or_else(|| c.err(format!("%{n} is not defined")))?);
        c.eat(',');
    }
    let mut declared = Vec::new();
    if c.eat(':') {
        loop {
            let ty = c.ty()?;
            let quant = parse_quant(c, g, by_hash, &ty)?;
            declared.push(TensorType { quant, ..ty });
            if !c.eat(',') {
                break;
            }
        }
    }
    let name = if c.eat('@') { c.string()? } else { format!("n{}", g.nodes.len()) };
    let results = g.add_node(name, op, ins).map_err(|e| c.err(e.to_string()))?;
    if results.len() != outs.len() {
        return Err(c.err(format!("{opname} produces {} values, {} named", results.len(), outs.len())));
    }
    for (k, d) in declared.iter().enumerate() {
        let got = g.ty(results[k]);
        if d.dtype != got.dtype || d.shape != got.shape {
            return Err(c.err(format!("declared type {d} but inference gives {got}")));
        }
        g.values[results[k].0 as usize].ty.quant = d.quant.clone();
    }
    Ok(outs.into_iter().zip(results).collect())
}

/// An optional `quant(…)` after type `ty` (see [`ty_text`]): the scale and
/// zero point become weights of `g`; the grid is checked against `ty`.
fn parse_quant(
    c: &mut Cursor,
    g: &mut Graph,
    by_hash: &HashMap<String, Tensor>,
    ty: &TensorType,
) -> Result<Option<Quant>, IrError> {
    if c.peek() != Some(&Tok::Ident("quant".into())) {
        return Ok(None);
    }
    c.next();
    c.punct('(')?;
    let mut axis = None;
    if c.peek() == Some(&Tok::Ident("axis".into())) {
        c.next();
        c.punct('=')?;
        match c.next() {
            Some(Tok::Int(a)) if a >= 0 => axis = Some(a as usize),
            other => return Err(c.err(format!("expected an axis, found {other:?}"))),
        }
        c.punct(',')?;
    }
    let mut param = |c: &mut Cursor, key: &str| -> Result<crate::WeightId, IrError> {
        let k = c.ident()?;
        if k != key {
            return Err(c.err(format!("expected '{key}' in quant(…), found '{k}'")));
        }
        c.punct(':')?;
        let pty = c.ty()?;
        c.punct('=')?;
        let t = parse_const(c, &pty, by_hash)?;
        Ok(g.weights.add(format!("quant.{key}"), t, Origin::Derived))
    };
    let scale = param(c, "scale")?;
    c.punct(',')?;
    let zero_point = param(c, "zp")?;
    c.punct(')')?;
    let q = Quant { axis, scale, zero_point };
    q.validate(ty.dtype, &ty.shape, &g.weights).map_err(|e| c.err(e.to_string()))?;
    Ok(Some(q))
}

/// An optional `layout=…` after a constant's data (see [`layout_text`]).
/// A pattern layout's assignment is re-derived from the data: each kernel
/// takes the listed mask equal to its non-zero positions, else the
/// smallest listed mask covering them; all-zero kernels count as removed
/// unless a kernel of that kind is needed to reach `kept`. The result is
/// checked ([`Sparsity::validate`]) and must keep `kept` kernels.
fn parse_layout(c: &mut Cursor, t: &Tensor) -> Result<Sparsity, IrError> {
    if c.peek() != Some(&Tok::Ident("layout".into())) {
        return Ok(Sparsity::Dense);
    }
    c.next();
    c.punct('=')?;
    let kind = c.ident()?;
    c.punct('(')?;
    let what = format!("layout={kind}");
    let field = |c: &mut Cursor, key: &str| keyed(c, key, &what);
    let count = |c: &Cursor, a: Attr| match a {
        Attr::Int(n) if n >= 0 => Ok(n as usize),
        other => Err(c.err(format!("expected a count, found {other}"))),
    };
    let ints = |c: &Cursor, a: Attr| match a {
        Attr::Ints(v) if v.iter().all(|&x| (0..=u32::MAX as i64).contains(&x)) => Ok(v),
        other => Err(c.err(format!("expected a list of non-negative integers, found {other}"))),
    };
    let s = match kind.as_str() {
        "unstructured" => {
            let nonzeros = field(c, "nonzeros").and_then(|a| count(c, a))?;
            Sparsity::Unstructured { nonzeros }
        }
        "pattern" => {
            let kernel = field(c, "kernel").and_then(|a| ints(c, a))?;
            let masks = field(c, "masks").and_then(|a| ints(c, a))?;
            let kept = field(c, "kept").and_then(|a| count(c, a))?;
            let [kh, kw] = kernel[..] else { return Err(c.err("a pattern kernel is [kh,kw]")) };
            let patterns: Vec<u32> = masks.iter().map(|&m| m as u32).collect();
            let assignment = assign_patterns(t, (kh * kw) as usize, &patterns, kept)
                .ok_or_else(|| c.err("the data does not fit the listed masks"))?;
            Sparsity::Pattern { kernel: [kh as usize, kw as usize], patterns, assignment }
        }
        other => return Err(c.err(format!("unknown layout '{other}' (pattern or unstructured)"))),
    };
    c.punct(')')?;
    s.validate(t).map_err(|e| c.err(e.to_string()))?;
    Ok(s)
}

/// `key=<attr>` inside `what(…)` (a weight's layout or grid), then an
/// optional comma.
fn keyed(c: &mut Cursor, key: &str, what: &str) -> Result<Attr, IrError> {
    let k = c.ident()?;
    if k != key {
        return Err(c.err(format!("expected '{key}' in {what}(…), found '{k}'")));
    }
    c.punct('=')?;
    let a = c.attr()?;
    c.eat(',');
    Ok(a)
}

/// An optional `grid=int8(axis=A, scales=[…])` (see [`grid_text`]); the
/// data must lie on it ([`WeightGrid::validate`]).
fn parse_grid(c: &mut Cursor, t: &Tensor) -> Result<Option<WeightGrid>, IrError> {
    if c.peek() != Some(&Tok::Ident("grid".into())) {
        return Ok(None);
    }
    c.next();
    c.punct('=')?;
    let kind = c.ident()?;
    if kind != "int8" {
        return Err(c.err(format!("unknown grid '{kind}' (int8)")));
    }
    c.punct('(')?;
    let key = |c: &mut Cursor, want: &str| keyed(c, want, "grid=int8");
    let axis = match key(c, "axis")? {
        Attr::Int(a) if a >= 0 => a as usize,
        other => return Err(c.err(format!("expected an axis, found {other}"))),
    };
    let scales = match key(c, "scales")? {
        Attr::Floats(v) => v.clone(),
        Attr::Ints(v) => v.iter().map(|&i| i as f32).collect(),
        other => return Err(c.err(format!("expected a list of scales, found {other}"))),
    };
    c.punct(')')?;
    let g = WeightGrid { axis, scales };
    g.validate(t).map_err(|e| c.err(e))?;
    Ok(Some(g))
}

/// The pattern assignment of `t`'s kernels (of `area` taps) to `patterns`
/// keeping `kept` kernels (see [`parse_layout`]); `None` when a kernel fits
/// no mask or the count cannot be met.
fn assign_patterns(t: &Tensor, area: usize, patterns: &[u32], kept: usize) -> Option<Vec<Option<u8>>> {
    if area == 0 || area > 32 || !t.numel().is_multiple_of(area) || patterns.is_empty() || patterns.len() > 256 {
        return None;
    }
    let kernels = t.numel() / area;
    let mask_of = |k: usize| (0..area).filter(|&p| t.get_f64(k * area + p) != 0.0).fold(0u32, |m, p| m | 1 << p);
    let fit = |m: u32| {
        patterns.iter().position(|&p| p == m).or_else(|| {
            (0..patterns.len()).filter(|&i| patterns[i] & m == m).min_by_key(|&i| (patterns[i].count_ones(), i))
        })
    };
    let mut out = Vec::with_capacity(kernels);
    let mut zeros = Vec::new();
    for k in 0..kernels {
        let m = mask_of(k);
        if m == 0 {
            zeros.push(k);
            out.push(None);
        } else {
            out.push(Some(fit(m)? as u8));
        }
    }
    let nonzero = kernels - zeros.len();
    let extra = kept.checked_sub(nonzero)?;
    if extra > zeros.len() {
        return None;
    }
    for &k in &zeros[..extra] {
        out[k] = Some(0);
    }
    Some(out)
}

fn parse_const(c: &mut Cursor, ty: &TensorType, by_hash: &HashMap<String, Tensor>) -> Result<Tensor, IrError> {
    let n = ty.numel();
    match c.next() {
        Some(Tok::Hash(h)) => {
            let t = by_hash.get(&h).ok_or_else(|| c.err(format!("no weight with hash #{h} is available")))?;
            if t.dtype() != ty.dtype || t.shape() != ty.shape.as_slice() {
                return Err(c.err(format!("weight #{h} is {}{:?}, declared {ty}", t.dtype(), t.shape())));
            }
            Ok(t.clone())
        }
        Some(Tok::P('[')) => {
            let mut v = Vec::new();
            while !c.eat(']') {
                v.push(c.number()?);
                c.eat(',');
            }
            if v.len() != n {
                return Err(c.err(format!("{} values for {ty}", v.len())));
            }
            Tensor::from_f64_values(ty.dtype, ty.shape.clone(), &v)
        }
        Some(Tok::Ident(f)) if f == "fill" => {
            c.punct('(')?;
            let x = c.number()?;
            c.punct(')')?;
            Tensor::splat(ty.dtype, ty.shape.clone(), x)
        }
        Some(Tok::Ident(f)) if f == "iota" => {
            c.punct('(')?;
            let start = c.number()?;
            c.punct(',')?;
            let step = c.number()?;
            c.punct(')')?;
            if n > 1 << 24 {
                return Err(c.err("iota constant too large"));
            }
            let v: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
            Tensor::from_f64_values(ty.dtype, ty.shape.clone(), &v)
        }
        other => Err(c.err(format!("expected constant data, found {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
graph "t"
  input %0 "x": f32[1,4]
  const %1 "w": f32[3,4] = iota(0.0, 0.5)
  const %2 "b": f32[3] = [0.5,0.25,-1.0]
  %3 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%0, %1, %2): f32[1,3] @"fc"
  %4, %5 = Split{axis=1, sizes=[1,2]}(%3): f32[1,1], f32[1,2] @"split"
  %6 = Relu(%5): f32[1,2] @"relu"
  output "y" = %6
  output "z" = %4
"#;

    #[test]
    fn round_trip_is_stable() {
        let g = parse(SRC).unwrap();
        let once = print(&g);
        let g2 = parse_with_weights(&once, Some(&g.weights)).unwrap();
        assert_eq!(print(&g2), once);
        assert!(once.contains("const %1 \"w\": f32[3,4] = #"), "{once}");
        assert!(once.contains("const %2 \"b\": f32[3] = [0.5,0.25,-1.0]"), "{once}");
    }

    /// Non-finite values as `{:?}` prints them (`NaN`, `inf`, `-inf`),
    /// in constants and in attributes alike.
    #[test]
    fn non_finite_values_parse() {
        let src = "graph \"g\"\n  input %0 \"x\": f32[3]\n  const %1 \"c\": f32[3] = [NaN,inf,-inf]\n  \
                   %2 = Clip{min=-inf, max=inf}(%0): f32[3] @\"c\"\n  %3 = Add(%2, %1): f32[3] @\"a\"\n  output \"y\" = %3\n";
        let g = parse(src).unwrap_or_else(|e| panic!("{e}"));
        let c = g.nodes.iter().find_map(|n| n.inputs.get(1).and_then(|&v| g.const_of(v))).unwrap().to_f32_vec();
        assert!(c[0].is_nan() && c[1] == f32::INFINITY && c[2] == f32::NEG_INFINITY, "{c:?}");
        let printed = print(&g);
        assert!(printed.contains("min=-inf, max=inf"), "{printed}");
        assert_eq!(print(&parse(&printed).unwrap_or_else(|e| panic!("{e}"))), printed);
        parse(&src.replace("min=-inf", "min=NaN")).unwrap_or_else(|e| panic!("NaN in an attribute: {e}"));
    }

    #[test]
    fn errors_name_the_line() {
        let bad = SRC.replace("f32[1,3] @\"fc\"", "f32[1,4] @\"fc\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains("line 6") && e.contains("inference gives f32[1,3]"), "{e}");
        let e = parse("graph \"g\"\n  %1 = Relu(%0)\n").unwrap_err().to_string();
        assert!(e.contains("%0 is not defined"), "{e}");
        let e = parse("graph \"g\"\n input %0 \"x\": f32[2]\n %1 = Relu{alpha=1.0}(%0)\n").unwrap_err().to_string();
        assert!(e.contains("unknown attribute 'alpha'"), "{e}");
        let e = parse("graph \"g\"\n input %0 \"x\": f32[2]\n const %1 \"w\": f32[9] = #00\n").unwrap_err().to_string();
        assert!(e.contains("no weight with hash #00"), "{e}");
    }

    #[test]
    fn every_op_round_trips_through_text() {
        use crate::op::*;
        use crate::F32;
        let w = Window { kernel: vec![3], strides: vec![1], dilations: vec![1], pads: vec![1, 1] };
        let ops = vec![
            Op::QConv(QConv {
                conv: Conv {
                    window: Window {
                        kernel: vec![3, 3],
                        strides: vec![2, 1],
                        dilations: vec![1, 2],
                        pads: vec![0, 0, 0, 0],
                    },
                    group: 2,
                    layer: crate::Layer("q".into()),
                    algo: ConvAlgo::Direct,
                },
                epi: Epilogue { act: Some(UnaryOp::Relu), residual: true },
                x_scale: F32::new(0.0125),
                x_zp: 200,
                out: QOut::Real,
                res_grid: Some(ResGrid { scale: F32::new(0.03125), zp: 17 }),
            }),
            Op::QConv(QConv {
                conv: Conv {
                    window: Window {
                        kernel: vec![1, 1],
                        strides: vec![1, 1],
                        dilations: vec![1, 1],
                        pads: vec![0, 0, 0, 0],
                    },
                    group: 1,
                    layer: crate::Layer("a".into()),
                    algo: ConvAlgo::Direct,
                },
                epi: Epilogue::default(),
                x_scale: F32::new(1.0),
                x_zp: 3,
                out: QOut::Acc,
                res_grid: None,
            }),
            Op::QConv(QConv {
                conv: Conv {
                    window: Window {
                        kernel: vec![3, 3],
                        strides: vec![1, 1],
                        dilations: vec![1, 1],
                        pads: vec![1, 1, 1, 1],
                    },
                    group: 4,
                    layer: crate::Layer("dw".into()),
                    algo: ConvAlgo::Direct,
                },
                epi: Epilogue { act: Some(UnaryOp::Clip { min: F32::new(0.0), max: F32::new(6.0) }), residual: false },
                x_scale: F32::new(0.5),
                x_zp: 7,
                out: QOut::Quant { scale: F32::new(0.0625), zp: 0 },
                res_grid: None,
            }),
            Op::Requantize { axis: 1, zp: -3, out: DType::I8 },
            Op::Quantize { scale: F32::new(0.05), zp: 128, pads: vec![0, 0, 1, 2, 0, 0, 2, 1] },
            Op::Unary(UnaryOp::Clip { min: F32::new(0.0), max: F32::new(6.0) }),
            Op::Unary(UnaryOp::Gelu { tanh: true }),
            Op::Unary(UnaryOp::HardSigmoid { alpha: F32::new(0.2), beta: F32::new(0.5) }),
            Op::Cast(DType::I64),
            Op::Conv(Conv {
                window: w.clone(),
                group: 2,
                layer: crate::Layer("c \"q\"".into()),
                algo: ConvAlgo::Direct,
            }),
            Op::Conv(Conv {
                window: Window {
                    kernel: vec![3, 3],
                    strides: vec![1, 1],
                    dilations: vec![1, 1],
                    pads: vec![1, 1, 1, 1],
                },
                group: 1,
                layer: crate::Layer("w".into()),
                algo: ConvAlgo::Winograd { tile: 4 },
            }),
            Op::AveragePool(Pool { window: w.clone(), ceil_mode: true, count_include_pad: true }),
            Op::Reduce { kind: ReduceKind::L2, axes: vec![0, 2], keepdims: true },
            Op::Slice { starts: vec![3, 0], ends: vec![-1, 4], steps: vec![-1, 2] },
            Op::Pad { pads: vec![1, 2], mode: PadMode::Reflect, value: F32::new(0.0) },
            Op::Resize(Resize {
                mode: ResizeMode::Nearest(NearestMode::Floor),
                coord: CoordMode::Asymmetric,
                cubic_coeff: F32::new(-0.75),
                exclude_outside: false,
                scales: vec![F32::new(1.0), F32::new(2.0)],
                sizes: vec![1, 8],
            }),
            Op::Lstm(Rnn {
                hidden: 8,
                direction: Direction::Bidirectional,
                activations: vec![
                    Activation::Sigmoid,
                    Activation::HardSigmoid(F32::new(0.2), F32::new(0.5)),
                    Activation::Tanh,
                ],
                clip: Some(F32::new(3.0)),
                linear_before_reset: false,
                input_forget: true,
                layer: crate::Layer("l".into()),
            }),
        ];
        for op in ops {
            let attrs: Vec<(String, Attr)> = op.attrs().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let text: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // through the lexer, as the parser sees it
            let line = format!("%1 = {}{{{}}}(%0)", op.name(), text.join(", "));
            let toks = lex(&line, 1).unwrap();
            let mut c = Cursor { toks, pos: 3, line: 1 };
            let mut parsed = Vec::new();
            if c.eat('{') {
                while !c.eat('}') {
                    let k = c.ident().unwrap();
                    c.punct('=').unwrap();
                    parsed.push((k, c.attr().unwrap()));
                    c.eat(',');
                }
            }
            assert_eq!(Op::from_parts(op.name(), parsed).unwrap(), op, "{line}");
        }
    }

    /// Integer values with their grids (per tensor on an input and a node
    /// output, per channel on a constant) and the two weight layouts.
    const COMPRESSED: &str = r#"
graph "q"
  input %0 "x": u8[1,4] quant(scale: f32[] = [0.05], zp: u8[] = [128])
  const %1 "w": i8[3,4] quant(axis=0, scale: f32[3] = [0.5,0.25,0.125], zp: i8[3] = [0,0,0]) = [1,2,3,4,5,6,7,8,9,10,11,12]
  const %2 "k": f32[2,1,3,3] = [0,1,0,0,2,0,0,0,0,0,0,0,0,0,0,0,0,0] layout=pattern(kernel=[3,3], masks=[18,146], kept=1)
  const %3 "u": f32[4] = [0,0.5,0,1] layout=unstructured(nonzeros=2) grid=int8(axis=0, scales=[0.5,0.5,0.5,0.5])
  %4 = Cast{to=i32}(%0): i32[1,4] @"c"
  %5 = Cast{to=u8}(%4): u8[1,4] quant(scale: f32[] = [0.05], zp: u8[] = [128]) @"q"
  %6 = Cast{to=f32}(%1): f32[3,4] @"cw"
  %7 = Relu(%2): f32[2,1,3,3] @"r"
  %8 = Relu(%3): f32[4] @"ru"
  output "y" = %5
  output "w" = %6
  output "k" = %7
  output "u" = %8
"#;

    #[test]
    fn weights_off_their_grid_are_errors() {
        let text = |w: &str, grid: &str| {
            format!("graph \"g\"\n  const %0 \"w\": f32[2] = {w} grid=int8({grid})\n  %1 = Relu(%0): f32[2] @\"r\"\n  output \"y\" = %1\n")
        };
        for (w, grid, want) in [
            ("[4.1,0]", "axis=0, scales=[0.5,0.5]", "element 0 (4.1) is not f32(q · 0.5)"),
            (
                "[64,0]",
                "axis=0, scales=[0.5,0.5]",
                "element 0 (64) is not f32(q · 0.5) for an integer q in [-128, 127]",
            ),
            ("[1,0]", "axis=0, scales=[0.5]", "1 grid scales for 2 channels"),
            ("[1,0]", "axis=1, scales=[0.5,0.5]", "grid axis 1 is out of range"),
            ("[0,0]", "axis=0, scales=[0,1]", "grid scale 0 is not positive"),
        ] {
            let e = parse(&text(w, grid)).unwrap_err().to_string();
            assert!(e.contains(want), "{w} {grid}: {e}");
        }
        assert!(parse(&text("[63.5,-0.5]", "axis=0, scales=[0.5,0.5]")).is_ok());
    }

    #[test]
    fn grids_and_layouts_round_trip() {
        let g = parse(COMPRESSED).unwrap();
        let once = print(&g);
        assert_eq!(once, print(&parse_with_weights(&once, Some(&g.weights)).unwrap()));
        let x = g.ty(g.inputs[0]).quant.clone().unwrap();
        let y = g.ty(g.outputs[0].value).quant.clone().unwrap();
        assert_ne!(x, y, "each annotation has its own weights");
        assert!(x.same_grid(&y, &g.weights));
        let w = g.nodes[2].inputs[0];
        assert_eq!(g.ty(w).quant.as_ref().map(|q| q.axis), Some(Some(0)));
        let k = g.weights.get(match g.value(g.nodes[3].inputs[0]).def {
            ValueDef::Const(w) => w,
            _ => unreachable!(),
        });
        // kernel 0 has taps {1, 4} (mask 18), kernel 1 is zero and removed
        assert_eq!(
            k.sparsity,
            Sparsity::Pattern { kernel: [3, 3], patterns: vec![18, 146], assignment: vec![Some(0), None] }
        );
        assert!(once.contains("layout=unstructured(nonzeros=2) grid=int8(axis=0, scales=[0.5,0.5,0.5,0.5])"), "{once}");
        let u = g.weights.get(match g.value(g.nodes[4].inputs[0]).def {
            ValueDef::Const(w) => w,
            _ => unreachable!(),
        });
        assert_eq!(u.grid.as_ref().map(|gr| gr.codes(&u.tensor)), Some(Ok(vec![0, 1, 0, 2])));
        // survives compaction (grids' weights are copied and renumbered)
        assert_eq!(print(&g.compact()), once);
    }

    #[test]
    fn bad_grids_and_layouts_are_errors() {
        let cases = [
            ("u8[1,4] quant(scale: f32[] = [0.05], zp: i8[] = [0])", "the zero point is i8, not u8"),
            ("u8[1,4] quant(axis=1, scale: f32[] = [0.05], zp: u8[] = [0])", "expected [4]"),
            ("u8[1,4] quant(axis=2, scale: f32[4] = fill(1), zp: u8[4] = fill(0))", "axis 2 is out of range"),
            ("f32[1,4] quant(scale: f32[] = [0.05], zp: f32[] = [0])", "only integer values carry a grid"),
        ];
        for (ty, msg) in cases {
            let src = format!("graph \"b\"\n  input %0 \"x\": {ty}\n  output \"y\" = %0\n");
            let e = parse(&src).unwrap_err().to_string();
            assert!(e.contains(msg) && e.contains("line 2"), "{ty}: {e}");
        }
        let layouts = [
            ("[0,1,0,1] layout=unstructured(nonzeros=1)", "2 non-zeros"),
            ("[0,1,0,0] layout=pattern(kernel=[2,2], masks=[1], kept=1)", "does not fit"),
            ("[0,1,0,0] layout=pattern(kernel=[2,2], masks=[2], kept=0)", "does not fit"),
            ("[0,1,0,0] layout=blocked(size=2)", "unknown layout 'blocked'"),
        ];
        for (data, msg) in layouts {
            let src = format!("graph \"b\"\n  const %0 \"w\": f32[1,1,2,2] = {data}\n  output \"y\" = %0\n");
            let e = parse(&src).unwrap_err().to_string();
            assert!(e.contains(msg), "{data}: {e}");
        }
    }
}
