//! Unit tests of the advice module: recognition of every server by comm and
//! by cmdline, one assertion per verified default (so a changed fact fails
//! here), the completeness of every knob and fact, the keepalive
//! arithmetic, and the lines given for each situation.
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn adv(s: Server) -> &'static ServerAdvice {
    s.advice()
}

fn default_of(k: &Knob) -> &'static str {
    k.default.unwrap_or_else(|| panic!("{} has no default", k.name))
}

fn knob<'a>(ks: &'a [Knob], name_starts: &str) -> &'a Knob {
    ks.iter()
        .find(|k| k.name.starts_with(name_starts))
        .unwrap_or_else(|| panic!("no knob {name_starts} in {ks:?}"))
}

// ------------------------------------------------------------ recognition

#[test]
fn recognises_every_server_by_comm() {
    let cases: &[(&str, Server)] = &[
        ("mysqld", Server::MySql),
        ("mariadbd", Server::MySql),
        ("postgres", Server::Postgres),
        ("postmaster", Server::Postgres),
        ("redis-server", Server::Redis),
        ("nginx", Server::Nginx),
        ("apache2", Server::Apache),
        ("httpd", Server::Apache),
        ("haproxy", Server::Haproxy),
        ("postscreen", Server::Postfix),
        ("proftpd", Server::Proftpd),
        ("vsftpd", Server::Vsftpd),
        ("dovecot", Server::Dovecot),
        ("imap-login", Server::Dovecot),
        ("pop3-login", Server::Dovecot),
        ("submission-logi", Server::Dovecot),
        ("managesieve-log", Server::Dovecot),
        ("node", Server::Node),
        ("nodejs", Server::Node),
        ("java", Server::Java),
        ("sshd", Server::Sshd),
        ("docker-proxy", Server::DockerProxy),
    ];
    for (comm, want) in cases {
        assert_eq!(recognize(comm, "", None), *want, "comm {comm}");
    }
    // The comm wins over a cmdline rewritten by a process title.
    assert_eq!(recognize("redis-server", "redis-server *:6379", None), Server::Redis);
    assert_eq!(
        recognize(" nginx\n", "", None),
        Server::Nginx,
        "comm read with its newline"
    );
}

#[test]
fn recognises_every_server_by_cmdline() {
    // A comm that names nothing (a renamed thread, or comm not read).
    let cases: &[(&str, Server)] = &[
        (
            "/usr/sbin/mysqld --basedir=/usr --datadir=/var/lib/mysql",
            Server::MySql,
        ),
        ("/usr/sbin/mariadbd", Server::MySql),
        ("postgres: checkpointer", Server::Postgres),
        (
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
            Server::Postgres,
        ),
        ("/usr/bin/redis-server 127.0.0.1:6379", Server::Redis),
        ("nginx: master process /usr/sbin/nginx -g daemon on;", Server::Nginx),
        ("/usr/sbin/apache2 -k start", Server::Apache),
        ("/usr/sbin/httpd -DFOREGROUND", Server::Apache),
        ("/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg", Server::Haproxy),
        ("/usr/lib/postfix/sbin/master -w", Server::Postfix),
        ("smtpd -n smtp -t inet -u -c -o stress= -s 2", Server::Postfix),
        ("proftpd: (accepting connections)", Server::Proftpd),
        ("/usr/sbin/vsftpd /etc/vsftpd.conf", Server::Vsftpd),
        ("/usr/sbin/dovecot -F", Server::Dovecot),
        ("dovecot/imap-login", Server::Dovecot),
        ("dovecot/pop3-login director", Server::Dovecot),
        ("node server.js", Server::Node),
        ("/usr/bin/node /srv/app/index.js", Server::Node),
        (
            "/usr/bin/java -Dcatalina.base=/var/lib/tomcat9 org.apache.catalina.startup.Bootstrap start",
            Server::Tomcat,
        ),
        ("java -jar /opt/jetty/start.jar jetty.http.port=8080", Server::Jetty),
        ("java -jar /srv/app.jar --server.port=8080", Server::Java),
        ("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", Server::Sshd),
        (
            "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 \
             -container-port 80",
            Server::DockerProxy,
        ),
    ];
    for (cmdline, want) in cases {
        assert_eq!(recognize("worker-1", cmdline, None), *want, "cmdline {cmdline:?}");
        assert_eq!(recognize("", cmdline, None), *want, "empty comm, cmdline {cmdline:?}");
    }
}

