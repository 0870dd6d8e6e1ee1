//! The malformed-input catalogue: one tiny model per way a stranger's file
//! can be broken (made by `fixtures/malformed/make.py`). Each is checked
//! twice:
//! - through the library (`kerf_onnx::load_model`): the exact `ImportError`
//!   variant and a message naming the problem (and the node or tensor);
//! - through the `kerf inspect` CLI under `prlimit --as=1GiB` with a 10 s
//!   deadline: exit code 1, an `error: ` line, no panic text.
//!
//! Plus the structural stress cases: a 10,000-node chain imported, optimized
//! and compiled on a thread with the default 2 MiB stack, and an `If` nested
//! 1,000 levels deep.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod hardening_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hardening_common::kerf_limited;

use kerf_onnx::{load_model, ImportError, ImportOptions};

fn malformed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/malformed")
}

/// `kerf inspect FILE` is a clean user error naming `needles`.
fn cli_rejects(dir: &Path, file: &str, needles: &[&str]) {
    let r = kerf_limited(&["inspect", file], dir);
    assert_eq!(r.code, Some(1), "{file}: exit code (a signal means a crash or the 1 GiB limit): {}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{file}: {}", r.stderr);
    for bad in ["panicked", "RUST_BACKTRACE", "memory allocation", "attempt to"] {
        assert!(!r.stderr.contains(bad), "{file}: '{bad}' in: {}", r.stderr);
    }
    for n in needles {
        assert!(r.stderr.contains(n), "{file}: expected '{n}' in: {}", r.stderr);
    }
    assert!(r.elapsed < Duration::from_secs(10), "{file}: {:?}", r.elapsed);
}

fn import(dir: &Path, file: &str) -> Result<kerf_ir::Graph, ImportError> {
    load_model(&dir.join(file), &ImportOptions::default())
}

fn import_err(dir: &Path, file: &str) -> ImportError {
    match import(dir, file) {
        Ok(_) => panic!("{file}: import unexpectedly succeeded"),
        Err(e) => e,
    }
}

/// Library and CLI agree: `check` matches the variant, the message is
/// `msg` exactly, and the CLI prints it.
fn case(file: &str, check: impl Fn(&ImportError) -> bool, msg: &str) {
    let dir = malformed();
    let e = import_err(&dir, file);
    assert!(check(&e), "{file}: wrong variant {e:?}");
    assert_eq!(e.to_string(), msg, "{file}");
    cli_rejects(&dir, file, &[msg]);
}

fn is_model(e: &ImportError) -> bool {
    matches!(e, ImportError::Model(_))
}
fn is_protobuf(e: &ImportError) -> bool {
    matches!(e, ImportError::Protobuf(_))
}
fn is_tensor(name: &'static str) -> impl Fn(&ImportError) -> bool {
    move |e| matches!(e, ImportError::Tensor { name: n, .. } if n == name)
}
fn is_node(node: &'static str, op: &'static str) -> impl Fn(&ImportError) -> bool {
    move |e| matches!(e, ImportError::Node { node: n, op: o, .. } if n == node && o == op)
}

// ---- bytes that are not a model ----

#[test]
fn empty_file() {
    case("empty.onnx", is_model, "the file is empty: not an ONNX model");
}

#[test]
fn random_bytes() {
    case("random.onnx", is_protobuf, "malformed ONNX protobuf: Incorrect tag");
}

#[test]
fn truncated_protobuf() {
    case("truncated.onnx", is_protobuf, "malformed ONNX protobuf: Unexpected EOF");
}

#[test]
fn tensor_proto_is_not_a_model() {
    // A serialized TensorProto: its field 8 (name, a string) lands on
    // ModelProto field 8 (opset_import, a message) and fails to decode.
    case("tensor_proto.onnx", is_protobuf, "malformed ONNX protobuf: Invalid UTF-8 sequence");
}

#[test]
fn missing_graph() {
    case("no_graph.onnx", is_model, "model has no graph");
}

// ---- graph structure ----

#[test]
fn duplicate_value_names() {
    case("duplicate_names.onnx", is_model, "value 'y' is produced twice: by node 'r1' and by node 'n2'");
}

