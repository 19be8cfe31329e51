//! The command line: every command, flag and default, and the parsers of
//! flag values. The names here are contracts that operators and scripts
//! rely on.
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use halfopen_core::FindingKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::args::{parse_duration, parse_interval, parse_retention, parse_size, Retention};

/// The reconciler on this machine. No scheme: TLS when TLS files are given,
/// plaintext (loopback only) otherwise.
pub const DEFAULT_RECONCILER: &str = "127.0.0.1:7077";

/// Mutual TLS to or of the reconciler, shared by every command that talks gRPC.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// CA certificate(s) (PEM) that issued the other side's certificate. With --tls-cert and
    /// --tls-key: mutual TLS (make all three with `halfopen certs`).
    #[arg(long, env = "HALFOPEN_TLS_CA", value_name = "FILE", help_heading = "TLS")]
    pub tls_ca: Option<PathBuf>,
    /// This side's certificate (PEM): the reconciler's server certificate, a collector certificate
    /// for this host id, or a reader certificate for queries.
    #[arg(long, env = "HALFOPEN_TLS_CERT", value_name = "FILE", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// This side's private key (PEM; keep it mode 0600).
    #[arg(long, env = "HALFOPEN_TLS_KEY", value_name = "FILE", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// Allow plaintext off loopback: serve, or talk to, a non-loopback address without TLS. Anyone
    /// on the network can then report as any host and read every finding (warned, counted).
    #[arg(long, help_heading = "TLS")]
    pub insecure: bool,
}

