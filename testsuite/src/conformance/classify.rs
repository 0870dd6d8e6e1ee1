//! Reason tags for failing cases.
//!
//! A failing case gets the most fundamental reason that applies, so the
//! coverage report says what would have to change for it to pass:
//! 1. facts about the case itself, from `index.json` ([`structural_tag`]):
//!    `training` (ai.onnx.preview.training ops), `domain:<d>` (other
//!    non-default domains), `type:<sequence|map|optional|sparse>` (non-tensor
//!    graph I/O), `dtype:<string|complex|...>` (element types kerf's IR
//!    does not have), `op:<Loop|If|Scan|...>` (control flow and sequence ops,
//!    out of scope for a static-graph compiler);
//! 2. the first stage that failed: `unsupported-op:<Op>` (frontend has no
//!    converter), `data-dependent-shape:<Op>` / `random:<Op>` (ops kerf
//!    declines by design, `kerf_onnx::declined_reason`), `dynamic-shape` (a shape depends on runtime data),
//!    `const-input:<Op>` (a non-shape input the frontend needs constant),
//!    `import:<Op>` (frontend rejects this variant), `opset`, `io-mismatch`,
//!    `passes`, `codegen:<Op>` (backend cannot compile the node), `exec`,
//!    `mismatch` (ran, wrong numbers/shape/dtype).

use kerf_onnx::ImportError;

use super::exec::ExecError;
use crate::cases::CaseInfo;

/// Ops a static-shape AOT compiler does not take on: control flow with
/// subgraphs and the sequence/optional family.
const OUT_OF_SCOPE_OPS: &[&str] = &[
    "Loop",
    "If",
    "Scan",
    "SequenceMap",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceErase",
    "SequenceInsert",
    "SequenceLength",
    "SplitToSequence",
    "ConcatFromSequence",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
];

/// The tag for an ONNX element type name kerf's IR cannot hold, if any.
pub fn dtype_tag(onnx_type: &str) -> Option<&'static str> {
    let t = onnx_type.to_ascii_uppercase();
    Some(match t.as_str() {
        "STRING" => "dtype:string",
        "COMPLEX64" | "COMPLEX128" => "dtype:complex",
        "UNDEFINED" => "dtype:undefined",
        // float8, float4 and the 4/2-bit ints are IR dtypes (kerf_ir::narrow)
        _ => return None,
    })
}

fn domain_of(op: &str) -> Option<&str> {
    op.rsplit_once('.').map(|(d, _)| d)
}

/// A reason that follows from the case itself, whatever kerf does.
pub fn structural_tag(info: &CaseInfo) -> Option<String> {
    let all_ops = info.op.iter().chain(&info.ops);
    let domains: Vec<&str> = all_ops.clone().filter_map(|o| domain_of(o)).collect();
    if domains.iter().any(|d| d.starts_with("ai.onnx.preview.training")) {
        return Some("training".into());
    }
    if let Some(d) = domains.first() {
        return Some(format!("domain:{d}"));
    }
    for kind in ["sequence", "map", "optional", "sparse"] {
        if info.io.iter().any(|t| t == kind) {
            return Some(format!("type:{kind}"));
        }
    }
    if let Some(tag) = info.io.iter().find_map(|t| dtype_tag(t)) {
        return Some(tag.to_string());
    }
    let scope_op = all_ops.clone().find(|o| OUT_OF_SCOPE_OPS.contains(&o.as_str()));
    scope_op.map(|o| format!("op:{o}"))
}

/// The `dtype:` tag for an element type kerf's IR has no dtype for, from
/// the frontend's structured error (`kind` is its name: `float8`, `int4`, ...).
fn dtype_kind_tag(kind: &str) -> String {
    let upper = kind.to_ascii_uppercase();
    let name = match upper.as_str() {
        "FLOAT4" => "FLOAT4E2M1",
        "COMPLEX128" | "COMPLEX64" => "COMPLEX64",
        u if u.starts_with("FLOAT8") => "FLOAT8",
        u => u,
    };
    match dtype_tag(name) {
        Some(t) => t.to_string(),
        // Tags are one word ("unknown type 42" is not).
        None if kind.contains(char::is_whitespace) => "dtype:unknown".into(),
        None => format!("dtype:{kind}"),
    }
}

