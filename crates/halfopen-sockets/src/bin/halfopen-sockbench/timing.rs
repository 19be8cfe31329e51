//! `time`: runs a command several times with stdout and stdin on /dev/null
//! and reports the median wall time, the median CPU time (user + sys of the
//! child and everything it waited for, from wait4's rusage) and the largest
//! peak RSS (ru_maxrss) — what `/usr/bin/time -v` gives, with millisecond
//! wall resolution and a median.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{median, Args};

pub(crate) fn run(args: &Args) -> Result<(), String> {
    let reps: usize = args.get("reps", 5)?.max(1);
    let Some((prog, rest)) = args.rest.split_first() else {
        return Err("time: no command after --".into());
    };
    let name = args
        .get_str("name")
        .map(str::to_string)
        .unwrap_or_else(|| args.rest.join(" "));
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut rss_max = 0i64;
    for _ in 0..reps {
        let t0 = Instant::now();
        let child = Command::new(prog)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{prog}: {e}"))?;
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid out-parameter.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waiting for our own child; valid pointers.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            if r == pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("wait4: {e}"));
            }
        }
        let wall = t0.elapsed();
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(format!("{name}: exited with status {status:#x}"));
        }
        let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
        walls.push(wall.as_secs_f64() * 1e3);
        cpus.push((tv(ru.ru_utime) + tv(ru.ru_stime)).as_secs_f64() * 1e3);
        rss_max = rss_max.max(ru.ru_maxrss);
    }
    println!(
        "RESULT time name=\"{name}\" reps={reps} wall_ms={:.1} cpu_ms={:.1} wall_min_ms={:.1} wall_max_ms={:.1} peak_rss_kib={rss_max}",
        median(&walls),
        median(&cpus),
        walls.iter().copied().fold(f64::INFINITY, f64::min),
        walls.iter().copied().fold(0.0, f64::max),
    );
    Ok(())
}