#[derive(Parser)]
#[command(
    name = "halfopen",
    version,
    about = "Find half-open TCP connections by comparing both ends",
    long_about = "Find half-open TCP connections by comparing both ends.\n\n\
        A collector on every host streams its TCP socket table to one reconciler, which joins both ends of \
        every connection by 4-tuple and reports, after a race-free confirmation, the connections that only \
        the client holds: the SYN-cookie incident where a full accept queue made the server forget a \
        handshake the client thinks is done, and the client waits forever for a greeting.",
    after_help = "Quick start on one machine (as root): halfopen demo\n\
        On real hosts: make certificates with `halfopen certs` (mutual TLS), run `halfopen reconciler` once, \
        `halfopen collector --reconciler https://RECONCILER:7077` with its certificate on every app and DB host, \
        then `halfopen orphans`."
)]
pub struct Cli {
    /// Log filter for the services (also RUST_LOG), e.g. info, debug, halfopen_reconciler=debug.
    #[arg(long, global = true, env = "HALFOPEN_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Which network namespaces a collector covers, and how it names them.
#[derive(clap::Args, Debug, Clone)]
pub struct NetnsArgs {
    /// Network namespaces to cover: all (every one on the machine that holds TCP sockets, found through
    /// /proc/*/ns/net and /run/netns, rescanned), self (only the collector's own), or a list of
    /// /run/netns names and pid:N (the namespace of process N), with self to include the own one.
    /// Each namespace but the own is reported as the host HOSTID/NAME (NAME: its Kubernetes pod
    /// namespace/name, container, /run/netns name or netns-INODE). Entering one needs CAP_SYS_ADMIN.
    #[arg(long, env = "HALFOPEN_NETNS", default_value = "all", value_parser = parse_netns)]
    pub netns: halfopen_sockets::netns::NetnsSpec,
    /// How often namespaces are looked for again (100ms..1h).
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub netns_rescan: Duration,
    /// At most this many namespaces besides the collector's own; the others are listed as not covered.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_namespaces: u32,
    /// The node's root directory, where var/log/pods (Kubernetes) and var/lib/docker/containers name
    /// the pods and containers of namespaces (e.g. /host when the node's / is mounted there).
    #[arg(long, default_value = "/")]
    pub host_root: PathBuf,
}

fn parse_netns(s: &str) -> Result<halfopen_sockets::netns::NetnsSpec, String> {
    s.parse().map_err(|e: halfopen_sockets::netns::SpecError| e.to_string())
}

/// `--kind`: one of the finding kinds, listed in `--help`.
fn kind_parser() -> impl TypedValueParser<Value = FindingKind> {
    PossibleValuesParser::new(FindingKind::ALL.map(|k| k.as_str()))
        .map(|s| s.parse::<FindingKind>().expect("the possible values are the kinds"))
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the per-host collector: stream this host's TCP table to the reconciler.
    #[command(
        after_help = "Example: halfopen collector --reconciler https://10.1.0.5:7077 --host-id web-1 \
        --tls-ca /etc/halfopen/tls/ca.pem --tls-cert /etc/halfopen/tls/web-1.pem --tls-key /etc/halfopen/tls/web-1-key.pem\n\
        The certificate must be a collector certificate for the host id (`halfopen certs issue --host web-1`).\n\
        Runs as root (sock_diag sees every socket without it, but naming client processes needs /proc/<pid>/fd).\n\
        Reconnects with backoff while the reconciler is away; never exits because of it."
    )]
    Collector {
        /// Reconciler address: [https://]HOST[:PORT] (port 7077 when not given; https:// when TLS
        /// files are given).
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// How often to scan and report, 100ms to 1h (e.g. 5s, 1s, 500ms).
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        interval: Duration,
        /// This host's name in reports and findings (default: the hostname).
        #[arg(long)]
        host_id: Option<String>,
        /// Where the socket table comes from: auto (eBPF where the build, the kernel and the
        /// collector's capabilities allow it, else netlink; logged), bpf (state transitions between
        /// sock_diag dumps, owners at connect(), and the kernel witnessing handshakes dropped on a full
        /// accept queue; fails if unavailable), netlink (a sock_diag dump every interval), proc
        /// (/proc/net/tcp every interval).
        #[arg(long, default_value = "auto", value_parser = PossibleValuesParser::new(["auto", "bpf", "netlink", "proc"])
            .map(|s| s.parse::<halfopen_collector::source::SourceChoice>().expect("the possible values are the sources")))]
        source: halfopen_collector::source::SourceChoice,
        /// Read /proc/net/tcp instead of netlink sock_diag (slower; for kernels without sock_diag): the
        /// same as --source proc.
        #[arg(long, conflicts_with = "source")]
        proc_net: bool,
        /// eBPF source: take a sock_diag dump at least this often, besides whenever events were lost (a
        /// loss counter rose, or the kernel's Tcp CurrEstab was off the table twice in a row).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        bpf_dump_every: Duration,
        /// eBPF source: size of the transitions ring buffer (a power of two, at least 4KiB).
        #[arg(long, hide = true, value_parser = parse_size)]
        bpf_ring_size: Option<usize>,
        /// Send command lines as they are. By default secrets in them are replaced by *** before
        /// they leave the host (--password=, --token, -pSECRET for MySQL clients, URL credentials,
        /// NAME_PASSWORD=...).
        #[arg(long)]
        show_secrets: bool,
        /// Also hide the value of this flag in command lines (repeatable; without dashes: db-pw).
        #[arg(long = "redact-flag", value_name = "NAME")]
        redact_flags: Vec<String>,
        /// Serve Prometheus metrics at http://ADDR/metrics (off unless given; suggested port 9478).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        netns: NetnsArgs,
    },
    /// Run the central reconciler: join every host's table, confirm and record findings.
    #[command(
        after_help = "Example: halfopen reconciler --listen 0.0.0.0:7077 --db /var/lib/halfopen/halfopen.db \
        --tls-ca /etc/halfopen/tls/ca.pem --tls-cert /etc/halfopen/tls/recon.example.pem \
        --tls-key /etc/halfopen/tls/recon.example-key.pem\n\
        With mutual TLS collectors need a collector certificate for their host id, queries a reader certificate. \
        Without TLS it serves only a loopback address, unless --insecure."
    )]
    Reconciler {
        /// Address to listen on for collectors and the CLI [default: 0.0.0.0:7077 with TLS or
        /// --insecure, else 127.0.0.1:7077]
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// SQLite database that records every confirmed finding (survives restarts).
        #[arg(long, env = "HALFOPEN_DB", default_value = "/var/lib/halfopen/halfopen.db")]
        db: PathBuf,
        /// Keep findings in memory only.
        #[arg(long, conflicts_with = "db")]
        no_db: bool,
        /// How long a candidate must be known before the server host is asked (must exceed any handshake).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        grace: Duration,
        /// A host with no report for this many of its intervals is stale: nothing is judged against it.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        stale_intervals: u32,
        /// Also treat this port as server-speaks-first (repeatable; defaults: 21 22 25 110 119 143 587 3306).
        #[arg(long = "greeting-port")]
        greeting_ports: Vec<u16>,
        /// A client on a greeting port that received nothing for this long is a stalled greeting.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        stall_after: Duration,
        /// A host whose collector has been away this long is gone: what servers still hold from it is
        /// reported (confirmed by the server alone), and what it held is forgotten.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        gone_after: Duration,
        /// A connection left this long in a listener's accept queue means its accept loop is stuck
        /// (finding accept_stalled).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        accept_stall_after: Duration,
        /// Delete findings that ended, and samples, older than this (checked at start and hourly);
        /// `forever` keeps everything. Current findings are never deleted.
        #[arg(long, default_value = "30d", value_parser = parse_retention)]
        retention: Retention,
        /// Findings on one listener (host and port) closer than this in time are one incident.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        incident_gap: Duration,
        /// Most host ids known at once; a collector with a new one beyond it is refused
        /// (RESOURCE_EXHAUSTED).
        #[arg(long, default_value_t = halfopen_reconciler::DEFAULT_MAX_HOSTS)]
        max_hosts: usize,
        /// Most sockets in one host's table; a collector sending more has its session ended.
        #[arg(long, default_value_t = halfopen_reconciler::DEFAULT_MAX_SOCKETS_PER_HOST)]
        max_sockets_per_host: usize,
        /// Most collector sessions open at once from one address (a collector covering network
        /// namespaces opens one per namespace).
        #[arg(long, default_value_t = halfopen_reconciler::DEFAULT_MAX_SESSIONS_PER_PEER)]
        max_sessions_per_peer: usize,
        /// Largest message a collector may send (collectors send ~1 MiB chunks).
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        max_message_size: usize,
        /// A host gone this long that no finding refers to is forgotten.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        forget_hosts_after: Duration,
        /// A dropped_handshake (a handshake the server's kernel witnessed dropped, from a client no
        /// collector watches) is gone this long after it was seen, unless the server gains the
        /// connection first; witnessed drops are kept this long to match client_only findings.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        dropped_handshake_ttl: Duration,
        /// Serve Prometheus metrics at http://ADDR/metrics (off unless given; suggested port 9477).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// List the current half-open connections (client_only).
    #[command(
        after_help = "Example: halfopen orphans --reconciler https://10.1.0.5:7077 --json | jq '.[].pid'\n\
        (with a reader certificate in HALFOPEN_TLS_CA, HALFOPEN_TLS_CERT, HALFOPEN_TLS_KEY: `halfopen certs issue --reader NAME`)"
    )]
    Orphans {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// One JSON array; each element: client, server, client_host, server_host, side, pid, process, cmdline, uid, first_seen, confirmed_at, ...
        #[arg(long)]
        json: bool,
    },
    /// List every finding: client_only, server_only, stalled_greeting, listener_at_risk, accept_stalled,
    /// dropped_handshake, with why.
    #[command(after_help = "Example: halfopen findings --kind stalled_greeting --json")]
    Findings {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// Only this kind.
        #[arg(long, value_parser = kind_parser())]
        kind: Option<FindingKind>,
        /// One JSON array: the orphans fields plus kind, server_pid, server_process, explanation, ...
        #[arg(long)]
        json: bool,
    },
    /// Every finding, current and gone, alive in a time window (from the reconciler's database).
    #[command(
        after_help = "T: an RFC 3339 time (2026-11-30T17:00:00Z) or a time ago (30m, 2h, 7d).\n\
        Examples:\n  halfopen history --since 2h --server db-1:3306\n  \
        halfopen history --since 2026-11-30T02:00:00Z --until 2026-11-30T04:00:00Z --process php-fpm --csv > night.csv"
    )]
    History {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// Start of the window: findings alive at or after it.
        #[arg(long, value_name = "T", default_value = "24h")]
        since: String,
        /// End of the window (default: now).
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// Only this kind.
        #[arg(long, value_parser = kind_parser())]
        kind: Option<FindingKind>,
        /// Only findings with this host (client's or server's host id).
        #[arg(long, value_name = "H")]
        host: Option<String>,
        /// Only this server: ADDR:PORT (the server end or its listener) or HOST:PORT (a host id).
        #[arg(long, value_name = "ADDR|HOST:PORT")]
        server: Option<String>,
        /// Only findings of this process (client or server; its name or command).
        #[arg(long, value_name = "NAME")]
        process: Option<String>,
        /// One JSON array: the fields of `findings --json`, plus gone_at, gone_reason, incident.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV with a header row (RFC 4180).
        #[arg(long)]
        csv: bool,
    },
    /// One row per incident (findings on one listener that belong together) in a time window.
    #[command(after_help = "Example: halfopen incidents --since 7d\n\
        Then: halfopen incident 'db-1:3306@20261130T021502Z' --format markdown --plot incident.svg")]
    Incidents {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        /// Start of the window: incidents alive at or after it.
        #[arg(long, value_name = "T", default_value = "7d")]
        since: String,
        /// End of the window (default: now).
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// One JSON array; each element: id, start, end, server, server_host, peak, findings, kinds,
        /// client_processes, counters, ended, duration_s.
        #[arg(long)]
        json: bool,
    },
    /// The postmortem of one incident: what happened, timeline, who was affected, why, what to change.
    #[command(after_help = "Examples:\n  halfopen incident 'db-1:3306@20261130T021502Z'\n  \
        halfopen incident 'db-1:3306@20261130T021502Z' --format html --output incident.html\n  \
        halfopen incident 'db-1:3306@20261130T021502Z' --format markdown --plot incident.png")]
    Incident {
        /// The incident's id, as `halfopen incidents` lists it (HOST:PORT@START).
        id: String,
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Also draw the incident to this file (.svg or .png): one-sided connections per client
        /// process, the listener's drops, queue and backlog, and SYN cookies on one time axis.
        #[arg(long, value_name = "FILE.svg|FILE.png")]
        plot: Option<PathBuf>,
        /// Write the report here instead of to stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Diagnose a finding, a host or a listener, and say exactly what to change.
    #[command(
        after_help = "TARGET: a host id (db-1), a listener (db-1:3306 or 10.0.0.5:3306), or a finding's client \
        endpoint (10.0.0.7:51234). Without TARGET: every listener and finding that needs attention.\n\
        Example: halfopen explain db-1:3306"
    )]
    Explain {
        target: Option<String>,
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long)]
        json: bool,
    },
    /// List every collector: addresses, last report, socket counts, stale or not.
    #[command(after_help = "Example: halfopen hosts --json")]
    Hosts {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long)]
        json: bool,
    },
    /// What the answers cover, and what not: stale or gone hosts, conflicts, shared addresses,
    /// connections to unmonitored servers, what collectors cannot see.
    #[command(after_help = "Example: halfopen coverage --json | jq .not_covered")]
    Coverage {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[command(flatten)]
        tls: TlsArgs,
        #[arg(long)]
        json: bool,
    },
    /// This host's TCP connections as the collector sees them, with side and process (like `ss -tnp`).
    #[command(after_help = "Example: halfopen snapshot --json | jq '.[] | select(.side==\"client\")'")]
    Snapshot {
        #[arg(long)]
        json: bool,
        /// Also read tcp_info (bytes received/acked, ms since last data received).
        #[arg(long)]
        info: bool,
        /// Read /proc/net/tcp instead of netlink sock_diag.
        #[arg(long)]
        proc_net: bool,
    },
    /// Make a small CA and the mutual-TLS certificates of the reconciler, collectors and readers.
    #[command(
        subcommand,
        after_help = "Example:\n  \
        halfopen certs init --dir /etc/halfopen/ca\n  \
        halfopen certs issue --dir /etc/halfopen/ca --reconciler recon.example,10.1.0.5\n  \
        halfopen certs issue --dir /etc/halfopen/ca --host web-1\n  \
        halfopen certs issue --dir /etc/halfopen/ca --reader alice\n\
        Files: DIR/ca.pem (every peer), DIR/ca-key.pem (stays here), DIR/NAME.pem and DIR/NAME-key.pem (mode 0600) \
        for each peer. An existing PKI can issue them instead: subject OU=halfopen-collector|halfopen-reader|\
        halfopen-reconciler, CN = the host id or reader name, the reconciler's names as SANs (deploy/README.md)."
    )]
    Certs(CertsCmd),
    /// Reproduce the SYN-cookie incident in a throwaway lab and show what halfopen finds (root).
    #[cfg(feature = "demo")]
    #[command(
        after_help = "Builds network namespaces (198.18.0.0/15 addresses only), runs the real reconciler and \
        collectors in them, overflows a greeting server's accept queue with a burst of connects, prints \
        halfopen's findings next to `ss` on both sides, and tears everything down (also on Ctrl-C).\n\
        Example: sudo halfopen demo --connections 500 --dual-stack"
    )]
    Demo(crate::commands::demo::DemoArgs),
    /// Lab processes used by `demo` and the tests.
    #[cfg(feature = "demo")]
    #[command(hide = true)]
    Lab {
        #[command(subcommand)]
        cmd: halfopen_lab::LabCommand,
    },
}

