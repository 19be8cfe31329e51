//! The root check that every lab test starts with: skip with a printed reason on a developer's
//! machine, fail in CI (`CI=true`) where a missing privilege means a broken setup.

use crate::lab::is_root;

/// Whether a test that needs a lab can go on. As root: true. Not root and not in CI: prints
/// "skipping <test>: needs root (network namespaces)" and returns false. Not root in CI (`CI`
/// set to anything but empty, `false` or `0`: CI systems say `true` or `1`): panics, because
/// there the tests must run.
pub fn require_root_or_skip(test: &str) -> bool {
    decide(test, is_root(), std::env::var("CI").ok().as_deref())
}

fn decide(test: &str, root: bool, ci: Option<&str>) -> bool {
    if root {
        return true;
    }
    if let Some(ci) = ci.filter(|v| !matches!(v.trim(), "" | "false" | "0")) {
        panic!("{test}: needs root (network namespaces), and CI={ci} forbids skipping");
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
        assert!(!decide("t", false, Some("0")));
        assert!(!decide("t", false, Some("")));
    }

    #[test]
    #[should_panic(expected = "needs root")]
    fn not_root_in_ci_fails() {
        decide("t", false, Some("true"));
    }

    #[test]
    #[should_panic(expected = "CI=1 forbids skipping")]
    fn not_root_with_ci_1_fails_too() {
        decide("t", false, Some("1"));
    }
}
