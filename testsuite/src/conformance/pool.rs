//! Running many cases on a few workers.
//!
//! Generated code that crashes takes its process with it, and a kernel that
//! loops forever never returns, so by default every case runs in a worker
//! process (the test binary itself, started with `KERF_CONFORMANCE_WORKER=1`):
//! the parent hands out case ids over stdin and reads one outcome line per
//! case from stdout. A worker that dies is recorded as [`Status::Crash`], one
//! that exceeds the time limit is killed and recorded as
//! [`Status::Timeout`]; either way a fresh worker takes over the remaining
//! cases. `in_process` runs cases on threads instead (for debugging).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::pipeline::{run_case, Config, Outcome, Status};
use crate::cases::Case;

/// Environment variable that turns the test binary into a worker.
pub const WORKER_ENV: &str = "KERF_CONFORMANCE_WORKER";
const PREFIX: &str = "@@kerf-outcome ";

/// Stack size for threads that run cases (deep graphs recurse in places).
const STACK: usize = 64 << 20;

/// How the pool runs.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub workers: usize,
    pub in_process: bool,
    pub timeout: Duration,
    /// Environment for worker processes (backend, passes, case root).
    pub worker_env: Vec<(String, String)>,
}

/// Runs every case and returns the outcomes in case order. `progress` is
/// called once per finished case (from worker threads).
pub fn run_all(
    cases: &[Case],
    cfg: &Config,
    opts: &PoolOptions,
    progress: &(dyn Fn(&Case, &Outcome) + Sync),
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; cases.len()]);
    let record = |i: usize, o: Outcome| {
        if let Some(c) = cases.get(i) {
            progress(c, &o);
        }
        if let Ok(mut r) = results.lock() {
            if let Some(slot) = r.get_mut(i) {
                *slot = Some(o);
            }
        }
    };
    std::thread::scope(|s| {
        for w in 0..opts.workers.max(1) {
            let (next, record) = (&next, &record);
            let builder = std::thread::Builder::new().name(format!("conformance-{w}")).stack_size(STACK);
            let spawned = builder.spawn_scoped(s, move || {
                if opts.in_process {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(case) = cases.get(i) else { break };
                        record(i, run_case(case, cfg));
                    }
                } else {
                    drive_processes(cases, opts, next, record);
                }
            });
            if let Err(e) = spawned {
                eprintln!("cannot start worker thread {w}: {e}");
            }
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::abnormal(Status::Crash, "case was never run".into(), 0)))
        .collect()
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

fn spawn_worker(opts: &PoolOptions) -> std::io::Result<Worker> {
    let exe = std::env::current_exe()?;
    let verbose = std::env::var_os("KERF_VERBOSE").is_some();
    let mut cmd = Command::new(exe);
    cmd.env(WORKER_ENV, "1").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(if verbose {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    for (k, v) in &opts.worker_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("worker has no stdin"))?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("worker has no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix(PREFIX) {
                if tx.send(rest.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    Ok(Worker { child, stdin, lines: rx })
}

fn describe_exit(child: &mut Child) -> String {
    match child.wait() {
        Ok(st) => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(sig) = st.signal() {
                    let name = match sig {
                        4 => " (SIGILL)",
                        6 => " (SIGABRT)",
                        7 => " (SIGBUS)",
                        8 => " (SIGFPE)",
                        11 => " (SIGSEGV)",
                        _ => "",
                    };
                    return format!("worker killed by signal {sig}{name}");
                }
            }
            format!("worker exited ({st})")
        }
        Err(e) => format!("worker vanished: {e}"),
    }
}

/// Takes cases from `next` and runs them on a worker process, replacing it
/// after a crash or timeout.
fn drive_processes(cases: &[Case], opts: &PoolOptions, next: &AtomicUsize, record: &(dyn Fn(usize, Outcome) + Sync)) {
    let mut worker: Option<Worker> = None;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(case) = cases.get(i) else { break };
        let w = match worker.take() {
            Some(w) => w,
            None => match spawn_worker(opts) {
                Ok(w) => w,
                Err(e) => {
                    record(i, Outcome::abnormal(Status::Crash, format!("cannot start worker: {e}"), 0));
                    continue;
                }
            },
        };
        let mut w = w;
        let t0 = Instant::now();
        if writeln!(w.stdin, "{}", case.id).and_then(|_| w.stdin.flush()).is_err() {
            let why = describe_exit(&mut w.child);
            record(i, Outcome::abnormal(Status::Crash, format!("{why} before the case started"), 0));
            continue;
        }
        match w.lines.recv_timeout(opts.timeout) {
            Ok(line) => {
                let o = serde_json::from_str::<Outcome>(&line).unwrap_or_else(|e| {
                    Outcome::abnormal(Status::Crash, format!("unreadable worker reply ({e}): {line}"), 0)
                });
                record(i, o);
                worker = Some(w);
            }
            Err(RecvTimeoutError::Timeout) => {
                // Our own child, by handle.
                let _ = w.child.kill();
                let _ = w.child.wait();
                let ms = t0.elapsed().as_millis() as u64;
                let msg = format!("no result after {} s; worker killed", opts.timeout.as_secs());
                record(i, Outcome::abnormal(Status::Timeout, msg, ms));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let why = describe_exit(&mut w.child);
                record(i, Outcome::abnormal(Status::Crash, why, t0.elapsed().as_millis() as u64));
            }
        }
    }
    if let Some(mut w) = worker {
        drop(w.stdin);
        let _ = w.child.wait();
    }
}

/// The worker loop: reads case ids from stdin, writes one outcome line each.
/// Runs on a thread with a large stack.
pub fn worker_main(cases: &[Case], cfg: &Config) -> std::io::Result<()> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new().stack_size(STACK).spawn_scoped(s, || worker_loop(cases, cfg))?;
        h.join().unwrap_or_else(|_| Err(std::io::Error::other("worker thread panicked")))
    })
}

fn worker_loop(cases: &[Case], cfg: &Config) -> std::io::Result<()> {
    let by_id: HashMap<&str, &Case> = cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let id = line.trim();
        // Test hook: simulate generated code crashing the process.
        if std::env::var("KERF_CONFORMANCE_ABORT_ON").is_ok_and(|v| v == id) {
            std::process::abort();
        }
        let outcome = match by_id.get(id) {
            Some(case) => run_case(case, cfg),
            None => Outcome::abnormal(Status::Crash, format!("worker does not know case '{id}'"), 0),
        };
        let json = serde_json::to_string(&outcome).map_err(std::io::Error::other)?;
        writeln!(out, "{PREFIX}{json}")?;
        out.flush()?;
    }
    Ok(())
}

/// Whether this process was started as a worker.
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

/// Checks that `root` exists before workers are started (clear error early).
pub fn root_exists(root: &Path) -> bool {
    root.join("index.json").is_file()
}
