//! External tools the tests run (cross GCCs, qemu-user, valgrind, cmake):
//! the one place that decides whether one is there and what a missing one
//! means.
//!
//! Contract: a test that needs a tool calls [`require`] (fails, naming the
//! Debian package to install) or, where a missing tool may be skipped on a
//! developer's machine, [`present_or_skip`]: it prints `SKIPPED` with the
//! reason and returns false, except under `KERF_REQUIRE_CROSS=1` (set by
//! `testsuite/run-all.sh` and CI), where it fails like [`require`]. No test
//! passes silently because a tool is missing.

/// A program and the Debian package(s) that provide it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// The executable looked up on `PATH`.
    pub program: &'static str,
    /// What to `apt-get install` to get it.
    pub package: &'static str,
}

impl Tool {
    /// A tool named by its program and package.
    pub const fn new(program: &'static str, package: &'static str) -> Tool {
        Tool { program, package }
    }
    /// Whether the program is an executable file on `PATH`.
    pub fn on_path(&self) -> bool {
        on_path(self.program)
    }
}

/// Whether `program` is a file in one of `PATH`'s folders.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Whether missing tools must fail the tests (`KERF_REQUIRE_CROSS` set and not `0`).
pub fn required_by_env() -> bool {
    std::env::var("KERF_REQUIRE_CROSS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The message for the first missing tool of `tools`, if any.
fn missing(what: &str, tools: &[Tool]) -> Option<String> {
    tools
        .iter()
        .find(|t| !t.on_path())
        .map(|t| format!("{what}: '{}' not found; install it: apt-get install {}", t.program, t.package))
}

/// Fails the calling test unless every tool is on `PATH`.
pub fn require(what: &str, tools: &[Tool]) {
    if let Some(msg) = missing(what, tools) {
        panic!("{msg}");
    }
}

/// True when every tool is on `PATH`; otherwise prints why the test is
/// skipped and returns false, or fails under `KERF_REQUIRE_CROSS=1`.
pub fn present_or_skip(what: &str, tools: &[Tool]) -> bool {
    match missing(what, tools) {
        None => true,
        Some(msg) if required_by_env() => panic!("{msg} (KERF_REQUIRE_CROSS=1)"),
        Some(msg) => {
            eprintln!("SKIPPED {msg} (KERF_REQUIRE_CROSS=1 makes this fail)");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_named_with_their_package() {
        let sh = Tool::new("sh", "dash");
        let nope = Tool::new("kerf-no-such-tool", "kerf-no-such-package");
        assert!(missing("x", &[sh]).is_none());
        let m = missing("aarch64", &[sh, nope]).unwrap();
        assert!(m.contains("'kerf-no-such-tool'") && m.contains("apt-get install kerf-no-such-package"), "{m}");
        assert!(std::panic::catch_unwind(|| require("x", &[nope])).is_err());
    }
}