#[test]
fn java_is_told_apart_by_its_cmdline() {
    let tomcat = "/usr/lib/jvm/java-17/bin/java -classpath /usr/share/tomcat9/bin/bootstrap.jar \
                  org.apache.catalina.startup.Bootstrap start";
    assert_eq!(recognize("java", tomcat, None), Server::Tomcat);
    assert_eq!(recognize("java", "java -jar start.jar", None), Server::Java);
    assert_eq!(
        recognize("java", "java -Djetty.home=/opt/jetty -jar start.jar", None),
        Server::Jetty
    );
}

#[test]
fn master_and_smtpd_are_postfix_only_when_something_says_so() {
    assert_eq!(
        recognize("master", "/usr/libexec/postfix/master -w", None),
        Server::Postfix
    );
    assert_eq!(recognize("master", "", Some(25)), Server::Postfix, "SMTP port");
    assert_eq!(recognize("master", "", Some(587)), Server::Postfix, "submission port");
    assert_eq!(recognize("master", "python3 master.py", Some(8080)), Server::Unknown);
    assert_eq!(recognize("master", "", None), Server::Unknown, "nothing says Postfix");
    assert_eq!(recognize("smtpd", "smtpd -n smtp -t inet -u", None), Server::Postfix);
    assert_eq!(recognize("smtpd", "", Some(25)), Server::Postfix);
    assert_eq!(
        recognize("smtpd", "/usr/sbin/smtpd -F", Some(25)),
        Server::Unknown,
        "OpenSMTPD is also smtpd"
    );
}

#[test]
fn unknown_and_port_alone_name_nothing() {
    assert_eq!(
        recognize("myserver", "/opt/bin/myserver --port 3306", Some(3306)),
        Server::Unknown
    );
    assert_eq!(recognize("", "", Some(5432)), Server::Unknown);
    assert_eq!(advice_for("weird", "").name, "unknown server");
    assert_eq!(advice_for("mariadbd", "").server, Server::MySql);
    assert_eq!(advice_for_listener("master", "", Some(25)).server, Server::Postfix);
}

#[test]
fn docker_proxy_backend_reads_go_flags() {
    let want: std::net::SocketAddr = "172.17.0.2:80".parse().unwrap();
    assert_eq!(
        docker_proxy_backend(
            "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 \
             -container-port 80"
        ),
        Some(want)
    );
    assert_eq!(
        docker_proxy_backend("docker-proxy --container-ip=172.17.0.2 --container-port=80"),
        Some(want)
    );
    assert_eq!(
        docker_proxy_backend("docker-proxy -container-ip fd00::2 -container-port 8443"),
        Some("[fd00::2]:8443".parse().unwrap())
    );
    assert_eq!(docker_proxy_backend("docker-proxy -container-ip 172.17.0.2"), None);
    assert_eq!(
        docker_proxy_backend("docker-proxy -container-ip nope -container-port 80"),
        None
    );
    assert_eq!(
        docker_proxy_backend("docker-proxy -container-ip 172.17.0.2 -container-port 99999"),
        None
    );
    assert_eq!(docker_proxy_backend("docker-proxy -container-port"), None);
    assert_eq!(docker_proxy_backend(""), None);
}

proptest! {
    #[test]
    fn recognition_and_parsing_never_panic(comm in ".{0,20}", cmdline in ".{0,200}", port in proptest::option::of(any::<u16>())) {
        let s = recognize(&comm, &cmdline, port);
        prop_assert!(Server::ALL.contains(&s));
        let _ = docker_proxy_backend(&cmdline);
    }
}

#[test]
fn suggested_backlog_bounds() {
    assert_eq!(suggested_backlog(4, 0), 512);
    assert_eq!(suggested_backlog(4, 965), 2048);
    assert_eq!(suggested_backlog(4096, 0), 16384);
    assert_eq!(suggested_backlog(60_000, 0), 65_535);
    assert_eq!(suggested_backlog(u32::MAX, u64::MAX), 65_535, "saturates, no overflow");
}

// ------------------------------------------------------------ the table is complete

