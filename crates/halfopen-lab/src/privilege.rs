//! The root check that every lab test starts with: skip with a printed reason on a developer's
//! machine, fail in CI (`CI=true`) where a missing privilege means a broken setup.

use crate::lab::is_root;

/// Whether a test that needs a lab can go on. As root: true. Not root and `CI` is not `true`:
/// prints "skipping <test>: needs root (network namespaces)" and returns false. Not root in CI:
/// panics, because there the tests must run.
pub fn require_root_or_skip(test: &str) -> bool {
    decide(test, is_root(), std::env::var("CI").ok().as_deref())
}

fn decide(test: &str, root: bool, ci: Option<&str>) -> bool {
    if root {
        return true;
    }
    if ci == Some("true") {
        panic!("{test}: needs root (network namespaces), and CI=true forbids skipping");
    }
    eprintln!("skipping {test}: needs root (network namespaces)");
    false
}

#[cfg(test)]
mod tests {
    use super::decide;

    #[test]
    fn root_goes_on() {
        assert!(decide("t", true, Some("true")));
        assert!(decide("t", true, None));
    }

    #[test]
    fn not_root_skips_outside_ci() {
        assert!(!decide("t", false, None));
        assert!(!decide("t", false, Some("false")));
    }

    #[test]
    #[should_panic(expected = "needs root")]
    fn not_root_in_ci_fails() {
        decide("t", false, Some("true"));
    }
}
