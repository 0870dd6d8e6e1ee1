//! Outcomes against the manifest: verdicts, per-suite counts, blessing.
//!
//! A case counts as passed when it behaves as the manifest says: `pass` and
//! it passes, or `xfail <tag>` and it fails with that same tag. Everything
//! else counts as failed: a regression, an unexpected pass (update the
//! manifest), a changed reason, a case missing from the manifest, and every
//! panic, crash or timeout (those fail the run whatever the manifest says).

use std::collections::BTreeMap;

use super::pipeline::{Outcome, Status};
use crate::cases::Case;
use crate::manifest::{Expect, Manifest};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    AsExpected,
    Regressed,
    UnexpectedPass,
    ReasonChanged {
        was: String,
    },
    /// Same status, but a different set of inputs bound to constants.
    BindingChanged {
        was: Vec<String>,
    },
    NotInManifest,
    Abnormal,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        *self == Verdict::AsExpected
    }
}

/// The verdict for an outcome against its manifest line (`bound`: the
/// inputs the line says are bound).
pub fn verdict(expect: Option<&Expect>, bound: &[String], o: &Outcome) -> Verdict {
    if o.status.is_abnormal() {
        return Verdict::Abnormal;
    }
    let v = status_verdict(expect, o);
    if v.ok() && o.bound != bound {
        return Verdict::BindingChanged { was: bound.to_vec() };
    }
    v
}

fn status_verdict(expect: Option<&Expect>, o: &Outcome) -> Verdict {
    match (expect, o.status) {
        (None, _) => Verdict::NotInManifest,
        (Some(Expect::Pass), Status::Pass) => Verdict::AsExpected,
        (Some(Expect::Pass), _) => Verdict::Regressed,
        (Some(Expect::Xfail(_)), Status::Pass) => Verdict::UnexpectedPass,
        (Some(Expect::Xfail(t)), _) if *t == o.tag => Verdict::AsExpected,
        (Some(Expect::Xfail(t)), _) => Verdict::ReasonChanged { was: t.clone() },
    }
}

/// Counts for one suite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuiteCounts {
    pub cases: usize,
    pub pass: usize,
    /// Failing as the manifest expects.
    pub xfail: usize,
    pub regressed: usize,
    pub unexpected_pass: usize,
    pub reason_changed: usize,
    pub not_in_manifest: usize,
    pub panic: usize,
    pub crash: usize,
    pub timeout: usize,
}

impl SuiteCounts {
    /// Cases that behaved as the manifest says (passes and expected failures).
    pub fn passed(&self) -> usize {
        self.pass + self.xfail
    }
    pub fn failed(&self) -> usize {
        self.cases - self.passed()
    }
    fn add(&mut self, v: &Verdict, o: &Outcome) {
        self.cases += 1;
        match v {
            Verdict::AsExpected if o.status == Status::Pass => self.pass += 1,
            Verdict::AsExpected => self.xfail += 1,
            Verdict::Regressed => self.regressed += 1,
            Verdict::UnexpectedPass => self.unexpected_pass += 1,
            Verdict::ReasonChanged { .. } | Verdict::BindingChanged { .. } => self.reason_changed += 1,
            Verdict::NotInManifest => self.not_in_manifest += 1,
            Verdict::Abnormal => match o.status {
                Status::Crash => self.crash += 1,
                Status::Timeout => self.timeout += 1,
                _ => self.panic += 1,
            },
        }
    }
    fn merge(&mut self, o: &SuiteCounts) {
        self.cases += o.cases;
        self.pass += o.pass;
        self.xfail += o.xfail;
        self.regressed += o.regressed;
        self.unexpected_pass += o.unexpected_pass;
        self.reason_changed += o.reason_changed;
        self.not_in_manifest += o.not_in_manifest;
        self.panic += o.panic;
        self.crash += o.crash;
        self.timeout += o.timeout;
    }
}

