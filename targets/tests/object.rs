#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Object, archive and header artifacts: no undefined symbols on every
//! triple/CPU, no `fmaf` on haswell, byte-identical output when compiled
//! twice, and cross-compiled objects linked into `c/harness.c`, run natively
//! or under qemu, matching the JIT within |d| <= 1e-5 + 1e-4 * max|ref|.

mod common;
use common::cross::{Cross, AARCH64, RISCV64};
use std::path::{Path, PathBuf};
use std::process::Command;

use kerf_targets::archive::write_archive;
use kerf_targets::{compile_object, jit_compile, CompileOptions};
use object::{Object, ObjectSymbol};

/// A small CNN touching most kernel families, with odd sizes.
const MODEL: &str = r#"graph "small"
  input %0 "x": f32[1,3,7,9]
  const %1 "w1": f32[6,3,3,3] = iota(-0.4, 0.005)
  const %2 "b1": f32[6] = [0.1,-0.2,0.3,0.0,0.05,-0.1]
  %3 = Conv{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer="c1"}(%0, %1, %2): f32[1,6,7,9] @"c1"
  %4 = Relu(%3): f32[1,6,7,9] @"r1"
  const %5 "w2": f32[6,1,3,3] = iota(0.3, -0.01)
  %6 = Conv{kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], group=6, layer="dw"}(%4, %5): f32[1,6,4,5] @"dw"
  %7 = MaxPool{kernel=[2,2], strides=[2,2], dilations=[1,1], pads=[0,0,0,0], ceil_mode=true}(%6): f32[1,6,2,3] @"mp"
  %8 = Reshape{shape=[1,36]}(%7): f32[1,36] @"flat"
  const %9 "w3": f32[5,36] = iota(-0.2, 0.003)
  const %10 "b3": f32[5] = [0.0,0.1,0.2,0.3,0.4]
  %11 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%8, %9, %10): f32[1,5] @"fc"
  %12 = Sigmoid(%11): f32[1,5] @"sig"
  %13 = Softmax{axis=1}(%12): f32[1,5] @"sm"
  output "y" = %13
  output "z" = %11
"#;

fn graph() -> kerf_ir::Graph {
    kerf_ir::text::parse(MODEL).unwrap()
}

const TARGETS: [(&str, &[&str]); 3] = [
    ("x86_64-unknown-linux-gnu", &["baseline", "haswell", "sapphirerapids"]),
    ("aarch64-unknown-linux-gnu", &["baseline", "dotprod"]),
    ("riscv64gc-unknown-linux-gnu", &["rv64gc", "v"]),
];

fn undefined(obj: &[u8]) -> Vec<String> {
    let f = object::File::parse(obj).unwrap();
    f.symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        .map(|s| s.name().unwrap().to_string())
        .collect()
}

fn exported(obj: &[u8]) -> Vec<String> {
    let f = object::File::parse(obj).unwrap();
    let mut v: Vec<String> =
        f.symbols().filter(|s| s.is_global() && s.is_definition()).map(|s| s.name().unwrap().to_string()).collect();
    v.sort();
    v
}

/// Every preset of every ISA (`isa::ISAS`, so a new preset is covered).
#[test]
fn no_undefined_symbols_anywhere() {
    let g = graph();
    for isa in kerf_targets::isa::ISAS {
        let triple = isa.triple;
        for &(cpu, _) in isa.presets {
            let a = compile_object(&g, &CompileOptions::parse(triple, cpu, "small").unwrap()).unwrap();
            let u = undefined(&a.object);
            assert!(u.is_empty(), "{triple}/{cpu}: undefined symbols {u:?}");
            assert_eq!(exported(&a.object), vec!["small_describe".to_string(), "small_run".to_string()]);
            assert!(a.report.text_bytes > 0);
        }
    }
    let a = compile_object(&g, &CompileOptions::parse(TARGETS[0].0, "haswell", "small").unwrap()).unwrap();
    assert!(a.report.caps.fma, "haswell must use native FMA");
    let f = object::File::parse(&*a.object).unwrap();
    assert!(f.symbols().all(|s| !s.name().unwrap_or("").contains("fma")), "no fmaf reference on haswell");
}