#[test]
fn every_entry_is_its_own_and_every_knob_and_fact_has_how_and_source() {
    for s in Server::ALL {
        let a = adv(s);
        assert_eq!(a.server, s);
        assert!(!a.name.is_empty(), "{s:?}");
        assert!(!a.greeting_source.trim().is_empty(), "{s:?} greeting_source");
        for k in a.knobs() {
            assert!(!k.name.trim().is_empty(), "{s:?}: a knob without a name");
            assert!(!k.how.trim().is_empty(), "{s:?} {}: empty how", k.name);
            assert!(!k.source.trim().is_empty(), "{s:?} {}: empty source", k.name);
            if let Some(d) = k.default {
                assert!(!d.trim().is_empty(), "{s:?} {}: empty default", k.name);
            }
        }
        for f in a.facts() {
            assert!(!f.text.trim().is_empty(), "{s:?}: empty fact");
            assert!(!f.source.trim().is_empty(), "{s:?}: fact {:?} without source", f.text);
        }
        if a.keepalive.timers.is_some() {
            assert!(
                a.keepalive.knob.is_some(),
                "{s:?}: own timers need the knob that sets them"
            );
        }
    }
}

#[test]
fn unverified_facts_say_so() {
    // Facts that could not be verified carry "NOT VERIFIED" in their source.
    let vsftpd = knob(adv(Server::Vsftpd).name_lookups, "reverse_lookup_enable");
    assert!(vsftpd.source.starts_with("NOT VERIFIED"));
    assert_eq!(vsftpd.default, None, "no default claimed for an unverified option");
    assert!(adv(Server::Jetty).keepalive.fact.source.contains("NOT VERIFIED"));
    assert!(adv(Server::DockerProxy).keepalive.fact.source.contains("NOT VERIFIED"));
    assert_eq!(adv(Server::Jetty).keepalive.default, KeepaliveDefault::Unknown);
    assert_eq!(adv(Server::DockerProxy).keepalive.default, KeepaliveDefault::Unknown);
}

// ------------------------------------------------------------ verified facts, one per assertion

#[test]
fn mysql_facts() {
    let a = adv(Server::MySql);
    assert_eq!(a.backlog.name, "back_log");
    assert!(default_of(&a.backlog).contains("min(900, 50 + max_connections/5) = 80"));
    assert!(default_of(&a.backlog).contains("MySQL 8.0+: max_connections (151)"));
    assert_eq!(default_of(knob(a.idle_timeouts, "wait_timeout")), "28800 s (8 h)");
    assert_eq!(
        default_of(knob(a.idle_timeouts, "interactive_timeout")),
        "28800 s (8 h)"
    );
    assert_eq!(default_of(knob(a.idle_timeouts, "connect_timeout")), "10 s");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert!(a.keepalive.fact.source.contains("vio_keepalive"));
    assert_eq!(default_of(&a.keepalive.knob.unwrap()), "0 = the host's sysctls");
    assert!(default_of(knob(a.name_lookups, "skip_name_resolve")).starts_with("OFF"));
    assert_eq!(default_of(knob(a.worker_limits, "max_connections")), "151");
    assert_eq!(a.greeting, Greeting::ServerFirst);
}

#[test]
fn postgres_facts() {
    let a = adv(Server::Postgres);
    assert!(default_of(&a.backlog).starts_with("PostgreSQL 16+: 2 x max_connections = 200"));
    assert!(default_of(&a.backlog).contains("min(2 x MaxBackends, 10000)"));
    assert!(a.backlog.source.contains("listen(fd, MaxConnections * 2)"));
    assert_eq!(
        default_of(knob(a.idle_timeouts, "idle_session_timeout")),
        "0 (disabled)"
    );
    assert_eq!(
        default_of(knob(a.idle_timeouts, "idle_in_transaction_session_timeout")),
        "0 (disabled)"
    );
    assert_eq!(default_of(knob(a.idle_timeouts, "authentication_timeout")), "1 min");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert!(a.keepalive.knob.unwrap().name.starts_with("tcp_keepalives_idle"));
    assert_eq!(default_of(&a.keepalive.knob.unwrap()), "0 = the host's sysctls");
    assert_eq!(default_of(knob(a.worker_limits, "max_connections")), "100");
    assert!(a.accept_note.unwrap().text.contains("frozen postmaster"));
    assert_eq!(a.greeting, Greeting::ClientFirst);
}

