//! Helpers shared by `models_e2e.rs`, `cross_isa.rs`, `op_battery.rs` and
//! `examples.rs`: `.npy` reading, the end-to-end comparison, the host JIT
//! path, and the cross path (objects linked with `testsuite/c/harness.c`
//! by a cross GCC and run under qemu-user).
//!
//! Comparison contract ([`compare`]): dtypes and shapes must be equal;
//! integers and bools exactly equal; floats must have NaN at the same
//! positions, equal infinities, and every finite element within
//! `1e-5 + 1e-4 * max|ref|` (max over the whole reference tensor).

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kerf_ir::{DType, Graph, Tensor};
use kerf_targets::{jit_compile, CompileOptions};

/// Absolute part of the float tolerance.
pub const ATOL: f64 = 1e-5;
/// Part of the float tolerance relative to the largest |reference| element.
pub const RTOL_OF_MAX: f64 = 1e-4;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn testsuite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under the cargo target dir (kept on failure for
/// inspection, emptied when the same test runs again).
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = repo_root().join("target").join("kerf-e2e").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Reads a C-order `.npy` file into a tensor (the same reader `kerf run` uses).
pub fn read_npy(path: &Path) -> Result<Tensor, String> {
    kerf_pipeline::npy::read(path).map_err(|e| e.to_string())
}

/// Reads `<prefix>_0.npy`, `<prefix>_1.npy`, ... until one is missing.
pub fn read_numbered(dir: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    let mut out = Vec::new();
    loop {
        let p = dir.join(format!("{prefix}_{}.npy", out.len()));
        if !p.exists() {
            return Ok(out);
        }
        out.push(read_npy(&p)?);
    }
}

/// Largest errors of a passing float comparison (0 for exact dtypes).
#[derive(Clone, Copy, Debug, Default)]
pub struct Errors {
    pub max_abs: f64,
    /// max |got - ref| / max |ref|.
    pub max_rel: f64,
}

impl Errors {
    pub fn merge(self, o: Errors) -> Errors {
        Errors { max_abs: self.max_abs.max(o.max_abs), max_rel: self.max_rel.max(o.max_rel) }
    }
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// Compares `got` with the reference `want` (see the module contract).
pub fn compare(want: &Tensor, got: &Tensor) -> Result<Errors, String> {
    if want.dtype() != got.dtype() {
        return Err(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
    }
    if want.shape() != got.shape() {
        return Err(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    let n = want.numel();
    if !is_float(want.dtype()) {
        let (w, g) = (want.to_i64_vec(), got.to_i64_vec());
        let bad: Vec<usize> = (0..n).filter(|&i| w[i] != g[i]).collect();
        return match bad.first() {
            None => Ok(Errors::default()),
            Some(&i) => {
                Err(format!("{} of {n} elements differ; first at {i}: got {}, expected {}", bad.len(), g[i], w[i]))
            }
        };
    }
    let (w, g) = (want.to_f64_vec(), got.to_f64_vec());
    let max_ref = w.iter().filter(|x| x.is_finite()).fold(0f64, |a, &b| a.max(b.abs()));
    let tol = ATOL + RTOL_OF_MAX * max_ref;
    let mut e = Errors::default();
    let mut first_bad: Option<(usize, String)> = None;
    let mut bad = 0usize;
    for i in 0..n {
        let (a, b) = (g[i], w[i]);
        let why = if b.is_nan() || a.is_nan() {
            (a.is_nan() != b.is_nan()).then_some("NaN mismatch")
        } else if b.is_infinite() || a.is_infinite() {
            (a != b).then_some("infinity mismatch")
        } else {
            let d = (a - b).abs();
            e.max_abs = e.max_abs.max(d);
            (d > tol).then_some("out of tolerance")
        };
        if let Some(why) = why {
            bad += 1;
            if first_bad.is_none() {
                first_bad = Some((i, format!("{why}: got {a}, expected {b}")));
            }
        }
    }
    e.max_rel = if max_ref > 0.0 { e.max_abs / max_ref } else { e.max_abs };
    match first_bad {
        None => Ok(e),
        Some((i, msg)) => Err(format!(
            "{bad} of {n} elements bad (tol {tol:.3e}); first at {i}: {msg}; max abs err {:.3e}",
            e.max_abs
        )),
    }
}

/// Compares every output; the error names the output index.
pub fn compare_all(want: &[Tensor], got: &[Tensor]) -> Result<Errors, String> {
    if want.len() != got.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    let mut e = Errors::default();
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        e = e.merge(compare(w, g).map_err(|m| format!("output {i}: {m}"))?);
    }
    Ok(e)
}

/// Imports and optimizes a model (the `kerf-pipeline` pipeline).
pub fn load_graph(model: &Path, name: &str) -> Result<Graph, String> {
    kerf_pipeline::Session::new(model).name(name).graph().map(|o| o.graph).map_err(|e| format!("import/optimize: {e}"))
}

/// Checks inputs against the graph's input types.
pub fn check_inputs(g: &Graph, inputs: &[Tensor]) -> Result<(), String> {
    if inputs.len() != g.inputs.len() {
        return Err(format!("{} input files for {} graph inputs", inputs.len(), g.inputs.len()));
    }
    for (i, (&v, t)) in g.inputs.iter().zip(inputs).enumerate() {
        let ty = g.ty(v);
        if ty.dtype != t.dtype() || ty.shape != t.shape() {
            return Err(format!("input {i}: graph wants {ty}, file holds {}{:?}", t.dtype(), t.shape()));
        }
    }
    Ok(())
}

/// Builds the output tensors from raw buffers, typed by the graph.
pub fn outputs_from_bytes(g: &Graph, bufs: Vec<Vec<u8>>) -> Result<Vec<Tensor>, String> {
    g.outputs
        .iter()
        .zip(bufs)
        .enumerate()
        .map(|(i, (o, b))| {
            let ty = g.ty(o.value);
            Tensor::from_bytes(ty.dtype, ty.shape.clone(), b).map_err(|e| format!("output {i}: {e}"))
        })
        .collect()
}

/// JIT-compiles `g` for the host (`native` CPU) and runs it once.
pub fn jit_run(g: &Graph, name: &str, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    jit_run_with(g, &CompileOptions::host(name), inputs)
}

/// JIT-compiles `g` with `opts` (a host triple) and runs it once.
pub fn jit_run_with(g: &Graph, opts: &CompileOptions, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    check_inputs(g, inputs)?;
    let jm = jit_compile(g, opts).map_err(|e| format!("jit: {e}"))?;
    let bufs = kerf_testsuite::conformance::exec::run_guarded(&jm, inputs)?;
    outputs_from_bytes(g, bufs)
}

/// A target the cross tests build for and how to run its programs.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Short label used in messages and expectation lists.
    pub label: &'static str,
    pub triple: &'static str,
    pub cpu: &'static str,
    /// C compiler and the Debian package that provides it.
    pub cc: &'static str,
    pub cc_package: &'static str,
    /// Extra compiler flags (`-static` for cross builds).
    pub cflags: &'static [&'static str],
    /// Emulator command (none on the host) and its package.
    pub runner: &'static [&'static str],
    pub runner_package: &'static str,
}

impl Target {
    /// The code generator's target.
    pub fn target(&self) -> kerf_targets::Target {
        kerf_targets::Target::parse(self.triple, self.cpu).unwrap_or_else(|e| panic!("{}: {e}", self.label))
    }
    /// The compiler and, off the host, the emulator.
    pub fn tools(&self) -> Vec<kerf_testsuite::tools::Tool> {
        let mut v = vec![kerf_testsuite::tools::Tool::new(self.cc, self.cc_package)];
        if let Some(r) = self.runner.first() {
            v.push(kerf_testsuite::tools::Tool::new(r, self.runner_package));
        }
        v
    }
}

pub const X86_64: Target = Target {
    label: "x86_64",
    triple: "x86_64-unknown-linux-gnu",
    cpu: "baseline",
    cc: "cc",
    cc_package: "gcc",
    cflags: &[],
    runner: &[],
    runner_package: "",
};

pub const AARCH64: Target = Target {
    label: "aarch64",
    triple: "aarch64-unknown-linux-gnu",
    cpu: "baseline",
    cc: "aarch64-linux-gnu-gcc",
    cc_package: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    cflags: &["-static"],
    runner: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
    runner_package: "qemu-user",
};

/// AArch64 with `dotprod` (the integer conv's `sdot` tile), on qemu's
/// `max` CPU, which has it.
pub const AARCH64_DOTPROD: Target = Target {
    label: "aarch64-dotprod",
    cpu: "dotprod",
    runner: &["qemu-aarch64", "-cpu", "max", "-L", "/usr/aarch64-linux-gnu"],
    ..AARCH64
};

pub const RISCV64: Target = Target {
    label: "riscv64",
    triple: "riscv64gc-unknown-linux-gnu",
    cpu: "rv64gc",
    cc: "riscv64-linux-gnu-gcc",
    cc_package: "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
    cflags: &["-static"],
    runner: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"],
    runner_package: "qemu-user",
};

/// Windows x64: a COFF object (Windows x64 calling convention) linked by
/// MinGW-w64's gcc, run under Wine.
pub const WINDOWS_X64: Target = Target {
    label: "windows-x64",
    triple: "x86_64-pc-windows-msvc",
    cpu: "baseline",
    cc: "x86_64-w64-mingw32-gcc",
    cc_package: "gcc-mingw-w64-x86-64",
    cflags: &[],
    runner: &["wine"],
    runner_package: "wine wine64",
};

pub const RISCV64_V: Target = Target {
    label: "riscv64-v",
    triple: "riscv64gc-unknown-linux-gnu",
    cpu: "v",
    cc: "riscv64-linux-gnu-gcc",
    cc_package: "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
    cflags: &["-static"],
    runner: &["qemu-riscv64", "-cpu", "rv64,v=true,vlen=128", "-L", "/usr/riscv64-linux-gnu"],
    runner_package: "qemu-user",
};

/// The `v` objects on a CPU with 256-bit vector registers: the kernels use
/// 128-bit vectors whatever the VLEN (`has_zvl128b` is a minimum), so the
/// same objects must give the same results.
pub const RISCV64_V256: Target = Target {
    label: "riscv64-v-vlen256",
    runner: &["qemu-riscv64", "-cpu", "rv64,v=true,vlen=256", "-L", "/usr/riscv64-linux-gnu"],
    ..RISCV64_V
};

/// Fails the calling test when the target's compiler or emulator is
/// missing, naming the Debian packages to install.
pub fn require_tools(t: &Target) {
    kerf_testsuite::tools::require(t.label, &t.tools());
}

/// True when the target's tools are there; otherwise skips (false), or
/// fails under `KERF_REQUIRE_CROSS=1`.
pub fn tools_present(t: &Target) -> bool {
    kerf_testsuite::tools::present_or_skip(t.label, &t.tools())
}

/// The source of the generic C harness.
pub fn harness_c() -> PathBuf {
    testsuite_dir().join("c").join("harness.c")
}

/// Links `objects` (model names and object bytes) with the harness into
/// `dir/harness` for target `t`. The table of entry points is generated C.
pub fn link_harness(t: &Target, dir: &Path, objects: &[(String, Vec<u8>)]) -> Result<PathBuf, String> {
    link_harness_with(t, dir, objects, &[])
}

/// Like [`link_harness`], plus models written in C (name, source file).
pub fn link_harness_with(
    t: &Target,
    dir: &Path,
    objects: &[(String, Vec<u8>)],
    c_models: &[(String, PathBuf)],
) -> Result<PathBuf, String> {
    let mut table = String::from("#include \"kerf_runtime.h\"\n#include \"harness.h\"\n");
    let mut files = Vec::new();
    for (name, obj) in objects {
        let p = dir.join(format!("{name}.o"));
        std::fs::write(&p, obj).map_err(|e| format!("{}: {e}", p.display()))?;
        files.push(p);
    }
    for (_, src) in c_models {
        // one source file may define several models
        if !files.contains(src) {
            files.push(src.clone());
        }
    }
    let names: Vec<&String> = objects.iter().map(|(n, _)| n).chain(c_models.iter().map(|(n, _)| n)).collect();
    for name in &names {
        let _ = writeln!(
            table,
            "int32_t {name}_run(const void *const *, void *const *, void *, const kerf_runtime *);\nconst kerf_model_desc *{name}_describe(void);"
        );
    }
    table.push_str("const harness_model harness_models[] = {\n");
    for name in &names {
        let _ = writeln!(table, "    {{\"{name}\", {name}_run, {name}_describe}},");
    }
    let _ = writeln!(table, "    {{0, 0, 0}}\n}};");
    let table_path = dir.join("table.c");
    std::fs::write(&table_path, table).map_err(|e| format!("{}: {e}", table_path.display()))?;
    let exe = dir.join("harness");
    let out = Command::new(t.cc)
        .args(["-O1", "-std=c11", "-Wall", "-Werror"])
        .args(t.cflags)
        .arg("-I")
        .arg(repo_root().join("runtime/include"))
        .arg("-I")
        .arg(testsuite_dir().join("c"))
        .arg(harness_c())
        .arg(repo_root().join("runtime/c/kerf_pool.c"))
        .arg("-pthread")
        .arg(&table_path)
        .args(&files)
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| format!("{}: cannot start '{}': {e} (apt-get install {})", t.label, t.cc, t.cc_package))?;
    if !out.status.success() {
        return Err(format!("{}: link failed:\n{}", t.label, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(exe)
}

/// Writes a case's inputs as `dir/in<i>.bin`.
pub fn write_inputs(dir: &Path, inputs: &[Tensor]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (i, t) in inputs.iter().enumerate() {
        let p = dir.join(format!("in{i}.bin"));
        std::fs::write(&p, t.bytes()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// Reads `dir/out<i>.bin` for every graph output.
pub fn read_outputs(g: &Graph, dir: &Path) -> Result<Vec<Tensor>, String> {
    let bufs = (0..g.outputs.len())
        .map(|i| {
            let p = dir.join(format!("out{i}.bin"));
            std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    outputs_from_bytes(g, bufs)
}

/// Runs the harness for `cases` (model name, case dir) in one process per
/// batch. A case that crashes the process is reported as failed and the
/// remaining cases run in a new process. Returns per case `Ok` (outputs in
/// the case dir) or the harness's error.
pub fn run_harness(t: &Target, exe: &Path, cases: &[(String, PathBuf)]) -> Vec<(String, Result<(), String>)> {
    let mut results: Vec<(String, Result<(), String>)> = Vec::new();
    let mut rest: &[(String, PathBuf)] = cases;
    while !rest.is_empty() {
        let (prog, pre) = match t.runner.split_first() {
            Some((p, a)) => (p.to_string(), a.to_vec()),
            None => (exe.display().to_string(), vec![]),
        };
        let mut cmd = Command::new(&prog);
        cmd.args(pre);
        if !t.runner.is_empty() {
            cmd.arg(exe);
        }
        for (name, dir) in rest {
            cmd.arg(name).arg(dir);
        }
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) => {
                let msg = format!("cannot start '{prog}': {e} (apt-get install {})", t.runner_package);
                results.extend(rest.iter().map(|(n, _)| (n.clone(), Err(msg.clone()))));
                return results;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut done = 0;
        for line in stdout.lines() {
            if let Some(n) = line.strip_prefix("ok ") {
                results.push((n.to_string(), Ok(())));
                done += 1;
            } else if let Some(r) = line.strip_prefix("fail ") {
                let (n, why) = r.split_once(' ').unwrap_or((r, ""));
                results.push((n.to_string(), Err(format!("harness: {why}"))));
                done += 1;
            }
        }
        if out.status.success() && done == rest.len() {
            break;
        }
        if done >= rest.len() {
            // All cases reported but the process failed afterwards.
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let crashed = &rest[done].0;
        results.push((
            crashed.clone(),
            Err(format!("harness process died ({}) while running it: {}", out.status, stderr.trim())),
        ));
        rest = &rest[done + 1..];
    }
    results
}