/// The other desktop object formats: Mach-O for macOS (x86-64 and arm64,
/// exported names with the leading underscore C uses there) and COFF for
/// Windows x64 (its calling convention, so no System V micro-kernels).
/// Checked here: the `object` crate parses each object and its archive
/// (BSD/Darwin and COFF kinds), the two entry points are exported under
/// the platform's C names, nothing is undefined, output is deterministic.
/// Not checked: linking and running them (no macOS SDK, and no Windows
/// linker plus runtime in the test environment).
#[test]
fn macho_and_coff_objects() {
    let g = graph();
    let cases: [(&str, &[&str], object::BinaryFormat, &str); 3] = [
        ("x86_64-apple-darwin", &["baseline", "haswell"], object::BinaryFormat::MachO, "_"),
        ("aarch64-apple-darwin", &["baseline", "dotprod"], object::BinaryFormat::MachO, "_"),
        ("x86_64-pc-windows-msvc", &["baseline", "haswell"], object::BinaryFormat::Coff, ""),
    ];
    for (triple, cpus, format, prefix) in cases {
        for cpu in cpus {
            let o = CompileOptions::parse(triple, cpu, "small").unwrap();
            let a = compile_object(&g, &o).unwrap_or_else(|e| panic!("{triple}/{cpu}: {e}"));
            let f = object::File::parse(&*a.object).unwrap();
            assert_eq!(f.format(), format, "{triple}/{cpu}");
            let u = undefined(&a.object);
            assert!(u.is_empty(), "{triple}/{cpu}: undefined symbols {u:?}");
            assert_eq!(exported(&a.object), vec![format!("{prefix}small_describe"), format!("{prefix}small_run")]);
            assert_eq!(a.object, compile_object(&g, &o).unwrap().object, "{triple}/{cpu}: not deterministic");
            // the assembled tiles follow System V: macOS x86-64 yes, Windows no
            let sysv_avx2 = *cpu == "haswell" && format == object::BinaryFormat::MachO;
            assert_eq!(
                a.report.micro_kernels > 0,
                sysv_avx2,
                "{triple}/{cpu}: {} micro-kernels",
                a.report.micro_kernels
            );
            let ar = write_archive(triple, &[("small.o".into(), a.object.clone())]).unwrap();
            let file = object::read::archive::ArchiveFile::parse(&*ar).unwrap();
            let want = if format == object::BinaryFormat::Coff {
                object::read::archive::ArchiveKind::Coff
            } else {
                object::read::archive::ArchiveKind::Bsd
            };
            assert_eq!(file.kind(), want, "{triple}: archive kind");
            let syms: Vec<String> = file
                .symbols()
                .unwrap()
                .unwrap()
                .map(|s| String::from_utf8_lossy(s.unwrap().name()).into_owned())
                .collect();
            assert!(syms.contains(&format!("{prefix}small_run")), "{triple}: archive index {syms:?}");
        }
    }
}

#[test]
fn unknown_targets_are_errors() {
    let g = graph();
    let e = CompileOptions::parse("mips-unknown-linux-gnu", "baseline", "m").unwrap_err();
    assert!(e.to_string().contains("unknown target triple 'mips-unknown-linux-gnu'"), "{e}");
    let e = CompileOptions::parse(TARGETS[1].0, "haswell", "m").unwrap_err();
    assert!(e.to_string().contains("unknown CPU 'haswell'"), "{e}");
    // `native` is the host's only; an alias resolves to its preset once.
    let e = kerf_targets::Target::parse(TARGETS[1].0, "native").unwrap_err();
    assert!(e.to_string().contains("'native' only when compiling for the host"), "{e}");
    let e = compile_object(&g, &CompileOptions::parse(TARGETS[0].0, "baseline", "1bad").unwrap()).unwrap_err();
    assert!(e.to_string().contains("invalid model name '1bad'"), "{e}");
}

#[test]
fn unsupported_nodes_are_all_listed() {
    let g = kerf_ir::text::parse(
        r#"graph "u"
  input %0 "x": f64[4]
  %1 = Erf(%0): f64[4] @"s1"
  %2 = Relu(%1): f64[4] @"ok"
  %3 = Tanh(%2): f64[4] @"c1"
  output "y" = %3
"#,
    )
    .unwrap();
    let e = compile_object(&g, &CompileOptions::parse(TARGETS[0].0, "baseline", "u").unwrap()).unwrap_err();
    match e {
        kerf_targets::TargetError::Unsupported(v) => {
            let names: Vec<&str> = v.iter().map(|n| n.node.as_str()).collect();
            assert_eq!(names, vec!["s1", "c1"]);
            assert_eq!(v[0].op, "Erf");
            assert_eq!(v[1].reason, "Tanh on f64 is not supported");
        }
        other => panic!("expected Unsupported, got {other}"),
    }
}

