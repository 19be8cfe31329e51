//! The root check that every lab test starts with: skip with a printed reason on a developer's
//! machine, fail in CI (`CI=true`) where a missing privilege means a broken setup; and
//! [`ExeForOthers`], a copy of a binary that an unprivileged user can run wherever the
//! original was built (a checkout under a 0700 directory such as /root is not).

use crate::lab::is_root;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A copy of an executable in a fresh directory of its own under the system temp directory
/// (mode 0755, the copy 0755), so that any user can run it. Removed on drop.
#[derive(Debug)]
pub struct ExeForOthers {
    dir: PathBuf,
    exe: PathBuf,
}

impl ExeForOthers {
    /// Copies `exe` (keeping its file name: test harnesses and clap print it).
    pub fn copy(exe: &Path) -> std::io::Result<ExeForOthers> {
        let name = exe
            .file_name()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = std::env::temp_dir().join(format!(
            "halfopen-exe-{}-{}",
            std::process::id(),
            COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let copy = dir.join(name);
        let made = std::fs::copy(exe, &copy)
            .and_then(|_| std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(ExeForOthers { dir, exe: copy })
    }

    pub fn path(&self) -> &Path {
        &self.exe
    }
}

impl Drop for ExeForOthers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COPIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

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
    use super::*;

    #[test]
    fn a_copy_for_others_is_world_executable_and_goes_away() {
        let me = std::env::current_exe().unwrap();
        let c = ExeForOthers::copy(&me).unwrap();
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let dir_mode = std::fs::metadata(c.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o755);
        assert_eq!(c.path().file_name(), me.file_name());
        let dir = c.path().parent().unwrap().to_path_buf();
        drop(c);
        assert!(!dir.exists());
    }

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