#[test]
fn node_reads_undefined_value() {
    case("undefined_input.onnx", is_node("r1", "Relu"), "node 'r1' (Relu): reads undefined value 'ghost'");
}

#[test]
fn cycle() {
    case(
        "cycle.onnx",
        is_node("add_a", "Add"),
        "node 'add_a' (Add): is on a cycle of nodes 'add_a', 'neg_b' (each needs another's output)",
    );
}

#[test]
fn output_nothing_produces() {
    case("dangling_output.onnx", is_model, "graph output 'z' is not produced by any node");
}

// ---- tensors ----

#[test]
fn raw_data_length_disagrees_with_dims() {
    case("raw_data_length.onnx", is_tensor("w"), "tensor 'w': raw_data has 12 bytes, f32[1, 4] needs 16");
}

#[test]
fn negative_dims() {
    case("dims_negative.onnx", is_tensor("w"), "tensor 'w': negative dimension in [-1, 4]");
}

#[test]
fn dims_product_overflows() {
    case(
        "dims_overflow.onnx",
        is_tensor("w"),
        "tensor 'w': dims [4611686018427387904, 4611686018427387904, 4] overflow",
    );
}

#[test]
fn dims_ask_for_terabytes() {
    // Rejected from the dims alone: the file is 111 bytes, and the 1 GiB
    // limit of the CLI run proves nothing was allocated for it.
    case(
        "dims_terabytes.onnx",
        is_tensor("w"),
        "tensor 'w': dims [1048576, 1048576] hold 1099511627776 elements, more than the limit of 2147483648",
    );
}

#[test]
fn input_dims_overflow() {
    case(
        "input_overflow.onnx",
        is_model,
        "input 'x' shape [4611686018427387904, 4611686018427387904, 16] is too large",
    );
}

#[test]
fn terabyte_activations_compile_without_allocating() {
    // 4 TiB activations are the caller's arena, not the compiler's memory:
    // compiling stays under the 1 GiB limit and reports the arena size.
    let dir = malformed();
    let out = std::env::temp_dir().join(format!("kerf-hardening-arena-{}.o", std::process::id()));
    let r = kerf_limited(
        &["compile", "arena_terabytes.onnx", "--target", "x86_64-unknown-linux-gnu", "-o", out.to_str().unwrap()],
        &dir,
    );
    let _ = std::fs::remove_file(&out);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("arena 4398046511104 B"), "{}", r.stderr);
}

#[test]
fn zero_stride() {
    case(
        "zero_stride.onnx",
        is_node("conv_z", "Conv"),
        "node 'conv_z' (Conv): kernel, strides and dilations must be positive",
    );
}

// ---- attributes, domains, versions ----

#[test]
fn attribute_of_the_wrong_type() {
    case(
        "attr_wrong_type.onnx",
        is_node("sm", "Softmax"),
        "node 'sm' (Softmax): attribute 'axis' must be an int, got a string",
    );
}

#[test]
fn attribute_given_twice() {
    case("attr_duplicate.onnx", is_model, "node 'sm' (Softmax) has attribute 'axis' twice");
}

#[test]
fn constant_gather_index_out_of_range() {
    case(
        "gather_index_out_of_range.onnx",
        is_node("ga", "Gather"),
        "node 'ga' (Gather): index 4 is out of range for axis 1 of size 4",
    );
}

#[test]
fn required_attribute_missing() {
    case("attr_missing.onnx", is_node("cat", "Concat"), "node 'cat' (Concat): missing required attribute 'axis'");
}

#[test]
fn unknown_domain() {
    case("unknown_domain.onnx", is_model, "node 'fz' (Fused) is in unknown domain 'com.example'");
}

#[test]
fn opset_newer_than_supported() {
    let msg = format!("model uses ai.onnx opset 99, newer than the newest supported opset {}", kerf_onnx::MAX_OPSET);
    case(
        "opset_too_new.onnx",
        |e| matches!(e, ImportError::OpsetTooNew { domain, opset: 99, max } if domain == "ai.onnx" && *max == kerf_onnx::MAX_OPSET),
        &msg,
    );
}

#[test]
fn ir_version_zero() {
    case("ir_version_0.onnx", is_model, "model has ir_version 0 (missing or not an ONNX model)");
}

// ---- external data ----