/// The whole run judged against a manifest.
#[derive(Debug, Default)]
pub struct Report {
    pub suites: BTreeMap<String, SuiteCounts>,
    pub total: SuiteCounts,
    /// (case id, verdict, outcome) of every case not as expected.
    pub problems: Vec<(String, Verdict, Outcome)>,
    /// Manifest entries with no case (only checked on full runs).
    pub stale: Vec<String>,
}

impl Report {
    pub fn build(cases: &[Case], outcomes: &[Outcome], manifest: &Manifest, full_run: bool) -> Report {
        let mut r = Report::default();
        for (c, o) in cases.iter().zip(outcomes) {
            let bound = manifest.bound.get(&c.id).map_or(&[][..], Vec::as_slice);
            let v = verdict(manifest.cases.get(&c.id), bound, o);
            r.suites.entry(c.suite.clone()).or_default().add(&v, o);
            if !v.ok() {
                r.problems.push((c.id.clone(), v, o.clone()));
            }
        }
        for s in r.suites.values() {
            r.total.merge(s);
        }
        if full_run {
            let ids: std::collections::HashSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
            r.stale = manifest.cases.keys().filter(|k| !ids.contains(k.as_str())).cloned().collect();
        }
        r
    }

    pub fn passed(&self) -> usize {
        self.total.passed()
    }

    /// Failed cases plus stale manifest entries.
    pub fn failed(&self) -> usize {
        self.total.failed() + self.stale.len()
    }
}

/// The manifest that describes `outcomes`, merged over `old` (cases not run
/// keep their old line; on a full run, entries without a case are dropped).
pub fn blessed(old: &Manifest, cases: &[Case], outcomes: &[Outcome], full_run: bool) -> Manifest {
    let mut m = if full_run { Manifest::default() } else { old.clone() };
    for (c, o) in cases.iter().zip(outcomes) {
        let e = if o.status == Status::Pass { Expect::Pass } else { Expect::Xfail(o.tag.clone()) };
        m.cases.insert(c.id.clone(), e);
        if o.bound.is_empty() {
            m.bound.remove(&c.id);
        } else {
            m.bound.insert(c.id.clone(), o.bound.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(status: Status, tag: &str) -> Outcome {
        Outcome { status, tag: tag.into(), detail: String::new(), millis: 0, bound: Vec::new() }
    }

    fn verdict_of(e: Option<&Expect>, o: &Outcome) -> Verdict {
        verdict(e, &[], o)
    }

    #[test]
    fn bindings_are_part_of_the_expectation() {
        let mut o = out(Status::Pass, "");
        o.bound = vec!["axes".into()];
        assert_eq!(verdict(Some(&Expect::Pass), &["axes".to_string()], &o), Verdict::AsExpected);
        assert_eq!(verdict(Some(&Expect::Pass), &[], &o), Verdict::BindingChanged { was: vec![] });
        o.bound.clear();
        assert_eq!(
            verdict(Some(&Expect::Pass), &["axes".to_string()], &o),
            Verdict::BindingChanged { was: vec!["axes".into()] }
        );
    }

    #[test]
    fn verdicts() {
        let pass = Expect::Pass;
        let xf = Expect::Xfail("mismatch".into());
        assert_eq!(verdict_of(Some(&pass), &out(Status::Pass, "")), Verdict::AsExpected);
        assert_eq!(verdict_of(Some(&pass), &out(Status::Fail, "mismatch")), Verdict::Regressed);
        assert_eq!(verdict_of(Some(&xf), &out(Status::Fail, "mismatch")), Verdict::AsExpected);
        assert_eq!(verdict_of(Some(&xf), &out(Status::Pass, "")), Verdict::UnexpectedPass);
        assert_eq!(
            verdict_of(Some(&xf), &out(Status::Fail, "codegen:Conv")),
            Verdict::ReasonChanged { was: "mismatch".into() }
        );
        assert_eq!(verdict_of(None, &out(Status::Pass, "")), Verdict::NotInManifest);
        // A blessed panic is still a failure.
        let p = Expect::Xfail("panic".into());
        assert_eq!(verdict_of(Some(&p), &out(Status::Panic, "panic")), Verdict::Abnormal);
    }
}
