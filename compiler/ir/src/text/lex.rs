//! The text format's tokens ([`Tok`], one line at a time: [`lex`]) and the
//! [`Cursor`] the parser reads them with (punctuation, names, numbers,
//! types and attribute values).

use crate::attr::Attr;
use crate::{DType, IrError, TensorType};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Val(usize),
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Hash(String),
    P(char),
}

pub(super) fn lex(line: &str, ln: usize) -> Result<Vec<Tok>, IrError> {
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

pub(super) struct Cursor {
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
    pub(super) line: usize,
}

impl Cursor {
    pub(super) fn err(&self, msg: impl Into<String>) -> IrError {
        IrError::Parse { line: self.line, msg: msg.into() }
    }
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    pub(super) fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    pub(super) fn punct(&mut self, c: char) -> Result<(), IrError> {
        match self.next() {
            Some(Tok::P(p)) if p == c => Ok(()),
            other => Err(self.err(format!("expected '{c}', found {other:?}"))),
        }
    }
    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::P(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn string(&mut self) -> Result<String, IrError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            other => Err(self.err(format!("expected a string, found {other:?}"))),
        }
    }
    pub(super) fn val(&mut self) -> Result<usize, IrError> {
        match self.next() {
            Some(Tok::Val(v)) => Ok(v),
            other => Err(self.err(format!("expected a value like %3, found {other:?}"))),
        }
    }
    pub(super) fn ident(&mut self) -> Result<String, IrError> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            other => Err(self.err(format!("expected a name, found {other:?}"))),
        }
    }
    /// A number; `NaN` and `inf` too (as `{:?}` prints them: the lexer
    /// makes them floats).
    pub(super) fn number(&mut self) -> Result<f64, IrError> {
        match self.next() {
            Some(Tok::Int(v)) => Ok(v as f64),
            Some(Tok::Float(v)) => Ok(v),
            other => Err(self.err(format!("expected a number, found {other:?}"))),
        }
    }
    pub(super) fn ty(&mut self) -> Result<TensorType, IrError> {
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
    pub(super) fn attr(&mut self) -> Result<Attr, IrError> {
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
