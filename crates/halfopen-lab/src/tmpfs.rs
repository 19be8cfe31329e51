//! A size-limited tmpfs mounted for a test (a disk that fills up), resized
//! while mounted, unmounted (lazily) on drop. Needs root (mount(8)).
use crate::exec::run_ok;
use crate::LabError;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long `mount` may take.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// A tmpfs mounted on a directory; unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `mount -t tmpfs -o size=SIZE tmpfs DIR` (SIZE as mount(8) takes it:
    /// `256k`, `64m`). Errors: [`LabError::CommandFailed`] (not root, no such
    /// directory), [`LabError::Spawn`], [`LabError::Timeout`].
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, LabError> {
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir);
        run_ok(cmd, MOUNT_TIMEOUT)?;
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Gives the mounted file system a new size (`mount -o remount,size=SIZE`);
    /// what it holds stays. Errors as [`Tmpfs::mount`].
    pub fn resize(&self, size: &str) -> Result<(), LabError> {
        let mut cmd = Command::new("mount");
        cmd.args(["-o", &format!("remount,size={size}")]).arg(&self.0);
        run_ok(cmd, MOUNT_TIMEOUT).map(drop)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process of the test may still hold a file there.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