#[test]
fn redis_facts() {
    let a = adv(Server::Redis);
    assert_eq!(a.backlog.name, "tcp-backlog");
    assert_eq!(default_of(&a.backlog), "511");
    assert!(a
        .backlog_note
        .unwrap()
        .text
        .contains("cannot be enforced because /proc/sys/net/core/somaxconn"));
    assert_eq!(
        default_of(knob(a.idle_timeouts, "timeout")),
        "0 (never close idle clients)"
    );
    let ka = a.keepalive.knob.unwrap();
    assert_eq!(ka.name, "tcp-keepalive");
    assert!(default_of(&ka).starts_with("300 s (since Redis 3.2.1"));
    assert_eq!(
        a.keepalive.timers,
        Some(KeepaliveTimers {
            idle_s: 300,
            intvl_s: 100,
            probes: 3
        })
    );
    assert_eq!(default_of(knob(a.worker_limits, "maxclients")), "10000");
}

#[test]
fn nginx_facts() {
    let a = adv(Server::Nginx);
    assert!(default_of(&a.backlog).starts_with("511 on Linux"));
    assert_eq!(default_of(knob(a.idle_timeouts, "keepalive_timeout")), "75 s");
    assert_eq!(default_of(knob(a.idle_timeouts, "client_header_timeout")), "60 s");
    assert_eq!(default_of(knob(a.idle_timeouts, "proxy_timeout")), "10 min");
    assert_eq!(a.keepalive.default, KeepaliveDefault::Off);
    assert!(default_of(knob(a.worker_limits, "worker_connections")).starts_with("512"));
}

#[test]
fn apache_facts() {
    let a = adv(Server::Apache);
    assert_eq!(a.backlog.name, "ListenBacklog");
    assert_eq!(default_of(&a.backlog), "511");
    assert_eq!(default_of(knob(a.idle_timeouts, "KeepAliveTimeout")), "5 s");
    assert_eq!(default_of(knob(a.idle_timeouts, "TimeOut")), "60 s");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert_eq!(default_of(knob(a.name_lookups, "HostnameLookups")), "Off");
    assert!(default_of(knob(a.worker_limits, "MaxRequestWorkers")).contains("prefork: 256"));
    assert!(default_of(knob(a.worker_limits, "MaxRequestWorkers")).contains("= 400"));
}

#[test]
fn haproxy_facts() {
    let a = adv(Server::Haproxy);
    assert_eq!(a.backlog.name, "backlog");
    assert!(default_of(&a.backlog).contains("frontend's maxconn"));
    assert!(default_of(&a.backlog).ends_with("else 1024"));
    assert!(default_of(knob(a.idle_timeouts, "timeout client")).starts_with("none: infinite"));
    assert_eq!(a.keepalive.default, KeepaliveDefault::Off);
    assert_eq!(default_of(&a.keepalive.knob.unwrap()), "off");
}

#[test]
fn postfix_facts() {
    let a = adv(Server::Postfix);
    assert!(default_of(&a.backlog).starts_with("listen backlog = max(maxproc, default_process_limit) = 100"));
    assert!(a
        .backlog
        .source
        .contains("serv->max_proc > var_proc_limit ? serv->max_proc : var_proc_limit"));
    assert!(a.backlog_note.unwrap().text.contains("not somaxconn"));
    assert_eq!(
        default_of(knob(a.idle_timeouts, "smtpd_timeout")),
        "300 s (10 s under overload)"
    );
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert!(a.keepalive.fact.source.contains("sane_accept"));
    assert!(default_of(knob(a.name_lookups, "smtpd_peername_lookup")).starts_with("yes"));
    assert_eq!(default_of(knob(a.worker_limits, "maxproc")), "100");
    assert!(default_of(knob(a.worker_limits, "smtpd_client_connection_count_limit")).starts_with("50"));
    assert_eq!(a.greeting, Greeting::ServerFirst);
}

#[test]
fn proftpd_facts() {
    let a = adv(Server::Proftpd);
    assert_eq!(a.backlog.name, "TCPBacklog");
    assert!(default_of(&a.backlog).starts_with("1.3.9+: -1"));
    assert!(default_of(&a.backlog).contains("before 1.3.9: 128"));
    assert_eq!(default_of(knob(a.idle_timeouts, "TimeoutIdle")), "600 s");
    assert_eq!(default_of(knob(a.idle_timeouts, "TimeoutLogin")), "300 s");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert!(default_of(knob(a.name_lookups, "UseReverseDNS")).starts_with("on"));
    assert!(default_of(knob(a.name_lookups, "IdentLookups")).starts_with("off since 1.3.3"));
    assert!(default_of(knob(a.worker_limits, "MaxInstances")).starts_with("none"));
}