/// The tag for a failure to read a test-data tensor.
pub fn data_tag(e: &ImportError) -> String {
    match e {
        ImportError::UnsupportedElementType { kind, .. } => dtype_kind_tag(kind),
        _ => "data".into(),
    }
}

/// The tag for an import failure.
pub fn import_tag(e: &ImportError) -> String {
    match e {
        ImportError::UnsupportedElementType { kind, .. } => dtype_kind_tag(kind),
        // The first op the model uses that has no converter.
        ImportError::Unsupported(list) => list.first().map_or_else(
            || "unsupported-op".into(),
            |u| match kerf_onnx::declined_reason(&u.op) {
                Some(why) if why.contains("shape") => format!("data-dependent-shape:{}", u.op),
                Some(_) => format!("random:{}", u.op),
                None => format!("unsupported-op:{}", u.op),
            },
        ),
        ImportError::NonConstantInput { op, input, .. } if shapes_result(op, input) => "dynamic-shape".into(),
        ImportError::NonConstantInput { op, .. } => format!("const-input:{op}"),
        ImportError::OpsetTooNew { .. } => "opset".into(),
        ImportError::Node { op, .. } => format!("import:{op}"),
        ImportError::Ir(kerf_ir::IrError::Node { op, .. }) => format!("import:{op}"),
        ImportError::Model(m) => {
            if let Some(op) = unsupported_output_of(m) {
                format!("import:{op}")
            } else if m.contains("dynamic dimension") || m.contains("no declared shape") {
                "dynamic-shape".into()
            } else if let Some(kind) = ["a sequence", "a map", "an optional", "a sparse tensor"]
                .iter()
                .find(|k| m.contains(&format!("is {k}")))
            {
                format!("type:{}", kind.rsplit(' ').next().unwrap_or("other"))
            } else {
                "import".into()
            }
        }
        ImportError::Protobuf(_) => "protobuf".into(),
        _ => "import".into(),
    }
}

/// Whether a runtime value in input `name` of `op` would make a result's shape
/// data-dependent. Inputs the frontend needs constant that do not shape
/// anything (Clip's bounds, Trilu's diagonal, ...) are a missing feature
/// (`const-input:<Op>`), not a dynamic shape.
fn shapes_result(op: &str, name: &str) -> bool {
    const VALUE_INPUTS: &[(&str, &str)] = &[
        ("Clip", "min"),
        ("Clip", "max"),
        ("Dropout", "ratio"),
        ("Dropout", "training_mode"),
        ("LSTM", "sequence_lens"),
        ("GRU", "sequence_lens"),
        ("RNN", "sequence_lens"),
        ("Trilu", "k"),
    ];
    const VALUE_NAMES: &[&str] = &["alpha", "beta", "bias", "scale"];
    !(VALUE_INPUTS.contains(&(op, name)) || VALUE_NAMES.contains(&name))
}

/// The op in "graph output 'z' is output 1 of node 'n' (Op), which is not supported".
fn unsupported_output_of(msg: &str) -> Option<&str> {
    let head = msg.strip_suffix("), which is not supported")?;
    head.rsplit_once(" (").map(|(_, op)| op)
}

