//! [`LabChild`]: a long-running process a lab started inside one of its namespaces, with its log
//! files. The process handle is shared with the [`crate::Lab`] (which kills it at teardown); every
//! signal and every reap goes through that one handle, so a pid is never signalled after it was
//! reaped (and possibly reused).

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::exec::POLL;
use crate::LabError;

/// The process handle shared by a [`LabChild`] and its lab.
#[derive(Debug)]
pub(crate) struct Shared {
    child: Child,
    status: Option<ExitStatus>,
}

pub(crate) type SharedChild = Arc<Mutex<Shared>>;

pub(crate) fn share(child: Child) -> SharedChild {
    Arc::new(Mutex::new(Shared { child, status: None }))
}

fn lock(shared: &SharedChild) -> MutexGuard<'_, Shared> {
    // A panic while holding this lock leaves the handle itself intact.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Sends `sig` to the process and its process group, unless it has already been reaped.
    /// Returns false when the process had already exited.
    fn signal(&mut self, sig: Signal) -> Result<bool, nix::Error> {
        if self.try_wait().ok().flatten().is_some() {
            return Ok(false);
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        // The child leads its own process group (see Lab::spawn): reach what it started too.
        let _ = signal::killpg(pid, sig);
        match signal::kill(pid, sig) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// SIGKILLs the process (and its group) unless already reaped, then reaps it within `timeout`.
/// Returns a problem description if it could not be confirmed dead.
pub(crate) fn kill_and_reap(shared: &SharedChild, timeout: Duration) -> Option<String> {
    let mut g = lock(shared);
    let pid = g.child.id();
    if let Err(e) = g.signal(Signal::SIGKILL) {
        return Some(format!("kill pid {pid}: {e}"));
    }
    let deadline = Instant::now() + timeout;
    loop {
        match g.try_wait() {
            Ok(Some(_)) => return None,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => return Some(format!("pid {pid} still alive {timeout:?} after SIGKILL")),
            Err(e) => return Some(format!("reap pid {pid}: {e}")),
        }
    }
}

/// A process started by [`crate::Lab::spawn`] inside a lab namespace. Cloning gives another
/// handle to the same process. Dropping it does nothing: the lab kills the process at teardown.
#[derive(Debug, Clone)]
pub struct LabChild {
    pub(crate) shared: SharedChild,
    pub(crate) pid: u32,
    pub(crate) label: String,
    pub(crate) stdout_path: PathBuf,
    pub(crate) stderr_path: PathBuf,
}

impl LabChild {
    /// The pid of the program itself (`ip netns exec` replaces itself with it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything it printed on standard output so far.
    pub fn read_stdout(&self) -> Result<String, LabError> {
        read_log(&self.stdout_path)
    }

    /// Everything it printed on standard error so far.
    pub fn read_stderr(&self) -> Result<String, LabError> {
        read_log(&self.stderr_path)
    }

    /// Sends a signal (SIGSTOP, SIGCONT, SIGTERM, SIGKILL...) to the process and its process
    /// group. An error if it has already exited.
    pub fn signal(&self, sig: Signal) -> Result<(), LabError> {
        let mut g = lock(&self.shared);
        match g.signal(sig) {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.exited_error(&g, &format!("{sig}"))),
            Err(e) => Err(LabError::sys(format!("sending {sig} to {}", self.label), e)),
        }
    }

    /// SIGKILLs it (a no-op if it has already exited) and reaps it, waiting at most 5 s.
    pub fn kill(&self) -> Result<ExitStatus, LabError> {
        if let Some(problem) = kill_and_reap(&self.shared, Duration::from_secs(5)) {
            return Err(LabError::Timeout {
                what: format!("{} to die: {problem}", self.label),
                timeout: Duration::from_secs(5),
            });
        }
        self.try_wait()?.ok_or_else(|| LabError::Timeout {
            what: format!("{} to die", self.label),
            timeout: Duration::from_secs(5),
        })
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>, LabError> {
        lock(&self.shared)
            .try_wait()
            .map_err(|e| LabError::io(format!("waiting for {}", self.label), e))
    }

    /// Waits for it to exit, at most `timeout`.
    pub fn wait_with_timeout(&self, timeout: Duration) -> Result<ExitStatus, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{} to exit", self.label),
                    timeout,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits, at most `timeout`, until a complete line of its standard output satisfies `pred`,
    /// and returns that line. Fails early if the process exits first.
    pub fn wait_for_line(&self, mut pred: impl FnMut(&str) -> bool, timeout: Duration) -> Result<String, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Check exit before reading, so that a line printed just before exiting is seen.
            let exited = self.try_wait()?;
            let out = self.read_stdout()?;
            // Only complete lines: the last piece may still be being written.
            let complete = match out.rfind('\n') {
                Some(i) => &out[..i],
                None => "",
            };
            if let Some(line) = complete.lines().find(|l| pred(l)) {
                return Ok(line.to_string());
            }
            if exited.is_some() {
                let g = lock(&self.shared);
                return Err(self.exited_error(&g, "the expected output line"));
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("a line of output from {}", self.label),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits, at most `timeout`, until a line of its standard output parses as JSON of type `T`
    /// (e.g. [`crate::BurstReport`]) and satisfies `pred`; returns the parsed value.
    pub fn wait_for_json<T: serde::de::DeserializeOwned>(
        &self,
        mut pred: impl FnMut(&T) -> bool,
        timeout: Duration,
    ) -> Result<T, LabError> {
        let line = self.wait_for_line(
            |l| serde_json::from_str::<T>(l).map(|v| pred(&v)).unwrap_or(false),
            timeout,
        )?;
        serde_json::from_str(&line).map_err(|e| LabError::Other(format!("{}: {e}: {line}", self.label)))
    }

    /// The last line of its standard output that parses as JSON of type `T`, if any.
    pub fn last_json<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, LabError> {
        Ok(self
            .read_stdout()?
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok()))
    }

    /// Like [`LabChild::wait_for_line`], for a line starting with `prefix`.
    pub fn wait_for_prefix(&self, prefix: &str, timeout: Duration) -> Result<String, LabError> {
        self.wait_for_line(|l| l.starts_with(prefix), timeout)
    }

    fn exited_error(&self, g: &Shared, waited_for: &str) -> LabError {
        let stderr = read_log(&self.stderr_path).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        LabError::Exited {
            what: self.label.clone(),
            status: g.status.map(|s| s.to_string()).unwrap_or_else(|| "gone".into()),
            waited_for: waited_for.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }
}

fn read_log(path: &Path) -> Result<String, LabError> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| LabError::io_path("reading log", path, e))
}
