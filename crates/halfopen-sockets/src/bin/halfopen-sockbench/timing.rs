//! `time`: runs commands several times with stdin and stdout on /dev/null
//! and reports, per command, the median wall time, the median CPU time
//! (user + sys of the child and everything it waited for, from wait4's
//! rusage) and the largest peak RSS (ru_maxrss): what `/usr/bin/time -v`
//! gives, with millisecond wall resolution and a median. Several commands
//! (separated by `:::`) are run in turn, one repetition of each per round,
//! so that a machine whose load changes affects them alike.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{median, Args};

/// One run: wall ms, CPU ms, peak RSS KiB.
fn run_once(argv: &[String], name: &str) -> Result<(f64, f64, i64), String> {
    let (prog, rest) = argv.split_first().ok_or("empty command")?;
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
    Ok((
        wall.as_secs_f64() * 1e3,
        (tv(ru.ru_utime) + tv(ru.ru_stime)).as_secs_f64() * 1e3,
        ru.ru_maxrss,
    ))
}

pub(crate) fn run(args: &Args) -> Result<(), String> {
    let reps: usize = args.get("reps", 5)?.max(1);
    let cmds: Vec<&[String]> = args.rest.split(|a| a == ":::").filter(|c| !c.is_empty()).collect();
    if cmds.is_empty() {
        return Err("time: no command after --".into());
    }
    let names: Vec<String> = match args.get_str("name") {
        Some(n) => n.split('|').map(str::to_string).collect(),
        None => cmds.iter().map(|c| c.join(" ")).collect(),
    };
    if names.len() != cmds.len() {
        return Err(format!("time: {} names for {} commands", names.len(), cmds.len()));
    }
    let mut got: Vec<(Vec<f64>, Vec<f64>, i64)> = vec![(Vec::new(), Vec::new(), 0); cmds.len()];
    for _ in 0..reps {
        for (k, cmd) in cmds.iter().enumerate() {
            let (wall, cpu, rss) = run_once(cmd, &names[k])?;
            got[k].0.push(wall);
            got[k].1.push(cpu);
            got[k].2 = got[k].2.max(rss);
        }
    }
    for (k, (walls, cpus, rss)) in got.iter().enumerate() {
        println!(
            "RESULT time name=\"{}\" reps={reps} wall_ms={:.1} cpu_ms={:.1} wall_min_ms={:.1} wall_max_ms={:.1} peak_rss_kib={rss}",
            names[k],
            median(walls),
            median(cpus),
            walls.iter().copied().fold(f64::INFINITY, f64::min),
            walls.iter().copied().fold(0.0, f64::max),
        );
    }
    Ok(())
}
