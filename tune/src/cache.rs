//! On-disk cache of measured plans, so a second `kerf tune` (another
//! budget, another objective, an interrupted run) re-measures nothing it
//! has measured before.
//!
//! One file per measured plan, `<dir>/<key>.txt`, where the key is the
//! SHA-256 of everything the measurement depends on: the session's
//! fingerprint (imported graph, target triple and CPU — the host CPU's
//! name and flags for `native` —, passes), the calibration and validation
//! data and labels (content hashes), the metric's kind (and command; not
//! its budget), the timed-run count, the runner command and compiler (or the
//! target latencies are estimated for), kerf's version and executable (size and
//! modification time: a rebuilt kerf measures afresh), and the plan itself. The file holds
//! the metric, latency, weight bytes and MACs (and for a (layer, variant)
//! its micro-benchmark delta and reconstruction error) and the per-sample output
//! errors as `key = value` lines;
//! floats are written in Rust's shortest round-trip form, so a cached
//! measurement is the measured one bit for bit. A file that does not parse
//! is ignored (and overwritten by the next measurement).
//!
//! Layer micro-benchmarks are cached on their own, `<dir>/seg-<key>.txt`,
//! keyed by the same context and the segment's fingerprint (its IR with
//! weights by content hash, target, CPU, passes): the layer's signature and
//! variant, so an FP32 segment is timed once however many runs need it.

use std::fmt::Write as _;
use std::path::PathBuf;

use kerf_compress::Plan;
use kerf_ir::Graph;
use kerf_pipeline::Session;
use sha2::{Digest, Sha256};

use crate::options::{Data, Evaluated, Metric, TuneOptions};
use crate::TuneError;

/// A folder of cached measurements for one tuning context.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    /// The SHA-256 state after everything but the plan.
    context: Sha256,
}

impl Cache {
    /// The cache in `dir` (created if needed) for tuning `base` (whose
    /// imported graph is `g`) on `data` with `opts`.
    pub fn new(dir: PathBuf, base: &Session, g: &Graph, data: &Data, opts: &TuneOptions) -> Result<Cache, TuneError> {
        std::fs::create_dir_all(&dir).map_err(|e| TuneError::Config(format!("--cache {}: {e}", dir.display())))?;
        let mut c = format!("kerf-tune-cache 4 {}\n{}\n", env!("CARGO_PKG_VERSION"), base.fingerprint(g));
        // the build itself: a rebuilt kerf may generate other code
        if let Some(m) = std::env::current_exe().ok().and_then(|p| std::fs::metadata(p).ok()) {
            let _ = writeln!(c, "exe {} {:?}", m.len(), m.modified().ok());
        }
        // what is measured, not the budget judged against it: another
        // budget reads the same measurements back
        let command = match &opts.metric {
            Metric::Command { cmd, .. } => cmd.as_str(),
            _ => "",
        };
        let _ = writeln!(c, "metric {} {command:?} iters {}", opts.metric.name(), opts.iters);
        if let Some(r) = &opts.runner {
            let _ = writeln!(c, "runner {:?} cc {:?} {:?}", r.runner, r.cc, r.cflags);
        }
        if let Some(t) = &opts.estimate_for {
            let _ = writeln!(c, "estimated for {t}");
        }
        for (name, t) in &data.calib {
            let _ = writeln!(c, "calib {name} {}", t.content_hash());
        }
        for s in &data.val {
            let hashes: Vec<String> = s.iter().map(|t| t.content_hash()).collect();
            let _ = writeln!(c, "val {}", hashes.join(" "));
        }
        let _ = writeln!(c, "labels {:?}", data.labels);
        let mut context = Sha256::new();
        context.update(c.as_bytes());
        Ok(Cache { dir, context })
    }

    fn path(&self, plan: &Plan) -> PathBuf {
        let mut h = self.context.clone();
        h.update(plan.to_toml().as_bytes());
        let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.txt"))
    }

    /// The cached measurement of `plan`, labelled `label`, if there is one.
    pub fn get(&self, label: &str, plan: &Plan) -> Option<Evaluated> {
        let text = std::fs::read_to_string(self.path(plan)).ok()?;
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix(" = "));
        Some(Evaluated {
            label: label.to_string(),
            plan: plan.clone(),
            metric: field("metric")?.parse().ok()?,
            latency_ms: field("latency_ms")?.parse().ok()?,
            weight_bytes: field("weight_bytes")?.parse().ok()?,
            macs: field("macs")?.parse().ok()?,
            layer_delta_ms: field("layer_delta_ms").and_then(|v| v.parse().ok()),
            layer_error: field("layer_error").and_then(|v| v.parse().ok()),
            sample_error: match field("sample_error") {
                Some(v) => v.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?,
                None => Vec::new(),
            },
        })
    }

    fn segment_path(&self, fingerprint: &str) -> PathBuf {
        let mut h = self.context.clone();
        h.update(b"segment\n");
        h.update(fingerprint.as_bytes());
        let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("seg-{hex}.txt"))
    }

    /// The cached time (ms) of the layer segment with this fingerprint.
    pub fn get_segment(&self, fingerprint: &str) -> Option<f64> {
        let text = std::fs::read_to_string(self.segment_path(fingerprint)).ok()?;
        text.lines().find_map(|l| l.strip_prefix("latency_ms = "))?.parse().ok()
    }

    /// Stores a layer segment's time (ms).
    pub fn put_segment(&self, fingerprint: &str, ms: f64) -> Result<(), TuneError> {
        write_whole(&self.segment_path(fingerprint), &format!("latency_ms = {ms}\n"))
    }

    /// Stores the measurement `e` (of `e.plan`).
    pub fn put(&self, e: &Evaluated) -> Result<(), TuneError> {
        let mut text = format!(
            "# {}\nmetric = {}\nlatency_ms = {}\nweight_bytes = {}\nmacs = {}\n",
            e.label, e.metric, e.latency_ms, e.weight_bytes, e.macs
        );
        if let Some(d) = e.layer_delta_ms {
            let _ = writeln!(text, "layer_delta_ms = {d}");
        }
        if let Some(x) = e.layer_error {
            let _ = writeln!(text, "layer_error = {x}");
        }
        if !e.sample_error.is_empty() {
            let v: Vec<String> = e.sample_error.iter().map(f64::to_string).collect();
            let _ = writeln!(text, "sample_error = {}", v.join(" "));
        }
        write_whole(&self.path(&e.plan), &text)
    }
}

/// Writes `text` to a temporary file, then renames it: a killed run leaves
/// no torn file.
fn write_whole(path: &std::path::Path, text: &str) -> Result<(), TuneError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let named = |e: std::io::Error| TuneError::Config(format!("--cache: writing {}: {e}", path.display()));
    std::fs::write(&tmp, text).map_err(named)?;
    std::fs::rename(&tmp, path).map_err(named)?;
    Ok(())
}
