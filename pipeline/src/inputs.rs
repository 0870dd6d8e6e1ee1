//! Model inputs from `.npy` files: which file feeds which input, and the
//! checks that a file holds what the input takes.
//!
//! A spec is `NAME=path` (by input name) or `path` (the next input not yet
//! given, in the model's order); a `=` inside an existing file's name is part
//! of the path. The same rules serve `--input` and `--expect` (outputs).

use std::path::{Path, PathBuf};

use kerf_ir::{Graph, Tensor};

use crate::{npy, PipelineError};

/// What to do with an input no spec names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// An error naming the input (`kerf run`).
    Error,
    /// A tensor of zeros (`kerf bench`).
    Zeros,
}

/// Splits `NAME=path` or `path` into (name, path).
fn named(s: &str) -> (Option<String>, PathBuf) {
    if Path::new(s).exists() {
        return (None, PathBuf::from(s));
    }
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() => (Some(n.to_string()), PathBuf::from(p)),
        _ => (None, PathBuf::from(s)),
    }
}

/// Assigns files to the model's tensors (`what`: "input" or "output") by
/// name, or positionally; one entry per name.
pub fn assign(what: &str, specs: &[String], names: &[String]) -> Result<Vec<Option<PathBuf>>, PipelineError> {
    let mut out = vec![None; names.len()];
    let mut next = 0;
    for s in specs {
        let (n, p) = named(s);
        let idx = match n {
            Some(n) => names.iter().position(|x| *x == n).ok_or_else(|| {
                PipelineError::Config(format!("the model has no {what} named '{n}' (it has: {})", names.join(", ")))
            })?,
            None => {
                while next < names.len() && out[next].is_some() {
                    next += 1;
                }
                if next >= names.len() {
                    return Err(PipelineError::Config(format!(
                        "more {what} files than the model's {} {what}s",
                        names.len()
                    )));
                }
                next
            }
        };
        if out[idx].is_some() {
            return Err(PipelineError::Config(format!("{what} '{}' given twice", names[idx])));
        }
        out[idx] = Some(p);
    }
    Ok(out)
}

/// A tensor read from a file for a named model input.
#[derive(Clone, Debug)]
pub struct InputFile {
    /// The model input it feeds.
    pub name: String,
    /// Where it came from (for messages).
    pub path: PathBuf,
    /// Its contents.
    pub tensor: Tensor,
}

/// Reads the files `specs` assign to the model inputs `names` (see
/// [`assign`]); inputs no spec names are left out.
pub fn read_specs(specs: &[String], names: &[String]) -> Result<Vec<InputFile>, PipelineError> {
    let files = assign("input", specs, names)?;
    let mut out = Vec::new();
    for (name, f) in names.iter().zip(files) {
        if let Some(path) = f {
            let tensor = npy::read(&path)?;
            out.push(InputFile { name: name.clone(), path, tensor });
        }
    }
    Ok(out)
}

/// Reads `NAME=file.npy` specs (every one named) for `--bind`.
pub fn read_named(what: &str, specs: &[String]) -> Result<Vec<(String, Tensor)>, PipelineError> {
    specs
        .iter()
        .map(|s| match s.split_once('=') {
            Some((n, p)) if !n.is_empty() => Ok((n.to_string(), npy::read(Path::new(p))?)),
            _ => Err(PipelineError::Config(format!("{what} '{s}': expected NAME=FILE.npy"))),
        })
        .collect()
}

/// The graph's input tensors, in order, from `files`; inputs without a
/// file are an error or zeros per `missing`. Each file must hold exactly
/// the input's dtype and shape. Files for names that are no longer graph
/// inputs (bound as constants at import) are not used.
pub fn arrange(g: &Graph, files: &[InputFile], missing: Missing) -> Result<Vec<Tensor>, PipelineError> {
    let mut out = Vec::with_capacity(g.inputs.len());
    for (i, &v) in g.inputs.iter().enumerate() {
        let name = &g.value(v).name;
        let want = g.ty(v);
        let t = match (files.iter().find(|f| f.name == *name), missing) {
            (Some(f), _) => {
                let x = &f.tensor;
                if x.dtype() != want.dtype || x.shape() != want.shape.as_slice() {
                    return Err(PipelineError::Input {
                        input: name.clone(),
                        msg: format!("must be {want} but '{}' holds {}{:?}", f.path.display(), x.dtype(), x.shape()),
                    });
                }
                x.clone()
            }
            (None, Missing::Error) => {
                return Err(PipelineError::Input {
                    input: name.clone(),
                    msg: format!("missing: give it with --input {name}=FILE.npy (input {i}, {want})"),
                })
            }
            (None, Missing::Zeros) => Tensor::from_bytes(want.dtype, want.shape.clone(), vec![0u8; want.bytes()])
                .map_err(|e| PipelineError::Input { input: name.clone(), msg: e.to_string() })?,
        };
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specs_assign_by_name_then_position() {
        let n = names(&["a", "b", "c"]);
        let specs = vec!["b=/nonexistent/x.npy".to_string(), "/nonexistent/y.npy".into()];
        let got = assign("input", &specs, &n).unwrap();
        assert_eq!(got[0].as_deref(), Some(Path::new("/nonexistent/y.npy")));
        assert_eq!(got[1].as_deref(), Some(Path::new("/nonexistent/x.npy")));
        assert_eq!(got[2], None);
    }

    #[test]
    fn bad_specs_are_errors_naming_what() {
        let n = names(&["a"]);
        let e = assign("input", &["z=/nonexistent/x.npy".into()], &n).unwrap_err().to_string();
        assert!(e.contains("no input named 'z'") && e.contains("it has: a"), "{e}");
        let e = assign("input", &["/n/x.npy".into(), "/n/y.npy".into()], &n).unwrap_err().to_string();
        assert!(e.contains("more input files"), "{e}");
        let e = assign("output", &["a=/n/x.npy".into(), "a=/n/y.npy".into()], &n).unwrap_err().to_string();
        assert!(e.contains("output 'a' given twice"), "{e}");
    }
}
