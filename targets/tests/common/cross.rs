//! Objects linked with `c/harness.c` (the host's `cc` or a cross GCC,
//! `-static`) and run, natively or under qemu-user. The harness reads
//! every input's bytes back to back from one file and writes every
//! output's bytes back to back to another.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A target to link for and run on: the triple and CPU preset the object
/// is compiled for, the C compiler, the emulator command (empty: the host
/// runs it) and the Debian packages providing both.
#[derive(Clone, Copy, Debug)]
pub struct Cross {
    pub triple: &'static str,
    pub cpu: &'static str,
    pub cc: &'static str,
    pub runner: &'static [&'static str],
    pub package: &'static str,
}

pub const AARCH64: Cross = Cross {
    triple: "aarch64-unknown-linux-gnu",
    cpu: "baseline",
    cc: "aarch64-linux-gnu-gcc",
    runner: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
    package: "gcc-aarch64-linux-gnu qemu-user",
};

/// AArch64 with `dotprod`: qemu's `max` CPU has it (so does its default
/// CPU, named here so a changed default cannot hide the extension).
pub const AARCH64_DOTPROD: Cross =
    Cross { cpu: "dotprod", runner: &["qemu-aarch64", "-cpu", "max", "-L", "/usr/aarch64-linux-gnu"], ..AARCH64 };

pub const RISCV64: Cross = Cross {
    triple: "riscv64gc-unknown-linux-gnu",
    cpu: "rv64gc",
    cc: "riscv64-linux-gnu-gcc",
    runner: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"],
    package: "gcc-riscv64-linux-gnu qemu-user",
};

/// riscv64 with the V extension (VLEN 128): Cranelift's 128-bit kernels.
pub const RISCV64_V: Cross = Cross {
    cpu: "v",
    runner: &["qemu-riscv64", "-cpu", "rv64,v=true,vlen=128", "-L", "/usr/riscv64-linux-gnu"],
    ..RISCV64
};

impl Cross {
    /// Whether the compiler and emulator are installed (else skipped with
    /// the reason printed, or failed under `KERF_REQUIRE_CROSS=1`).
    pub fn available(&self) -> bool {
        let mut programs = vec![self.cc];
        programs.extend(self.runner.first());
        tools_or_skip(&programs, self.package)
    }

    /// Links `obj` (an object or archive of the model `name`, whose header
    /// is `dir/<name>.h`) with the harness into `dir/prog`.
    pub fn link(&self, dir: &Path, name: &str, obj: &Path) -> PathBuf {
        let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/harness.c");
        let exe = dir.join("prog");
        let out = Command::new(self.cc)
            .args(["-O1", "-static"])
            .arg(format!("-DMODEL_HEADER=\"{name}.h\""))
            .arg(format!("-DMODEL_NAME={name}"))
            .arg("-I")
            .arg(dir)
            .arg(&harness)
            .arg(obj)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.cc));
        assert!(out.status.success(), "{} failed to link {name}: {}", self.cc, String::from_utf8_lossy(&out.stderr));
        exe
    }

    /// Runs `exe` (under `runner`, or this target's emulator when `None`)
    /// on `input`; the output bytes, or how the run failed.
    pub fn run(&self, runner: Option<&[&str]>, exe: &Path, input: &[u8]) -> Result<Vec<u8>, String> {
        let dir = exe.parent().unwrap_or(Path::new("."));
        let (inp, outp) = (dir.join("in.bin"), dir.join("out.bin"));
        std::fs::write(&inp, input).map_err(|e| e.to_string())?;
        // a run that writes nothing must not read the last run's outputs
        let _ = std::fs::remove_file(&outp);
        let runner = runner.unwrap_or(self.runner);
        let mut cmd = match runner.split_first() {
            Some((r, args)) => {
                let mut c = Command::new(r);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let out = cmd.arg(&inp).arg(&outp).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        std::fs::read(&outp).map_err(|e| e.to_string())
    }
}

/// True when every program is on `PATH`; otherwise skips the test with a
/// printed reason, or fails under `KERF_REQUIRE_CROSS=1` (the same contract
/// as `kerf_testsuite::tools::present_or_skip`, which this crate cannot
/// depend on).
pub fn tools_or_skip(programs: &[&str], package: &str) -> bool {
    let on_path =
        |p: &str| std::env::var_os("PATH").is_some_and(|v| std::env::split_paths(&v).any(|d| d.join(p).is_file()));
    let Some(missing) = programs.iter().find(|p| !on_path(p)) else { return true };
    let msg = format!("'{missing}' not found; install it: apt-get install {package}");
    if std::env::var("KERF_REQUIRE_CROSS").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{msg} (KERF_REQUIRE_CROSS=1)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}