#[test]
fn vsftpd_facts() {
    let a = adv(Server::Vsftpd);
    assert_eq!(default_of(&a.backlog), "32");
    assert_eq!(default_of(knob(a.idle_timeouts, "idle_session_timeout")), "300 s");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert_eq!(default_of(knob(a.name_lookups, "tcp_wrappers")), "NO");
    assert!(default_of(knob(a.worker_limits, "max_clients")).starts_with("2000"));
    assert_eq!(default_of(knob(a.worker_limits, "max_per_ip")), "50");
}

#[test]
fn dovecot_facts() {
    let a = adv(Server::Dovecot);
    assert!(default_of(&a.backlog).starts_with("backlog = process_limit x client_limit (at least 4)"));
    assert!(default_of(&a.backlog).ends_with("so 100 with default_process_limit 100"));
    assert_eq!(default_of(knob(a.idle_timeouts, "IMAP autologout")), "30 min");
    assert_eq!(default_of(knob(a.idle_timeouts, "imap_idle_notify_interval")), "2 min");
    assert_eq!(default_of(knob(a.idle_timeouts, "POP3 idle")), "10 min");
    assert_eq!(default_of(knob(a.idle_timeouts, "pre-login")), "3 min");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert_eq!(
        default_of(knob(a.worker_limits, "process_limit")),
        "default_process_limit = 100"
    );
    assert_eq!(
        default_of(knob(a.worker_limits, "client_limit")),
        "default_client_limit = 1000"
    );
}

#[test]
fn node_facts() {
    let a = adv(Server::Node);
    assert_eq!(default_of(&a.backlog), "511");
    assert_eq!(default_of(knob(a.idle_timeouts, "server.keepAliveTimeout")), "5000 ms");
    assert!(default_of(knob(a.idle_timeouts, "server.headersTimeout")).starts_with("min(server.requestTimeout, 60000)"));
    assert!(default_of(knob(a.idle_timeouts, "server.requestTimeout")).starts_with("300000 ms"));
    assert!(default_of(knob(a.idle_timeouts, "server.timeout")).starts_with("0 (none"));
    assert_eq!(a.keepalive.default, KeepaliveDefault::Off);
    assert!(a.accept_note.unwrap().text.contains("blocked event loop"));
}

#[test]
fn java_facts() {
    let t = adv(Server::Tomcat);
    assert_eq!(t.backlog.name, "acceptCount");
    assert_eq!(default_of(&t.backlog), "100");
    assert!(default_of(knob(t.idle_timeouts, "connectionTimeout")).starts_with("60000 ms"));
    assert_eq!(
        default_of(knob(t.idle_timeouts, "keepAliveTimeout")),
        "connectionTimeout's value"
    );
    assert_eq!(default_of(knob(t.worker_limits, "maxConnections")), "8192");
    assert_eq!(default_of(knob(t.worker_limits, "maxThreads")), "200");
    assert_eq!(t.keepalive.default, KeepaliveDefault::Off);
    let j = adv(Server::Jetty);
    assert_eq!(default_of(&j.backlog), "0, which the JDK turns into a backlog of 50");
    assert_eq!(default_of(knob(j.idle_timeouts, "idleTimeout")), "30000 ms");
    let g = adv(Server::Java);
    assert!(default_of(&g.backlog).starts_with("JDK: 50"));
    assert!(default_of(&g.backlog).contains("Netty: net.core.somaxconn"));
}

#[test]
fn sshd_facts() {
    let a = adv(Server::Sshd);
    assert_eq!(default_of(&a.backlog), "128");
    assert_eq!(default_of(knob(a.idle_timeouts, "LoginGraceTime")), "120 s");
    assert_eq!(default_of(knob(a.idle_timeouts, "ClientAliveInterval")), "0 (off) / 3");
    assert_eq!(a.keepalive.default, KeepaliveDefault::On);
    assert_eq!(default_of(&a.keepalive.knob.unwrap()), "yes");
    assert!(default_of(knob(a.name_lookups, "UseDNS")).starts_with("no (since OpenSSH 6.8)"));
    assert!(default_of(knob(a.worker_limits, "MaxStartups")).starts_with("10:30:100"));
}

