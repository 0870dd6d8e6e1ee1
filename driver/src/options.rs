//! Options shared by several subcommands, and the one way they become a
//! [`Session`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kerf_ir::Graph;
use kerf_pipeline::inputs::{read_named, read_specs, InputFile};
use kerf_pipeline::{Optimized, Session};

/// The model and how to import it (every subcommand).
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Fix a dynamic input shape: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_parser = parse_input_shape)]
    pub input_shape: Vec<(String, Vec<usize>)>,
    /// Fold an input as a constant: NAME=value.npy (repeatable). It leaves
    /// the compiled signature; for inputs that decide shapes or branches
    /// (Reshape's shape, Slice's starts, an `If` condition).
    #[arg(long = "bind", value_name = "NAME=FILE")]
    pub bind: Vec<String>,
}

impl ModelArgs {
    /// A session for this model (host target, baseline CPU until the caller
    /// sets one), with its shapes and bound inputs.
    pub fn session(&self) -> Result<Session> {
        let mut s = Session::new(&self.model);
        for (input, dims) in &self.input_shape {
            s = s.input_shape(input, dims);
        }
        for (input, value) in read_named("--bind", &self.bind)? {
            s = s.bind(&input, value);
        }
        Ok(s)
    }
}

/// Reads `--input` specs for the model's inputs and gives them to the
/// session: their shapes fix dynamic dimensions, and inputs the model needs
/// constant are bound to them.
pub fn with_input_files(session: Session, specs: &[String]) -> Result<(Session, Vec<InputFile>)> {
    let names = session.model_inputs()?;
    let files = read_specs(specs, &names)?;
    let data = files.iter().map(|f| (f.name.clone(), f.tensor.clone())).collect();
    Ok((session.input_data(data), files))
}

/// Says which inputs were bound from their files because the model needs them constant.
pub fn note_bound(session: &Session, g: &Graph, files: &[InputFile]) {
    for name in session.auto_bound(g) {
        let from = files.iter().find(|f| f.name == name).map(|f| f.path.display().to_string()).unwrap_or_default();
        eprintln!("note: input '{name}' bound to its value from '{from}' (the model needs it constant; --bind does this explicitly)");
    }
}

/// Parses `name=1,3,224,224`.
pub fn parse_input_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s.rsplit_once('=').ok_or_else(|| format!("expected NAME=D0,D1,..., got '{s}'"))?;
    if name.is_empty() {
        return Err(format!("missing input name in '{s}'"));
    }
    let dims = dims
        .split(',')
        .map(|d| d.trim().parse::<usize>().map_err(|_| format!("'{d}' is not a dimension in '{s}'")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

/// Prints the optimize stage's warnings (rule groups stopped on a limit).
pub fn warn(o: &Optimized) {
    for w in o.warnings() {
        eprintln!("warning: {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes_parse() {
        assert_eq!(parse_input_shape("x=1,3,224,224").unwrap(), ("x".into(), vec![1, 3, 224, 224]));
        assert_eq!(parse_input_shape("a=b=2").unwrap(), ("a=b".into(), vec![2]));
        assert!(parse_input_shape("x=1,-3").unwrap_err().contains("'-3'"));
        assert!(parse_input_shape("x").is_err());
        assert!(parse_input_shape("=1").is_err());
    }
}
