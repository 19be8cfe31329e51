//! `halfopen demo`: the incident reproduced in a throwaway lab, and what
//! halfopen finds next to what `ss` shows on each side; it ends with the
//! incident's postmortem (`halfopen incident`'s text form) and its plot
//! written to the current directory. Everything it builds is torn down at
//! the end, on error and on Ctrl-C.
use anyhow::{bail, Context, Result};
use halfopen_lab::fleet::{finding_pairs, poll_agreement, Agreement, Fleet};
use halfopen_lab::Lab;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Connections in the burst from the app host.
    #[arg(long, default_value_t = 200)]
    connections: u32,
    /// The greeting server's listen backlog.
    #[arg(long, default_value_t = 4)]
    backlog: u32,
    /// Serve on a dual-stack [::] listener (the server then sees ::ffff:198.18.0.2).
    #[arg(long)]
    dual_stack: bool,
    /// Longest wait for halfopen to confirm every orphan.
    #[arg(long, default_value = "60s", value_parser = crate::cli::parse_duration)]
    timeout: Duration,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: tearing the lab down");
    }
    Ok(())
}

/// Sleeps in small steps so that Ctrl-C is noticed.
fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    Ok(())
}

pub fn run(args: DemoArgs) -> Result<()> {
    if !halfopen_lab::is_root() {
        bail!(
            "halfopen demo needs root: it builds a throwaway lab of network namespaces (ip netns), \
             and only root may create them. Run it as root, e.g. `sudo halfopen demo`."
        );
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
        // The terminal closed: tear down as for Ctrl-C (printing may fail
        // from here on; the lab's teardown does not depend on it).
        libc::signal(libc::SIGHUP, on_sigint as *const () as libc::sighandler_t);
    }
    let exe = std::env::current_exe().context("locating the halfopen binary")?;
    let mut lab = Lab::new("demo").context("building the lab")?;
    let r = scenario(&mut lab, &exe, &args);
    if r.is_err() {
        eprintln!("logs of the lab processes were in {}", lab.log_dir().display());
    }
    let t = lab.teardown().context("tearing the lab down");
    println!("\nLab torn down: namespaces deleted, processes stopped.");
    r.and(t)
}

fn step(msg: &str) {
    println!("==> {msg}");
}

fn scenario(lab: &mut Lab, exe: &std::path::Path, args: &DemoArgs) -> Result<()> {
    step("Building a lab: hosts `db` 198.18.0.1, `app` 198.18.0.2, `recon` 198.18.0.3 on one bridge");
    lab.add_host("db", "198.18.0.1".parse()?)?;
    lab.add_host("app", "198.18.0.2".parse()?)?;
    lab.add_host("recon", "198.18.0.3".parse()?)?;
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1")?;
    check_interrupted()?;

    step(
        "Starting the reconciler on `recon` and a collector on `db` and on `app` (1 s interval), with mutual TLS \
         (a CA and certificates made by `halfopen certs` in the lab's directory)",
    );
    let db_path = lab.log_dir().join("halfopen.db");
    let db_path = db_path.to_string_lossy().into_owned();
    let mut fleet = Fleet::start(lab, exe, "recon", &["--db", &db_path])?;
    fleet.add_collector(lab, "db", "1s")?;
    fleet.add_collector(lab, "app", "1s")?;
    fleet.wait_for_collectors(lab, Duration::from_secs(30))?;
    check_interrupted()?;

    let listen = if args.dual_stack { "[::]:3306" } else { "0.0.0.0:3306" };
    step(&format!(
        "On `db`: a MySQL-like server that speaks first, on {listen}, backlog {}, first accept() only after 4 s; tcp_syncookies=1",
        args.backlog
    ));
    let backlog = args.backlog.to_string();
    let server = lab.spawn(
        "db",
        exe,
        &[
            "lab",
            "greet-server",
            "--listen",
            listen,
            "--backlog",
            &backlog,
            "--accept-delay",
            "4s",
        ],
    )?;
    server.wait_for_prefix("listening", Duration::from_secs(10))?;

    step(&format!(
        "On `app`: {} connects at once to 198.18.0.1:3306, each waiting for the greeting",
        args.connections
    ));
    let count = args.connections.to_string();
    let burst = lab.spawn(
        "app",
        exe,
        &["lab", "burst", "--target", "198.18.0.1:3306", "--count", &count],
    )?;
    let settled = burst.wait_for_line(|l| l.contains("\"established\""), Duration::from_secs(30))?;
    println!("    burst settled: {settled}");
    step("Waiting for the server's accept loop to start and drain its queue");
    sleep(Duration::from_secs(5))?;

    let server_addr: SocketAddr = "198.18.0.1:3306".parse()?;
    let started = Instant::now();
    let Agreement { truth, found, agreed } =
        poll_agreement(lab, &fleet, "app", "db", server_addr, args.timeout, check_interrupted)?;
    if !agreed {
        println!(
            "    halfopen reports {} orphans, ss shows {} client-only connections; giving up after {:?}",
            finding_pairs(&found).len(),
            truth.len(),
            args.timeout
        );
    }
    let elapsed = started.elapsed();

    let app_ss = lab.ss_established("app")?;
    let db_ss = lab.ss_established("db")?;
    let client_to_db = app_ss.iter().filter(|c| c.remote == server_addr).count();
    let db_from_app = db_ss.iter().filter(|c| c.local.port() == 3306).count();
    println!();
    step("What `ss -tn state established` shows on each side");
    println!("    app: {client_to_db} connections ESTABLISHED to 198.18.0.1:3306");
    println!("    db:  {db_from_app} connections ESTABLISHED on :3306");
    println!(
        "    -> {} connections exist only on the client: the server never had them (SYN cookies, full accept queue)",
        truth.len()
    );
    match lab.net_counters("db") {
        Ok(counters) => {
            let c = |k: &str| counters.get(&format!("TcpExt.{k}")).copied().unwrap_or(0);
            println!(
                "    db TcpExt: ListenOverflows={} ListenDrops={} SyncookiesSent={} SyncookiesRecv={}",
                c("ListenOverflows"),
                c("ListenDrops"),
                c("SyncookiesSent"),
                c("SyncookiesRecv")
            );
        }
        Err(e) => println!("    db TcpExt counters unavailable: {e}"),
    }
    println!();
    step("What halfopen found (`halfopen orphans`)");
    let exe_s = exe.to_string_lossy().into_owned();
    let reader = fleet.reader_args();
    let with_reader = |cmd: &[&'static str]| -> Vec<String> {
        cmd.iter()
            .map(|s| s.to_string())
            .chain(reader.iter().cloned())
            .collect()
    };
    let orphans_args = with_reader(&["orphans"]);
    let orphans_args: Vec<&str> = orphans_args.iter().map(String::as_str).collect();
    let table = lab.run_ok("recon", &exe_s, &orphans_args, Duration::from_secs(30))?;
    print!("{}", indent(&head(&table, 16)));
    println!();
    step("Why, and what to change (`halfopen explain db:3306`)");
    let explain_args = with_reader(&["explain", "db:3306"]);
    let explain_args: Vec<&str> = explain_args.iter().map(String::as_str).collect();
    let explain = lab.run_ok("recon", &exe_s, &explain_args, Duration::from_secs(30))?;
    print!("{}", indent(&explain));
    let pairs = finding_pairs(&found);
    let missed = truth.difference(&pairs).count();
    let extra = pairs.difference(&truth).count();
    // The pid halfopen names must be the one `ss -p` shows for that socket.
    let right_pid = found
        .iter()
        .filter(|f| {
            let client: Option<SocketAddr> = f["client"].as_str().and_then(|c| c.parse().ok());
            app_ss
                .iter()
                .find(|c| Some(c.local) == client)
                .and_then(|c| c.process.as_ref())
                .is_some_and(|(pid, _)| f["pid"].as_u64() == Some(*pid as u64))
        })
        .count();
    println!();
    if missed == 0 && extra == 0 && !truth.is_empty() {
        println!(
            "RESULT: halfopen found exactly the {} client-only connections that ss shows on both sides, confirmed {:.1} s \
             after the burst settled; {right_pid} of {} name the same client pid as `ss -tnp` (the burst, pid {}).",
            truth.len(),
            elapsed.as_secs_f64() + 5.0,
            found.len(),
            burst.pid()
        );
    } else {
        bail!(
            "halfopen and ss disagree: {missed} client-only connections not reported, {extra} reported that ss does not show \
             ({} by ss)",
            truth.len()
        )
    }
    println!();
    postmortem(lab, &fleet, &exe_s, &burst)
}