#[test]
fn artifacts_are_deterministic() {
    let g = graph();
    for (triple, cpus) in TARGETS {
        let o = CompileOptions::parse(triple, cpus[0], "small").unwrap();
        let a = compile_object(&g, &o).unwrap();
        let b = compile_object(&graph(), &o).unwrap();
        assert!(a.object == b.object, "{triple}: object differs between two compilations");
        assert_eq!(a.header, b.header);
        let ar1 = write_archive(triple, &[("small.o".into(), a.object.clone())]).unwrap();
        let ar2 = write_archive(triple, &[("small.o".into(), b.object.clone())]).unwrap();
        assert!(ar1 == ar2, "{triple}: archive differs");
        assert!(ar1.starts_with(b"!<arch>\n"));
    }
}

#[test]
fn header_has_the_macros() {
    let a = compile_object(&graph(), &CompileOptions::parse(TARGETS[0].0, "baseline", "small").unwrap()).unwrap();
    let h = &a.header;
    for want in [
        "#ifndef KERF_MODEL_SMALL_H",
        "#define KERF_ABI_VERSION 1",
        &format!("#define SMALL_ARENA_BYTES {}u", a.report.arena_bytes),
        "#define SMALL_ARENA_ALIGN 64u",
        "#define SMALL_INPUT_0_NAME \"x\"",
        "#define SMALL_INPUT_0_DTYPE 1",
        "#define SMALL_INPUT_0_RANK 4",
        "#define SMALL_INPUT_0_SHAPE {1, 3, 7, 9}",
        "#define SMALL_INPUT_0_BYTES 756u",
        "#define SMALL_OUTPUT_1_SHAPE {1, 5}",
        "int32_t small_run(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt);",
        "const kerf_model_desc *small_describe(void);",
    ] {
        assert!(h.contains(want), "header lacks {want:?}:\n{h}");
    }
}

fn input_bytes() -> (Vec<f32>, Vec<u8>) {
    let x: Vec<f32> = (0..189).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let b = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    (x, b)
}

fn jit_reference() -> Vec<f32> {
    let jm = jit_compile(&graph(), &CompileOptions::host("small")).unwrap();
    let (x, _) = input_bytes();
    let mut arena = jm.model().new_arena().unwrap();
    let out = jm.model().run_f32(&[&x], &mut arena).unwrap();
    out.concat()
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let m = want.iter().fold(0f32, |a, b| a.max(b.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-5 + 1e-4 * m, "{what}: element {i}: {a} vs {b}");
    }
}

/// Compiles the model for `t`, links it with the harness (as an object or
/// an archive) and runs it; returns the outputs as f32.
fn cross_run(t: &Cross, archive: bool) -> Vec<f32> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cross-{}-{}-{archive}", t.triple, t.cpu));
    std::fs::create_dir_all(&dir).unwrap();
    let a = compile_object(&graph(), &CompileOptions::parse(t.triple, t.cpu, "small").unwrap()).unwrap();
    std::fs::write(dir.join("small.h"), &a.header).unwrap();
    let obj = if archive {
        let ar = write_archive(t.triple, &[("small.o".into(), a.object.clone())]).unwrap();
        std::fs::write(dir.join("libsmall.a"), ar).unwrap();
        dir.join("libsmall.a")
    } else {
        std::fs::write(dir.join("small.o"), &a.object).unwrap();
        dir.join("small.o")
    };
    let exe = t.link(&dir, "small", &obj);
    let (_, bytes) = input_bytes();
    let b = t.run(None, &exe, &bytes).unwrap_or_else(|e| panic!("{}: harness failed: {e}", t.triple));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The host, natively.
const X86_64: Cross = Cross { triple: TARGETS[0].0, cpu: "baseline", cc: "cc", runner: &[], package: "gcc" };

#[test]
fn cross_x86_64_native() {
    let want = jit_reference();
    for cpu in ["baseline", "haswell"] {
        close(&cross_run(&Cross { cpu, ..X86_64 }, false), &want, cpu);
    }
    close(&cross_run(&X86_64, true), &want, "archive");
}

#[test]
fn cross_aarch64_qemu() {
    if !AARCH64.available() {
        return;
    }
    close(&cross_run(&AARCH64, false), &jit_reference(), "aarch64");
}

#[test]
fn cross_riscv64_qemu() {
    if !RISCV64.available() {
        return;
    }
    close(&cross_run(&RISCV64, false), &jit_reference(), "riscv64");
}

