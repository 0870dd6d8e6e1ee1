//! A task metric computed by the user's own command (`--metric-cmd`): for
//! metrics kerf cannot know (OCR string accuracy, mAP, WER, ...).
//!
//! Contract: every model output, for every validation sample in order, is
//! written to `<dir>/<output name>.npy` with the samples stacked on a
//! leading axis (`N ×` the output's shape; names sanitised to
//! `[A-Za-z0-9_.-]`); the command runs through `sh -c` with every
//! `{outputs}` replaced by `<dir>` (shell-quoted), and the last number it
//! prints on stdout is the metric, higher is better. A non-zero exit or no
//! number is an error that quotes the command's stderr.

use std::path::PathBuf;
use std::process::Command;

use kerf_ir::Tensor;
use kerf_pipeline::npy;

use crate::{scratch_dir, shell_quote, tail, TuneError};

/// The user's metric command and where its inputs are written (not
/// `Clone`: it removes its folder when dropped).
#[derive(Debug)]
pub struct MetricCommand {
    /// The command line, with `{outputs}` where the outputs folder goes.
    pub cmd: String,
    /// The folder the outputs are written to (replaced on every call).
    pub dir: PathBuf,
}

impl MetricCommand {
    /// A command whose outputs go to a fresh folder under the system's
    /// temporary directory.
    pub fn new(cmd: &str) -> MetricCommand {
        let dir = scratch_dir("tune-outputs");
        MetricCommand { cmd: cmd.to_string(), dir }
    }

    /// Writes `outputs` (`(name, per-sample tensors)`) and runs the command;
    /// its metric.
    pub fn score(&self, outputs: &[(String, Vec<Tensor>)]) -> Result<f64, TuneError> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        std::fs::create_dir_all(&self.dir)?;
        for (name, samples) in outputs {
            let stacked = stack(name, samples)?;
            let path = self.dir.join(format!("{}.npy", file_name(name)));
            npy::write(&path, &stacked).map_err(|e| TuneError::Metric(format!("writing '{}': {e}", path.display())))?;
        }
        let line = self.cmd.replace("{outputs}", &shell_quote(&self.dir.display().to_string()));
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .map_err(|e| TuneError::Metric(format!("cannot run the metric command `{line}`: {e}")))?;
        let tail = tail(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(TuneError::Metric(format!("the metric command `{line}` failed ({}): {tail}", out.status)));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        last_number(&stdout).ok_or_else(|| {
            TuneError::Metric(format!("the metric command `{line}` printed no number on stdout (stderr: {tail})"))
        })
    }
}

impl Drop for MetricCommand {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The samples stacked on a new leading axis.
fn stack(name: &str, samples: &[Tensor]) -> Result<Tensor, TuneError> {
    let Some(first) = samples.first() else {
        return Err(TuneError::Metric(format!("output '{name}': no samples")));
    };
    let mut shape = vec![samples.len()];
    shape.extend_from_slice(first.shape());
    let mut bytes = Vec::with_capacity(first.bytes().len() * samples.len());
    for s in samples {
        bytes.extend_from_slice(s.bytes());
    }
    Tensor::from_bytes(first.dtype(), shape, bytes).map_err(|e| TuneError::Metric(format!("output '{name}': {e}")))
}

/// `name` with every character outside `[A-Za-z0-9_.-]` replaced by `_`.
fn file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect()
}

/// The last decimal number in `s` (`0.97`, `-3`, `1e-2`, `97.5%` → 97.5).
pub fn last_number(s: &str) -> Option<f64> {
    s.split(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .filter_map(|w| {
            let w = w.trim_start_matches(['e', 'E']).trim_end_matches(['e', 'E', '+', '-', '.']);
            w.parse::<f64>().ok().filter(|v| v.is_finite())
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_number_printed_is_the_metric() {
        assert_eq!(last_number("accuracy: 0.9756\n"), Some(0.9756));
        assert_eq!(last_number("cer 3.5% of 120 lines\nscore=97.25%\n"), Some(97.25));
        assert_eq!(last_number("loss -1.5e-2"), Some(-0.015));
        assert_eq!(last_number("no numbers here\n"), None);
        assert_eq!(last_number(""), None);
    }
}