/// Where the demo writes the incident's plot: the directory it was run from.
const PLOT_FILE: &str = "halfopen-demo-incident.svg";

/// The demo's last step: the burst's process exits (its kernel closes the
/// orphans), halfopen records them gone, and the incident it caused is
/// printed as `halfopen incident ID` prints it, its plot written to
/// [`PLOT_FILE`] in the current directory. The reconciler listens inside
/// the lab, so the query runs there, through the real command.
fn postmortem(lab: &Lab, fleet: &Fleet, exe: &str, burst: &halfopen_lab::LabChild) -> Result<()> {
    step("The client gives up: the burst's process exits, its kernel closes the orphans");
    burst.kill().context("stopping the burst")?;
    let server_is_db =
        |i: &serde_json::Value| i["server_host"] == "db" && i["server"].as_str().is_some_and(|s| s.ends_with(":3306"));
    // Bounded: the orphans go at the collectors' next reports, the listener
    // at risk after three quiet intervals.
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        check_interrupted()?;
        let list = fleet.query(lab, &["incidents", "--since", "1h"])?;
        let mine = list
            .as_array()
            .and_then(|v| v.iter().rev().find(|i| server_is_db(i)))
            .cloned();
        match mine {
            Some(i) if i["ended"] != "ongoing" || Instant::now() > deadline => {
                break i["id"].as_str().unwrap_or_default().to_string();
            }
            None if Instant::now() > deadline => bail!("the reconciler recorded no incident on db:3306"),
            _ => sleep(Duration::from_secs(1))?,
        }
    };
    let plot = std::env::current_dir()
        .context("finding the current directory for the plot")?
        .join(PLOT_FILE);
    let plot_s = plot.to_string_lossy().into_owned();
    step(&format!(
        "The postmortem of the incident it caused (`halfopen incident '{id}'`)"
    ));
    let reader = fleet.reader_args(); // --reconciler URL and the reader certificate
    let mut args = vec!["incident", id.as_str(), "--plot", plot_s.as_str()];
    args.extend(reader.iter().map(String::as_str));
    let text = lab.run_ok(&fleet.reconciler_host, exe, &args, Duration::from_secs(60))?;
    print!("{}", indent(&text));
    println!();
    println!(
        "Its plot (one-sided connections per client process, the listener's queue and drops, SYN cookies) is in {}",
        plot.display()
    );
    Ok(())
}

/// The first `n` lines, and how many more there were.
fn head(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() <= n {
        return s.to_string();
    }
    let mut out = lines[..n].join("\n");
    out.push_str(&format!(
        "\n... {} more lines (`halfopen orphans` lists them all)\n",
        lines.len() - n
    ));
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