/// The tag for an execution-stage failure.
pub fn exec_tag(e: &ExecError) -> String {
    match e {
        ExecError::Unsupported { op, .. } => format!("codegen:{op}"),
        ExecError::Failed { op, .. } if !op.is_empty() => format!("exec:{op}"),
        _ => "exec".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(op: &str, ops: &[&str], io: &[&str]) -> CaseInfo {
        CaseInfo {
            op: Some(op.into()),
            ops: ops.iter().map(|s| s.to_string()).collect(),
            io: io.iter().map(|s| s.to_string()).collect(),
            ..CaseInfo::default()
        }
    }

    #[test]
    fn structural_tags_in_priority_order() {
        assert_eq!(structural_tag(&info("Add", &["Add"], &["FLOAT"])), None);
        assert_eq!(
            structural_tag(&info("ai.onnx.preview.training.Adam", &["ai.onnx.preview.training.Adam"], &["FLOAT"])),
            Some("training".into())
        );
        assert_eq!(
            structural_tag(&info("ai.onnx.ml.LabelEncoder", &["ai.onnx.ml.LabelEncoder"], &["STRING"])),
            Some("domain:ai.onnx.ml".into())
        );
        assert_eq!(
            structural_tag(&info("SequenceAt", &["SequenceAt"], &["INT64", "sequence"])),
            Some("type:sequence".into())
        );
        assert_eq!(structural_tag(&info("Cast", &["Cast"], &["FLOAT", "FLOAT8E4M3FN"])), None);
        assert_eq!(structural_tag(&info("Cast", &["Cast"], &["FLOAT", "STRING"])), Some("dtype:string".into()));
        assert_eq!(structural_tag(&info("Loop", &["Loop"], &["FLOAT", "INT64"])), Some("op:Loop".into()));
    }

    #[test]
    fn import_errors_map_to_tags() {
        use kerf_onnx::{TypeSite, UnsupportedOp};
        let u = |op: &str| UnsupportedOp { op: op.into(), nodes: vec!["n".into()] };
        let e = ImportError::Unsupported(vec![u("NonZero"), u("Foo")]);
        assert_eq!(import_tag(&e), "data-dependent-shape:NonZero");
        let e = ImportError::Unsupported(vec![u("Foo"), u("NonZero")]);
        assert_eq!(import_tag(&e), "unsupported-op:Foo");
        assert_eq!(import_tag(&ImportError::Unsupported(vec![u("Bernoulli")])), "random:Bernoulli");
        let nc = |op: &str, input: &str| ImportError::NonConstantInput {
            node: "n".into(),
            op: op.into(),
            input: input.into(),
            value: "v".into(),
        };
        assert_eq!(import_tag(&nc("Reshape", "shape")), "dynamic-shape");
        assert_eq!(import_tag(&nc("Clip", "min")), "const-input:Clip");
        assert_eq!(import_tag(&nc("Trilu", "k")), "const-input:Trilu");
        assert_eq!(import_tag(&nc("TopK", "k")), "dynamic-shape");
        let e = ImportError::OpsetTooNew { domain: "ai.onnx".into(), opset: 29, max: 28 };
        assert_eq!(import_tag(&e), "opset");
        let e = ImportError::Model(
            "graph output 'z' is output 1 of node 'maxpool_0' (MaxPool), which is not supported".into(),
        );
        assert_eq!(import_tag(&e), "import:MaxPool");
        let e = ImportError::Node { node: "c".into(), op: "Conv".into(), msg: "bad pads".into() };
        assert_eq!(import_tag(&e), "import:Conv");
        let ty = |kind: &str, code: i32| ImportError::UnsupportedElementType {
            site: TypeSite::Tensor,
            name: "x".into(),
            code,
            kind: kind.into(),
        };
        assert_eq!(import_tag(&ty("float8", 17)), "dtype:float8");
        assert_eq!(import_tag(&ty("string", 8)), "dtype:string");
        assert_eq!(data_tag(&ty("float4", 23)), "dtype:float4");
        assert_eq!(data_tag(&ty("complex128", 15)), "dtype:complex");
        let e = ImportError::Model("input 'x' is a sequence; only tensor inputs are supported".into());
        assert_eq!(import_tag(&e), "type:sequence");
    }
}