#[test]
fn two_models_link_into_one_program() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("two-models");
    std::fs::create_dir_all(&dir).unwrap();
    let g = graph();
    let mut objs = Vec::new();
    for name in ["alpha", "beta"] {
        let a = compile_object(&g, &CompileOptions::parse(TARGETS[0].0, "baseline", name).unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}.h")), &a.header).unwrap();
        let p = dir.join(format!("{name}.o"));
        std::fs::write(&p, &a.object).unwrap();
        objs.push(p);
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/two_models.c");
    let exe = dir.join("two");
    let st =
        Command::new("cc").arg("-O1").arg("-I").arg(&dir).arg(&src).args(&objs).arg("-o").arg(&exe).status().unwrap();
    assert!(st.success(), "linking two models failed");
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success(), "two-model program failed: {:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// Rounding and transcendental ops must not become libm calls on any target
/// (baseline x86-64 has no SSE4.1, riscv64gc no Zfa).
#[test]
fn math_ops_need_no_libm() {
    let g = kerf_ir::text::parse(
        r#"graph "m"
  input %0 "x": f32[2,9]
  %1 = Floor(%0): f32[2,9] @"f"
  %2 = Ceil(%1): f32[2,9] @"c"
  %3 = Round(%2): f32[2,9] @"r"
  %4 = Exp(%3): f32[2,9] @"e"
  %5 = Erf(%4): f32[2,9] @"erf"
  %6 = Tanh(%5): f32[2,9] @"t"
  %7 = Log(%6): f32[2,9] @"l"
  const %8 "p": f32[] = [1.7]
  %9 = Pow(%7, %8): f32[2,9] @"pow"
  %10 = Softmax{axis=1}(%9): f32[2,9] @"sm"
  %11 = Gelu{tanh=false}(%10): f32[2,9] @"g"
  output "y" = %11
"#,
    )
    .unwrap();
    for (triple, cpus) in TARGETS {
        for cpu in cpus {
            let a = compile_object(&g, &CompileOptions::parse(triple, cpu, "m").unwrap()).unwrap();
            let u = undefined(&a.object);
            assert!(u.is_empty(), "{triple}/{cpu}: undefined symbols {u:?}");
        }
    }
}

/// A progress hook is told of every node in order and ends at `total`;
/// the object is the same bytes with or without it.
#[test]
fn codegen_progress_reaches_the_end_and_changes_nothing() {
    let g = graph();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut o = CompileOptions::parse(TARGETS[0].0, "baseline", "small").unwrap();
    let plain = compile_object(&g, &o).unwrap();
    o.progress = Some(kerf_targets::ProgressHook(std::sync::Arc::new(move |done, total, _what: &str| {
        log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((done, total));
    })));
    let with = compile_object(&g, &o).unwrap();
    assert!(plain.object == with.object, "the hook changed the object");
    let calls = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let n = g.nodes.len();
    assert_eq!(calls.len(), n + 1, "{calls:?}");
    assert!(calls.iter().enumerate().all(|(i, &c)| c == (i, n)), "{calls:?}");
}

/// RISC-V `v` objects hold vector code (Cranelift's RVV lowering of the
/// 128-bit kernels), `rv64gc` ones none: instructions of the OP-V major
/// opcode (`0x57`: `vsetivli`, the vector arithmetic) counted by walking
/// the code sections with the C extension's instruction lengths.
#[test]
fn riscv_v_objects_hold_vector_code() {
    use object::{ObjectSection, SectionKind};
    let op_v = |cpu: &str| {
        let o = CompileOptions::parse("riscv64gc-unknown-linux-gnu", cpu, "small").unwrap();
        let art = compile_object(&graph(), &o).unwrap();
        let f = object::File::parse(&*art.object).unwrap();
        let mut n = 0;
        for s in f.sections().filter(|s| s.kind() == SectionKind::Text) {
            let code = s.data().unwrap();
            let mut i = 0;
            while i + 2 <= code.len() {
                if code[i] & 3 != 3 {
                    i += 2; // a compressed instruction
                    continue;
                }
                n += usize::from(code.get(i).is_some_and(|b| b & 0x7f == 0x57) && i + 4 <= code.len());
                i += 4;
            }
        }
        n
    };
    let (scalar, vector) = (op_v("rv64gc"), op_v("v"));
    assert_eq!(scalar, 0, "rv64gc: {scalar} vector instructions");
    assert!(vector > 50, "v: {vector} vector instructions");
}
