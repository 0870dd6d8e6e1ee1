//! Measuring on the real target (`--runner`): each plan's graph is
//! compiled to an object for the target, linked by the target's C compiler
//! with a small harness (`tune/c/bench.c`), and run through the user's
//! runner command — `qemu-aarch64 -L /usr/aarch64-linux-gnu {}` for
//! functional checks, `scp {} board:/tmp/b && ssh board /tmp/b` or an adb
//! equivalent for real timings. `{}` is replaced by the executable's path
//! (appended when absent); the harness's arguments (`N ITERS`) are
//! appended. The validation samples go in on stdin and every output comes
//! back on stdout, so the metric is computed from what the target computed;
//! the latency is the median the harness prints on stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kerf_ir::{Graph, Tensor};
use kerf_pipeline::Session;
use kerf_targets::Target;

use crate::{scratch_dir, shell_quote, tail, TuneError};

const BENCH_C: &str = include_str!("../c/bench.c");

/// How plans are built and run on the target (not `Clone`: it removes its
/// build folder when dropped).
#[derive(Debug)]
pub struct TargetRunner {
    /// The runner command template (`{}`: the executable).
    pub runner: String,
    /// The C compiler that links the harness for the target.
    pub cc: String,
    /// Extra compiler flags (`-static` for cross builds).
    pub cflags: Vec<String>,
    /// Where the harness is built (one folder per call, reused).
    pub dir: PathBuf,
}

/// What one run on the target gave.
#[derive(Clone, Debug)]
pub struct TargetRun {
    /// Per graph output: its name and its value for every sample, in order.
    pub outputs: Vec<(String, Vec<Tensor>)>,
    /// The harness's median latency in milliseconds.
    pub latency_ms: f64,
}

/// The C compiler (and flags) that links for `target` from this host: the
/// host's `cc` for the host triple, else the Debian cross GCC, statically.
pub fn default_cc(target: &Target) -> (String, Vec<String>) {
    let host = Target::host_baseline().triple();
    if target.triple() == host {
        return ("cc".into(), Vec::new());
    }
    let prefix = match target.triple() {
        "x86_64-unknown-linux-gnu" => "x86_64-linux-gnu",
        "aarch64-unknown-linux-gnu" => "aarch64-linux-gnu",
        "riscv64gc-unknown-linux-gnu" => "riscv64-linux-gnu",
        other => other,
    };
    (format!("{prefix}-gcc"), vec!["-static".into()])
}

impl TargetRunner {
    /// A runner for `target` through `runner`; `cc` overrides the compiler.
    pub fn new(target: &Target, runner: &str, cc: Option<&str>) -> Result<TargetRunner, TuneError> {
        if !target.triple().contains("linux") {
            return Err(TuneError::Config(format!(
                "--runner needs a Linux target (the harness is a Linux program), got {}",
                target.triple()
            )));
        }
        let (dcc, cflags) = default_cc(target);
        let cc = cc.map(str::to_string).unwrap_or(dcc);
        let dir = scratch_dir("tune-runner");
        Ok(TargetRunner { runner: runner.to_string(), cc, cflags, dir })
    }

    /// Compiles `g` with `session`'s target, links the harness, runs
    /// `samples` through the runner and times `iters` runs of the first.
    pub fn run(
        &self,
        session: &Session,
        g: &Graph,
        samples: &[Vec<Tensor>],
        iters: usize,
    ) -> Result<TargetRun, TuneError> {
        std::fs::create_dir_all(&self.dir)?;
        let art = session.compile(g)?;
        let name = art.report.name.clone();
        std::fs::write(self.dir.join("model.o"), &art.object)?;
        std::fs::write(self.dir.join("model.h"), &art.header)?;
        std::fs::write(self.dir.join("bench.c"), BENCH_C)?;
        let exe = self.dir.join("bench");
        self.link(&name, &exe)?;
        let stdin: Vec<u8> = samples.iter().flat_map(|s| s.iter().flat_map(|t| t.bytes().iter().copied())).collect();
        let (stdout, stderr) = self.execute(&exe, samples.len(), iters, &stdin)?;
        let latency_ms = stderr
            .lines()
            .find_map(|l| l.strip_prefix("kerf-bench median_ms ")?.trim().parse::<f64>().ok())
            .ok_or_else(|| TuneError::Runner(format!("the harness printed no timing; stderr: {}", tail(&stderr))))?;
        Ok(TargetRun { outputs: split_outputs(g, &stdout, samples.len())?, latency_ms })
    }

    fn link(&self, name: &str, exe: &Path) -> Result<(), TuneError> {
        let out = Command::new(&self.cc)
            .current_dir(&self.dir)
            .args(["-O2", "-std=c11"])
            .args(&self.cflags)
            .arg(format!("-DKERF_RUN={name}_run"))
            .arg(format!("-DKERF_DESCRIBE={name}_describe"))
            .args(["bench.c", "model.o", "-o"])
            .arg(exe)
            .output()
            .map_err(|e| {
                TuneError::Runner(format!("cannot start the C compiler '{}': {e} (install it, or pass --cc)", self.cc))
            })?;
        if !out.status.success() {
            return Err(TuneError::Runner(format!(
                "linking the harness with '{}' failed: {}",
                self.cc,
                tail(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(())
    }

    /// Runs the harness through the runner; its stdout and stderr.
    fn execute(&self, exe: &Path, n: usize, iters: usize, stdin: &[u8]) -> Result<(Vec<u8>, String), TuneError> {
        let quoted = shell_quote(&exe.display().to_string());
        let cmd = if self.runner.contains("{}") {
            self.runner.replace("{}", &quoted)
        } else {
            format!("{} {quoted}", self.runner)
        };
        let line = format!("{cmd} {n} {iters}");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TuneError::Runner(format!("cannot run `{line}`: {e}")))?;
        // the harness reads all of stdin before it writes: no deadlock
        if let Some(mut w) = child.stdin.take() {
            w.write_all(stdin).map_err(|e| TuneError::Runner(format!("`{line}`: writing the samples: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| TuneError::Runner(format!("`{line}`: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(TuneError::Runner(format!("`{line}` failed ({}): {}", out.status, tail(&stderr))));
        }
        Ok((out.stdout, stderr))
    }
}

impl Drop for TargetRunner {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The harness's stdout as per-output, per-sample tensors.
fn split_outputs(g: &Graph, bytes: &[u8], n: usize) -> Result<Vec<(String, Vec<Tensor>)>, TuneError> {
    let types: Vec<_> = g.outputs.iter().map(|o| g.ty(o.value).clone()).collect();
    let per_sample: usize = types.iter().map(|t| t.bytes()).sum();
    if bytes.len() != per_sample * n {
        return Err(TuneError::Runner(format!(
            "the harness wrote {} bytes of outputs, expected {} ({n} samples of {per_sample})",
            bytes.len(),
            per_sample * n
        )));
    }
    let mut res: Vec<(String, Vec<Tensor>)> =
        g.outputs.iter().map(|o| (o.name.clone(), Vec::with_capacity(n))).collect();
    let mut off = 0;
    for _ in 0..n {
        for (t, (_, outs)) in types.iter().zip(res.iter_mut()) {
            let b = bytes[off..off + t.bytes()].to_vec();
            off += t.bytes();
            outs.push(Tensor::from_bytes(t.dtype, t.shape.clone(), b).map_err(|e| TuneError::Runner(e.to_string()))?);
        }
    }
    Ok(res)
}
