//! `halfopen-sockbench`: the collector-side measurements of BENCHMARKS.md.
//!
//! - `hold`: creates N ESTABLISHED loopback connections (2N sockets) in the
//!   current network namespace, spread over helper processes, and holds them
//!   until SIGTERM/SIGINT ([`hold`]). Refuses to run in the initial network
//!   namespace: run it under `ip netns exec`.
//! - `collector-cost`: what the collector's kernel worker does per interval,
//!   replicated step by step, K times, with CPU time per interval and phase
//!   ([`cost`]).
//! - `scan-cost`: the parts on their own: the raw dump, scans with and
//!   without tcp_info or a port filter, the /proc walk ([`cost`]).
//! - `time`: runs one or more commands R times each, in turn, with their
//!   output discarded and reports median wall time, median CPU time (wait4
//!   rusage) and peak RSS ([`timing`]).
//!
//! Results are printed as one `RESULT key=value ...` line each, for
//! `bench/collector.sh` to collect.
mod cost;
mod hold;
mod timing;

use std::collections::HashMap;
use std::process::ExitCode;

/// `--key value` options and positional arguments (everything after `--` is
/// positional).
pub(crate) struct Args {
    opts: HashMap<String, String>,
    pub(crate) rest: Vec<String>,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut opts = HashMap::new();
        let mut rest = Vec::new();
        let mut it = args.peekable();
        while let Some(a) = it.next() {
            if a == "--" {
                rest.extend(it.by_ref());
                break;
            }
            match a.strip_prefix("--") {
                Some(k) => {
                    let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
                    opts.insert(k.to_string(), v);
                }
                None => rest.push(a),
            }
        }
        Ok(Args { opts, rest })
    }

    pub(crate) fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.opts.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: cannot parse {v:?}")),
        }
    }

    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }

    /// A comma-separated list of ports ("" = none).
    pub(crate) fn ports(&self, key: &str, default: &[u16]) -> Result<Vec<u16>, String> {
        match self.opts.get(key) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse().map_err(|_| format!("--{key}: bad port {s:?}")))
                .collect(),
        }
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for k in self.opts.keys() {
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown option --{k} (known: {})", known.join(", ")));
            }
        }
        Ok(())
    }
}

const USAGE: &str = "\
usage:
  halfopen-sockbench hold --conns N [--port 5432] [--per-proc 15000] [--timeout-secs 600]
      N connections to 127.0.0.1:PORT from 127.1.x.y, both ends held (2N sockets); prints
      `RESULT hold ...` when ready and holds them until SIGTERM/SIGINT/SIGHUP. Only inside a
      network namespace other than the initial one.
  halfopen-sockbench collector-cost [--intervals 20] [--greeting-ports 21,22,25,110,119,143,587,3306]
      [--stall-after-ms 10000] [--filter either|remote] [--sleep-ms 0]
      The collector kernel worker's per-interval work (Worker::report), replicated.
  halfopen-sockbench scan-cost [--reps 5] [--ports P1,P2,..]
  halfopen-sockbench time [--reps 5] [--name 'NAME|NAME..'] -- COMMAND [ARGS...] [::: COMMAND [ARGS...]]...
      Commands separated by ::: run in turn, one repetition of each per round.
";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("halfopen-sockbench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match cmd.as_str() {
        "hold" => args
            .check_known(&["conns", "port", "per-proc", "timeout-secs"])
            .and_then(|()| hold::run(&args)),
        "collector-cost" => args
            .check_known(&["intervals", "greeting-ports", "stall-after-ms", "filter", "sleep-ms"])
            .and_then(|()| cost::collector_cost(&args)),
        "scan-cost" => args
            .check_known(&["reps", "ports"])
            .and_then(|()| cost::scan_cost(&args)),
        "time" => args.check_known(&["reps", "name"]).and_then(|()| timing::run(&args)),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("halfopen-sockbench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Peak resident set size of this process (VmHWM), in KiB.
pub(crate) fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Median of a non-empty list (the lower middle for an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(s.len() - 1) / 2]
}