/// `halfopen certs`.
#[derive(Subcommand)]
pub enum CertsCmd {
    /// Make a CA: DIR/ca.pem (give it to every peer) and DIR/ca-key.pem (mode 0600; keep it here).
    #[command(after_help = "Example: halfopen certs init --dir /etc/halfopen/ca")]
    Init {
        /// Directory for the CA (created with mode 0700 if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The CA's name (CN) [default: "halfopen CA" and the time it was made].
        #[arg(long)]
        name: Option<String>,
        /// How long the CA is valid; every certificate it issues ends by then.
        #[arg(long, default_value = "3650d", value_parser = parse_duration)]
        validity: Duration,
        /// Replace an existing CA (every certificate of the old one stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate with the CA in DIR: DIR/NAME.pem and DIR/NAME-key.pem (mode 0600).
    #[command(after_help = "Examples:\n  \
        halfopen certs issue --dir /etc/halfopen/ca --reconciler recon.example,10.1.0.5\n  \
        halfopen certs issue --dir /etc/halfopen/ca --host web-1 --out /tmp/web-1\n  \
        halfopen certs issue --dir /etc/halfopen/ca --reader alice --validity 30d")]
    Issue {
        /// Directory holding the CA (ca.pem, ca-key.pem).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        what: IssueWhat,
        /// How long the certificate is valid (cut to the CA's end).
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        validity: Duration,
        /// Write the certificate, its key and a copy of ca.pem here instead of DIR (created 0700).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace existing files of the same name.
        #[arg(long)]
        force: bool,
    },
}

/// Which certificate `halfopen certs issue` makes: exactly one of them.
#[derive(Args, Clone, Debug)]
#[group(required = true, multiple = false)]
pub struct IssueWhat {
    /// The reconciler's server certificate, for these DNS names and IP addresses: every name
    /// collectors and readers dial (files named after the first).
    #[arg(long, value_name = "NAME_OR_IP[,...]", value_delimiter = ',')]
    pub reconciler: Option<Vec<String>>,
    /// A collector certificate bound to host id NAME (it may also report NAME/<container>).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// A reader certificate for NAME: queries only.
    #[arg(long, value_name = "NAME")]
    pub reader: Option<String>,
}

/// `halfopen incident --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For a terminal or a ticket.
    Text,
    /// For a postmortem document or a wiki.
    Markdown,
    /// The incident, its findings, samples and the reasoning, as data.
    Json,
    /// One standalone page with the plot embedded (no network needed).
    Html,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command's --help as a user sees it (at 100 columns): a change
    /// to a flag, a default or an example shows up here.
    #[test]
    fn every_help_text() {
        let mut cli = Cli::command().term_width(100);
        cli.build();
        insta::assert_snapshot!("help", cli.render_long_help().to_string());
        let names: Vec<String> = cli
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() >= 8, "{names:?}");
        for name in names {
            let sub = cli.find_subcommand_mut(&name).unwrap();
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Example"), "{name} --help has no example:\n{help}");
            insta::assert_snapshot!(format!("help_{name}"), help);
        }
    }

    #[test]
    fn intervals_and_sizes_are_bounded() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("1ns").unwrap_err().contains("outside 100ms..1h"));
        assert!(parse_interval("100000000y").is_err());
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("3GiB").unwrap_err().contains("outside"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
    }

    #[test]
    fn durations_need_a_unit_and_a_positive_value() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s").unwrap_err(), "must be greater than zero");
        assert!(parse_duration("five").unwrap_err().contains("examples: 5s"));
    }
}
