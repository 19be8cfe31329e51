//! Running short commands (`ip`, `ss`, `sysctl`, anything run inside a namespace) to completion
//! with a hard time bound: output captured, the whole process group killed on timeout.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::LabError;

/// How often bounded waits poll.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// The command line of `cmd`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion within `timeout` and returns its output whatever the exit status.
/// The child gets its own process group, so that a timeout kills whatever it started as well.
pub(crate) fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output, LabError> {
    let command = describe(&cmd);
    tracing::debug!(%command, "run");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        command: command.clone(),
        source,
    })?;
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    let mut readers = 0;
    if let Some(mut out) = child.stdout.take() {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            let _ = tx.send((true, buf));
        });
    }
    if let Some(mut err) = child.stderr.take() {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = tx.send((false, buf));
        });
    }
    drop(tx);

    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(LabError::io(format!("waiting for `{command}`"), e)),
        }
        if Instant::now() >= deadline {
            // Still running: kill its whole group, reap it, report the timeout.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::Timeout {
                what: format!("`{command}`"),
                timeout,
            });
        }
        std::thread::sleep(POLL);
    };

    // The pipes close when the last holder exits; a grandchild that kept them open must not make
    // us hang, so the collection is bounded too.
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let grace = deadline.max(Instant::now() + Duration::from_secs(1));
    for _ in 0..readers {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, b)) => stdout = b,
            Ok((false, b)) => stderr = b,
            Err(_) => break,
        }
    }
    Ok(Output { status, stdout, stderr })
}

/// Like [`run_bounded`], but a non-zero exit is an error carrying stderr; returns stdout.
pub(crate) fn run_ok(cmd: Command, timeout: Duration) -> Result<String, LabError> {
    let command = describe(&cmd);
    let out = run_bounded(cmd, timeout)?;
    if !out.status.success() {
        return Err(LabError::CommandFailed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_bounded(cmd, Duration::from_secs(5)).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn times_out_and_kills_the_group() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        let start = Instant::now();
        let err = run_bounded(cmd, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_ok_reports_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo nope >&2; exit 1"]);
        let err = run_ok(cmd, Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
