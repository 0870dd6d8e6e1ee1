//! Parsing the text format back into a [`Graph`]: lines of tokens into
//! inputs, constants (inline, generated or by hash), nodes and outputs,
//! every declared type re-checked against inference.

use std::collections::HashMap;

use super::lex::{lex, Cursor, Tok};
use crate::attr::Attr;
use crate::{
    Graph, IrError, Op, Origin, Quant, Sparsity, Tensor, TensorType, ValueDef, ValueId, WeightGrid, WeightTable,
};

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
                let (n, name, ty, quant) = declaration(&mut c, graph, &by_hash)?;
                let v = graph.add_input(name, TensorType { quant, ..ty });
                define(&mut vals, &c, n, v)?;
            }
            Some(Tok::Ident(k)) if k == "const" => {
                let (n, name, ty, quant) = declaration(&mut c, graph, &by_hash)?;
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

/// A declared value: its number, name, type and grid.
type Declaration = (usize, String, TensorType, Option<Quant>);

/// The head of an `input` or `const` line after its keyword: `%N "name":
/// type`, then an optional `quant(…)` ([`parse_quant`]).
fn declaration(c: &mut Cursor, g: &mut Graph, by_hash: &HashMap<String, Tensor>) -> Result<Declaration, IrError> {
    c.next();
    let n = c.val()?;
    let name = c.string()?;
    c.punct(':')?;
    let ty = c.ty()?;
    let quant = parse_quant(c, g, by_hash, &ty)?;
    Ok((n, name, ty, quant))
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

/// An optional `quant(…)` after type `ty` (see [`ty_text`](super::ty_text)): the scale and
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

/// An optional `layout=…` after a constant's data (see [`layout_text`](super::layout_text)).
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

/// An optional `grid=int8(axis=A, scales=[…])` (see [`grid_text`](super::grid_text)); the
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