#[test]
fn external_data_absolute_location() {
    case(
        "ext_absolute.onnx",
        is_tensor("w"),
        "tensor 'w': external data location '/etc/passwd' must be a relative path",
    );
}

#[test]
fn external_data_dotdot() {
    case(
        "ext_dotdot.onnx",
        is_tensor("w"),
        "tensor 'w': external data location '../outside.bin' may not contain '..' or leave the model's folder",
    );
}

#[test]
fn external_data_past_end_of_file() {
    // w.bin has 16 bytes; the tensor asks for [8, 24).
    case(
        "ext_past_end.onnx",
        is_tensor("w"),
        "tensor 'w': external data [8, +16) runs past the end of 'w.bin' (16 bytes)",
    );
}

#[test]
fn external_data_symlink_leaving_the_folder() {
    // model/ext_symlink.onnx reads model/link.bin -> ../secret.bin.
    let root = std::env::temp_dir().join(format!("kerf-hardening-symlink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(root.join("secret.bin"), [0u8; 16]).unwrap();
    std::fs::copy(malformed().join("ext_symlink.onnx"), dir.join("ext_symlink.onnx")).unwrap();
    std::os::unix::fs::symlink("../secret.bin", dir.join("link.bin")).unwrap();
    let e = import_err(&dir, "ext_symlink.onnx");
    let msg = "tensor 'w': external data location 'link.bin' resolves outside the model's folder";
    assert!(is_tensor("w")(&e), "{e:?}");
    assert_eq!(e.to_string(), msg);
    cli_rejects(&dir, "ext_symlink.onnx", &[msg]);
    // The same link pointing inside the folder is accepted.
    std::fs::rename(root.join("secret.bin"), dir.join("inside.bin")).unwrap();
    std::fs::remove_file(dir.join("link.bin")).unwrap();
    std::os::unix::fs::symlink("inside.bin", dir.join("link.bin")).unwrap();
    assert!(import(&dir, "ext_symlink.onnx").is_ok());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn external_data_missing_file_names_the_cause_once() {
    // ext_symlink.onnx reads link.bin, which does not exist next to it in
    // the fixture folder. The CLI once printed the OS error twice (the
    // message includes its source, and the error chain repeated it).
    let dir = malformed();
    let e = import_err(&dir, "ext_symlink.onnx");
    assert!(matches!(e, ImportError::Io { .. }), "{e:?}");
    let r = kerf_limited(&["inspect", "ext_symlink.onnx"], &dir);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("link.bin"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("No such file or directory").count(), 1, "{}", r.stderr);
}

// ---- size and depth ----

/// Runs `f` on a thread with the default 2 MiB stack (what a user's
/// `std::thread::spawn` gets), so unbounded recursion would overflow it.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().expect("no stack overflow or panic")
}

#[test]
fn chain_of_10000_nodes_imports_optimizes_and_compiles_on_a_2mib_stack() {
    let path = malformed().join("chain_10000.onnx");
    let (nodes, opt_nodes, text) = on_small_stack(move || {
        let g = load_model(&path, &ImportOptions::default()).unwrap();
        let (o, _) = kerf_passes::optimize(&g, &kerf_passes::PassOptions::default()).unwrap();
        let art = kerf_targets::compile_object(
            &o,
            &kerf_targets::CompileOptions::new(
                kerf_targets::Target::parse("x86_64-unknown-linux-gnu", "baseline").unwrap(),
                "chain",
            ),
        )
        .unwrap();
        (g.nodes.len(), o.nodes.len(), art.report.text_bytes)
    });
    assert_eq!(nodes, 10_000);
    // Relu(Relu(x)) = Relu(x) may collapse the chain; either way a graph
    // with at least one node comes out and compiles.
    assert!((1..=10_000).contains(&opt_nodes), "{opt_nodes}");
    assert!(text > 0);
}

#[test]
fn if_nested_1000_deep_is_rejected_without_deep_recursion() {
    let path = malformed().join("nested_if_1000.onnx");
    let e = on_small_stack(move || load_model(&path, &ImportOptions::default()).map(|_| ()).unwrap_err().to_string());
    assert_eq!(e, "malformed ONNX protobuf: Over recursion limit");
    cli_rejects(&malformed(), "nested_if_1000.onnx", &["Over recursion limit"]);
}
