//! Options shared by several subcommands.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kerf_ir::Graph;
use kerf_onnx::ImportOptions;

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

/// Loads a model with the user's `--input-shape` overrides.
pub fn load(path: &Path, shapes: &[(String, Vec<usize>)], name: Option<&str>) -> Result<Graph> {
    let mut input_shapes = BTreeMap::new();
    for (n, d) in shapes {
        if input_shapes.insert(n.clone(), d.clone()).is_some() {
            bail!("--input-shape given twice for '{n}'");
        }
    }
    let opts = ImportOptions { input_shapes, name: name.map(str::to_string), ..Default::default() };
    kerf_onnx::load_model(path, &opts).with_context(|| format!("cannot import '{}'", path.display()))
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