#[test]
fn docker_proxy_and_unknown_facts() {
    let d = adv(Server::DockerProxy);
    assert_eq!(default_of(&d.backlog), "net.core.somaxconn");
    assert!(d.accept_note.unwrap().text.contains("container's listener"));
    let u = adv(Server::Unknown);
    assert_eq!(u.backlog.name, "listen() backlog");
    assert_eq!(u.backlog.default, None);
    assert!(u
        .backlog_note
        .unwrap()
        .text
        .contains("min(backlog, net.core.somaxconn)"));
}

// ------------------------------------------------------------ keepalive arithmetic

#[test]
fn keepalive_reap_time_of_linux_defaults_is_2h11min() {
    assert_eq!(keepalive_reap_time(7200, 75, 9), 7875);
    assert_eq!(
        keepalive_reap_time(LINUX_KEEPALIVE_TIME_S, LINUX_KEEPALIVE_INTVL_S, LINUX_KEEPALIVE_PROBES),
        7875
    );
    assert_eq!(humanize(7875), "2 h 11 min");
    assert_eq!(keepalive_reap_time(300, 100, 3), 600, "Redis defaults");
    assert_eq!(keepalive_reap_time(u64::MAX, 75, 9), u64::MAX, "saturates");
    assert_eq!(KeepaliveSysctls::default().reap_time_s(), 7875);
}

#[test]
fn humanize_keeps_two_units() {
    assert_eq!(humanize(0), "0 s");
    assert_eq!(humanize(45), "45 s");
    assert_eq!(humanize(60), "1 min");
    assert_eq!(humanize(75), "1 min 15 s");
    assert_eq!(humanize(600), "10 min");
    assert_eq!(humanize(3600), "1 h");
    assert_eq!(humanize(28_800), "8 h");
    assert_eq!(humanize(90_000), "1 d 1 h");
    assert_eq!(humanize(86_400 * 3), "3 d");
}

#[test]
fn keepalive_sysctls_parse_or_say_why_not() {
    let mut m = BTreeMap::new();
    assert_eq!(KeepaliveSysctls::from_sysctls(&m), Ok(None), "not collected");
    m.insert("net.ipv4.tcp_keepalive_time".to_string(), "600\n".to_string());
    assert_eq!(
        KeepaliveSysctls::from_sysctls(&m),
        Err(SysctlError::Missing {
            present: "net.ipv4.tcp_keepalive_time",
            missing: "net.ipv4.tcp_keepalive_intvl"
        })
    );
    m.insert("net.ipv4.tcp_keepalive_intvl".to_string(), "30".to_string());
    m.insert("net.ipv4.tcp_keepalive_probes".to_string(), "5".to_string());
    assert_eq!(
        KeepaliveSysctls::from_sysctls(&m),
        Ok(Some(KeepaliveSysctls {
            time_s: 600,
            intvl_s: 30,
            probes: 5
        }))
    );
    m.insert("net.ipv4.tcp_keepalive_probes".to_string(), "-1".to_string());
    assert_eq!(
        KeepaliveSysctls::from_sysctls(&m),
        Err(SysctlError::Malformed {
            key: "net.ipv4.tcp_keepalive_probes",
            value: "-1".to_string()
        })
    );
}

// ------------------------------------------------------------ lines

fn texts(lines: &[Line]) -> String {
    lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_line_has_a_source() {
    let situations = [
        Situation::AcceptQueue {
            backlog: 128,
            somaxconn: Some(128),
        },
        Situation::ServerOnly {
            keepalive_armed: true,
            sysctls: None,
        },
        Situation::ServerOnly {
            keepalive_armed: false,
            sysctls: None,
        },
        Situation::StalledGreeting {
            in_accept_queue: Some(true),
            libwrap: true,
        },
        Situation::StalledGreeting {
            in_accept_queue: Some(false),
            libwrap: false,
        },
    ];
    for s in Server::ALL {
        for sit in &situations {
            let lines = adv(s).lines_for(sit);
            assert!(!lines.is_empty(), "{s:?} {sit:?}");
            for l in &lines {
                assert!(
                    !l.text.trim().is_empty() && !l.source.trim().is_empty(),
                    "{s:?} {sit:?}: {l:?}"
                );
            }
        }
    }
}

#[test]
fn server_only_without_keepalive_never_promises_keepalive_will_close_it() {
    for s in Server::ALL {
        let lines = adv(s).lines_for(&Situation::ServerOnly {
            keepalive_armed: false,
            sysctls: Some(KeepaliveSysctls::default()),
        });
        let t = texts(&lines);
        assert!(
            t.contains("no keepalive timer armed: the kernel will not close it"),
            "{s:?}: {t}"
        );
        assert!(!t.contains("gives up after"), "{s:?}: {t}");
        assert!(!t.contains("resets the socket"), "{s:?}: {t}");
    }
    // A server that normally enables keepalive: the contradiction is stated.
    let t = texts(&adv(Server::MySql).lines_for(&Situation::ServerOnly {
        keepalive_armed: false,
        sysctls: None,
    }));
    assert!(
        t.contains("MariaDB/MySQL normally turns keepalive on for its client sockets, yet this socket has none"),
        "{t}"
    );
    assert!(t.contains("wait_timeout (default 28800 s (8 h))"), "{t}");
}

#[test]
fn server_only_with_keepalive_gives_the_reap_time() {
    let t = texts(&adv(Server::Postgres).lines_for(&Situation::ServerOnly {
        keepalive_armed: true,
        sysctls: None,
    }));
    assert!(t.contains("Linux default (if unchanged on this host)"), "{t}");
    assert!(t.contains("at most 2 h 11 min"), "{t}");
    assert!(t.contains("tcp_keepalives_idle"), "{t}");
    let host = KeepaliveSysctls {
        time_s: 600,
        intvl_s: 30,
        probes: 5,
    };
    let t = texts(&adv(Server::Postgres).lines_for(&Situation::ServerOnly {
        keepalive_armed: true,
        sysctls: Some(host),
    }));
    assert!(t.contains("With the host's net.ipv4.tcp_keepalive_time=600"), "{t}");
    assert!(t.contains("at most 12 min 30 s"), "{t}");
    let t = texts(&adv(Server::Redis).lines_for(&Situation::ServerOnly {
        keepalive_armed: true,
        sysctls: None,
    }));
    assert!(t.contains("idle 300 s, interval 100 s, 3 probes"), "{t}");
    assert!(
        t.contains("at most 10 min (one that answers with a reset, after 5 min)"),
        "{t}"
    );
    assert!(
        !t.contains("tcp_keepalive_time=7200"),
        "Redis's own timers replace the host's: {t}"
    );
    assert!(
        t.contains("Server-side idle timeout: timeout (default 0 (never close idle clients))"),
        "{t}"
    );
}

#[test]
fn accept_queue_lines_name_the_setting_and_the_somaxconn_cap() {
    let t = texts(&adv(Server::Postfix).lines_for(&Situation::AcceptQueue {
        backlog: 100,
        somaxconn: Some(4096),
    }));
    assert!(t.contains("maxproc (master.cf) / default_process_limit"), "{t}");
    assert!(!t.contains("equals net.core.somaxconn"), "{t}");
    let t = texts(&adv(Server::Redis).lines_for(&Situation::AcceptQueue {
        backlog: 128,
        somaxconn: Some(128),
    }));
    assert!(t.contains("accept-queue limit 128 equals net.core.somaxconn"), "{t}");
    assert!(t.contains("tcp-backlog (default 511)"), "{t}");
}

#[test]
fn stalled_greeting_lines_follow_where_the_connection_is() {
    let queued = texts(&adv(Server::Proftpd).lines_for(&Situation::StalledGreeting {
        in_accept_queue: Some(true),
        libwrap: false,
    }));
    assert!(queued.contains("still waits in the accept queue"), "{queued}");
    assert!(
        !queued.contains("UseReverseDNS"),
        "queued: no name lookup happened yet: {queued}"
    );
    let accepted = texts(&adv(Server::Proftpd).lines_for(&Situation::StalledGreeting {
        in_accept_queue: Some(false),
        libwrap: true,
    }));
    assert!(
        accepted.contains("accepted the connection but has not greeted"),
        "{accepted}"
    );
    assert!(accepted.contains("UseReverseDNS (default on"), "{accepted}");
    assert!(accepted.contains("TCP wrappers (libwrap)"), "{accepted}");
    let pg = texts(&adv(Server::Postgres).lines_for(&Situation::StalledGreeting {
        in_accept_queue: None,
        libwrap: false,
    }));
    assert!(pg.contains("the client speaks first"), "{pg}");
}
