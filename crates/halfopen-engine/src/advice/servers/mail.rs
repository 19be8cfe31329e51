//! The advice entries for servers that greet: Postfix, ProFTPD, vsftpd, Dovecot, OpenSSH (sources: see the parent module).
use super::super::{Fact, Greeting, KeepaliveDefault, Knob, Server, ServerAdvice, ServerKeepalive};
use super::KERNEL_CAP;

// ---------------------------------------------------------------- Postfix

pub(super) static POSTFIX: ServerAdvice = ServerAdvice {
    server: Server::Postfix,
    name: "Postfix",
    backlog: Knob {
        name: "maxproc (master.cf) / default_process_limit",
        how: "raise the maxproc column of the service's master.cf line (smtp inet ... smtpd) or \
              default_process_limit in main.cf, then restart Postfix; net.core.somaxconn >= the new value",
        default: Some(
            "listen backlog = max(maxproc, default_process_limit) = 100 with the defaults (maxproc '-' means \
             default_process_limit)",
        ),
        source: "src/master/master_listen.c master_listen_init: inet_listen(end_point, serv->max_proc > \
                 var_proc_limit ? serv->max_proc : var_proc_limit, NON_BLOCKING); src/global/mail_params.h \
                 DEF_PROC_LIMIT 100; src/master/master_ent.c (maxproc default var_proc_limit, 0 = no limit). \
                 Whether `postfix reload` re-creates an existing listener was NOT VERIFIED",
    },
    backlog_note: Some(Fact {
        text: "The backlog follows the service's process limit, not somaxconn; the kernel still caps it at \
               net.core.somaxconn.",
        source: "src/master/master_listen.c master_listen_init; Linux net/socket.c __sys_listen",
    }),
    idle_timeouts: &[Knob {
        name: "smtpd_timeout",
        how: "main.cf smtpd_timeout = 60s (or -o smtpd_timeout= in master.cf); closes a client that sends nothing \
              for that long",
        default: Some("300 s (10 s under overload)"),
        source: "proto/postconf.proto smtpd_timeout (normal: 300s, overload: 10s); src/global/mail_params.h \
                 DEF_SMTPD_TMOUT",
    }],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "Every accepted TCP connection gets SO_KEEPALIVE; the timers are the host's sysctls.",
            source: "src/util/sane_accept.c sane_accept: setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE) for AF_INET and \
                     AF_INET6 (reached from inet_accept)",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[Knob {
        name: "smtpd_peername_lookup",
        how: "main.cf smtpd_peername_lookup = no (the client name becomes 'unknown'), or a fast local resolver",
        default: Some("yes: smtpd looks up and verifies the client's name before its 220 greeting"),
        source: "proto/postconf.proto smtpd_peername_lookup (Postfix 2.3+); src/smtpd/smtpd.c smtpd_service: \
                 smtpd_state_init (smtpd_peer_init) runs before smtpd_proto sends the 220",
    }],
    worker_limits: &[
        Knob {
            name: "maxproc / default_process_limit",
            how: "master.cf maxproc of the smtp service, or main.cf default_process_limit; when all smtpd \
                  processes are busy new connections wait in the accept queue",
            default: Some("100"),
            source: "proto/postconf.proto default_process_limit 100; src/master/master_ent.c",
        },
        Knob {
            name: "smtpd_client_connection_count_limit",
            how: "main.cf smtpd_client_connection_count_limit = N (per client, enforced via anvil)",
            default: Some("50 (half of default_process_limit)"),
            source: "proto/postconf.proto smtpd_client_connection_count_limit; src/global/mail_params.h \
                     DEF_SMTPD_CCONN_LIMIT",
        },
    ],
    accept_note: Some(Fact {
        text: "master(8) creates the listener and the smtpd (or postscreen) processes inherit and accept on it. \
               postscreen(8), when it guards port 25, sends a '220-' partial banner at once and keeps the client \
               up to postscreen_greet_wait (6 s, 2 s under stress) before handing it to smtpd.",
        source: "src/master/master_listen.c; src/master/single_server.c inet_accept; proto/postconf.proto \
                 postscreen_greet_banner, postscreen_greet_wait",
    }),
    greeting: Greeting::ServerFirst,
    greeting_source: "src/smtpd/smtpd.c smtpd_proto: smtpd_chat_reply(state, \"220 %s\", var_smtpd_banner)",
};

// ---------------------------------------------------------------- ProFTPD

pub(super) static PROFTPD: ServerAdvice = ServerAdvice {
    server: Server::Proftpd,
    name: "ProFTPD",
    backlog: Knob {
        name: "TCPBacklog",
        how: "proftpd.conf TCPBacklog N (server config, ServerType standalone only); restart proftpd; \
              net.core.somaxconn >= N",
        default: Some(
            "1.3.9+: -1, which Linux turns into net.core.somaxconn (when configure finds listen(-1) works); \
             before 1.3.9: 128 in the source (the manual said 5), at most 255",
        ),
        source: "include/options.h PR_TUNABLE_DEFAULT_BACKLOG (-1 with LISTEN_NEGATIVE_BACKLOG, else 128); commit \
                 ff5e7cb2 'Issue #1636' (first in v1.3.9); modules/mod_core.c set_tcpbacklog; src/bindings.c \
                 listens with tcpBackLog; Linux net/socket.c __sys_listen",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "TimeoutIdle",
            how: "proftpd.conf TimeoutIdle S; closes a control connection idle between commands",
            default: Some("600 s"),
            source: "doc/modules/mod_core.html TimeoutIdle (Default: 600 seconds); include/options.h \
                     PR_TUNABLE_TIMEOUTIDLE 600",
        },
        Knob {
            name: "TimeoutLogin",
            how: "proftpd.conf TimeoutLogin S; closes a connection that has not logged in",
            default: Some("300 s"),
            source: "include/options.h PR_TUNABLE_TIMEOUTLOGIN 300",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "ProFTPD enables TCP keepalive on its control and data connections unless SocketOptions \
                   keepalive off; the timers are the host's sysctls unless a keepalive spec is given.",
            source: "src/inet.c init_conn: SO_KEEPALIVE unless \"SocketOptions keepalive off\"; \
                     doc/modules/mod_core.html SocketOptions (1.3.5rc1+)",
        },
        knob: Some(Knob {
            name: "SocketOptions keepalive on|off|idle:count:interval",
            how: "proftpd.conf SocketOptions keepalive 60:6:10",
            default: Some("on, with the host's timers"),
            source: "doc/modules/mod_core.html SocketOptions (keepalive-spec idle-secs:probe-count:interval-secs)",
        }),
        timers: None,
    },
    name_lookups: &[
        Knob {
            name: "UseReverseDNS",
            how: "proftpd.conf UseReverseDNS off",
            default: Some("on: the session process resolves the client's name before the 220 banner"),
            source: "src/dirtree.c ServerUseReverseDNS = TRUE; src/main.c fork_server: pr_netaddr_get_dnsstr \
                     before pr_session_send_banner; doc/modules/mod_core.html UseReverseDNS (Default: on)",
        },
        Knob {
            name: "IdentLookups (mod_ident)",
            how: "proftpd.conf IdentLookups off",
            default: Some(
                "off since 1.3.3 (RFC 1413 lookup before the banner when on; the mod_ident page still says on)",
            ),
            source: "modules/mod_ident.c: ident_engine = FALSE (commit f85ccecd 'Bug#3155 - Change the \
                     IdentLookups default to off', after 1.3.2); lookup in ident_sess_init, run by \
                     modules_session_init before pr_session_send_banner (src/main.c)",
        },
    ],
    worker_limits: &[Knob {
        name: "MaxInstances",
        how: "proftpd.conf MaxInstances N (standalone); beyond it new connections are denied",
        default: Some("none (no limit)"),
        source: "doc/modules/mod_core.html MaxInstances (Default: None); src/main.c: \"MaxInstances (%lu) \
                 reached, new connection denied\"",
    }],
    accept_note: Some(Fact {
        text: "The standalone daemon forks a session process per connection; that process does the reverse DNS \
               and ident lookups before sending the 220 banner.",
        source: "src/main.c fork_server",
    }),
    greeting: Greeting::ServerFirst,
    greeting_source: "src/session.c pr_session_send_banner: 220",
};

// ---------------------------------------------------------------- vsftpd

pub(super) static VSFTPD: ServerAdvice = ServerAdvice {
    server: Server::Vsftpd,
    name: "vsftpd",
    backlog: Knob {
        name: "none: fixed listen backlog",
        how: "not configurable: standalone vsftpd (listen=YES) listens with a compiled-in backlog; rebuild with a \
              larger VSFTP_LISTEN_BACKLOG",
        default: Some("32"),
        source: "vsftpd 3.0.2 defs.h: #define VSFTP_LISTEN_BACKLOG 32; standalone.c \
                 vsf_sysutil_listen(listen_sock, VSFTP_LISTEN_BACKLOG)",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "idle_session_timeout",
            how: "vsftpd.conf idle_session_timeout=S; maximum time between FTP commands",
            default: Some("300 s"),
            source: "vsftpd 3.0.2 tunables.c tunable_idle_session_timeout = 300; vsftpd.conf.5",
        },
        Knob {
            name: "data_connection_timeout",
            how: "vsftpd.conf data_connection_timeout=S",
            default: Some("300 s"),
            source: "vsftpd 3.0.2 tunables.c tunable_data_connection_timeout = 300",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "vsftpd turns SO_KEEPALIVE on for the control connection; the timers are the host's sysctls.",
            source: "vsftpd 3.0.2 ftpcmdio.c vsf_cmdio_sock_setup: vsf_sysutil_activate_keepalive(VSFTP_COMMAND_FD)",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[
        Knob {
            name: "tcp_wrappers",
            how: "vsftpd.conf tcp_wrappers=NO, or no host names in /etc/hosts.allow and /etc/hosts.deny",
            default: Some("NO"),
            source: "vsftpd 3.0.2 tunables.c tunable_tcp_wrappers = 0; main.c vsf_tcp_wrapper_ok; vsftpd.conf.5",
        },
        Knob {
            name: "reverse_lookup_enable",
            how: "vsftpd.conf reverse_lookup_enable=NO (Red Hat/Fedora builds)",
            default: None,
            source: "NOT VERIFIED: not in upstream vsftpd 3.0.2 source; an option added by Red Hat/Fedora \
                     patches, whose default and effect were not read",
        },
    ],
    worker_limits: &[
        Knob {
            name: "max_clients",
            how: "vsftpd.conf max_clients=N (standalone); clients beyond it get an error message",
            default: Some("2000 (the vsftpd.conf.5 page still says 0 = unlimited)"),
            source: "vsftpd 3.0.2 tunables.c tunable_max_clients = 2000; Changelog 2.2.0pre3 (\"set max_per_ip / \
                     max_clients to 2000 / 50 as a default\")",
        },
        Knob {
            name: "max_per_ip",
            how: "vsftpd.conf max_per_ip=N",
            default: Some("50"),
            source: "vsftpd 3.0.2 tunables.c tunable_max_per_ip = 50",
        },
    ],
    accept_note: Some(Fact {
        text: "Only standalone vsftpd (listen=YES) owns its listener; under inetd or systemd socket activation \
               the listener, and its backlog, belong to them.",
        source: "vsftpd 3.0.2 standalone.c vsf_standalone_main",
    }),
    greeting: Greeting::ServerFirst,
    greeting_source: "FTP (RFC 959): the server sends 220 first",
};

// ---------------------------------------------------------------- Dovecot

pub(super) static DOVECOT: ServerAdvice = ServerAdvice {
    server: Server::Dovecot,
    name: "Dovecot",
    backlog: Knob {
        name: "service <name> { process_limit, client_limit } (no backlog setting)",
        how: "dovecot.conf: service imap-login { process_limit = N } (client_limit too when \
              restart_request_count / service_count is not 1); restart dovecot; net.core.somaxconn >= the backlog",
        default: Some(
            "backlog = process_limit x client_limit (at least 4); imap-login and pop3-login run one client per \
             process (restart_request_count = 1 in 2.4, service_count = 1 in 2.3), so 100 with \
             default_process_limit 100",
        ),
        source: "src/master/service-listen.c service_get_backlog: process_limit * client_limit, MIN_BACKLOG 4; \
                 src/master/service.c: client_limit capped at restart_request_count (2.4) / service_count \
                 (2.3.21.1); src/master/master-settings.c default_process_limit 100, default_client_limit 1000; \
                 src/imap-login/imap-login-settings.c restart_request_count = 1 (community edition)",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "IMAP autologout (compiled in)",
            how: "not a setting: an IMAP session without input for 30 min is disconnected ('* BYE Disconnected \
                  for inactivity'); during IDLE the timer is reset by each imap_idle_notify_interval",
            default: Some("30 min"),
            source: "src/imap/imap-common.h CLIENT_IDLE_TIMEOUT_MSECS (60*30*1000); src/imap/imap-client.c \
                     client_idle_timeout; src/imap/cmd-idle.c keepalive_timeout",
        },
        Knob {
            name: "imap_idle_notify_interval",
            how: "dovecot.conf imap_idle_notify_interval = 2 mins; during IDLE Dovecot writes '* OK Still here', \
                  so a dead client is found by the kernel's retransmission timeout",
            default: Some("2 min"),
            source: "src/imap/imap-settings.c imap_idle_notify_interval = 2*60; src/imap/cmd-idle.c \
                     keepalive_timeout (\"Sending this also catches dead connections\")",
        },
        Knob {
            name: "POP3 idle disconnect (compiled in)",
            how: "not a setting: a POP3 session without input is disconnected",
            default: Some("10 min"),
            source: "src/pop3/pop3-client.c CLIENT_IDLE_TIMEOUT_MSECS (10*60*1000) (2.3.21.1)",
        },
        Knob {
            name: "pre-login timeout (compiled in)",
            how: "not a setting: a client that does not log in is disconnected",
            default: Some("3 min"),
            source: "src/login-common/client-common.h CLIENT_LOGIN_TIMEOUT_MSECS = MASTER_LOGIN_TIMEOUT_SECS * 1000; \
                     src/lib-master/master-interface.h MASTER_LOGIN_TIMEOUT_SECS (3*60)",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "Dovecot sets SO_KEEPALIVE on its listening sockets and accepted sockets inherit it; the timers \
                   are the host's sysctls.",
            source: "src/lib/net.c net_listen_full: setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE) (2.3.21.1 and 2.4); \
                     Linux net/ipv4/tcp_minisocks.c tcp_create_openreq_child",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[
        Knob {
            name: "process_limit",
            how: "dovecot.conf service imap-login { process_limit = N } (and pop3-login ...); when reached Dovecot \
                  logs '... reached, client connections are being dropped'",
            default: Some("default_process_limit = 100"),
            source: "src/master/master-settings.c default_process_limit 100; src/master/service-monitor.c \
                     \"%s (%u) reached, client connections are being dropped\"",
        },
        Knob {
            name: "client_limit",
            how: "dovecot.conf service <name> { client_limit = N } (effective only when restart_request_count / \
                  service_count is not 1)",
            default: Some("default_client_limit = 1000"),
            source: "src/master/master-settings.c default_client_limit 1000; src/master/service.c",
        },
    ],
    accept_note: Some(Fact {
        text: "The dovecot master creates the listeners; the imap-login / pop3-login processes accept on them. When \
               all login processes are busy, connections wait in the accept queue.",
        source: "src/master/service-listen.c; src/master/service-monitor.c",
    }),
    greeting: Greeting::ServerFirst,
    greeting_source: "IMAP (RFC 9051) and POP3 (RFC 1939): the server greets first",
};

// ---------------------------------------------------------------- sshd

pub(super) static SSHD: ServerAdvice = ServerAdvice {
    server: Server::Sshd,
    name: "OpenSSH sshd",
    backlog: Knob {
        name: "none: fixed listen backlog",
        how: "not configurable (sshd listens with a compiled-in backlog); raise MaxStartups for more concurrent \
              unauthenticated connections",
        default: Some("128"),
        source: "openssh-portable ssh.h: #define SSH_LISTEN_BACKLOG 128; sshd.c listen(listen_sock, \
                 SSH_LISTEN_BACKLOG)",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "LoginGraceTime",
            how: "sshd_config LoginGraceTime 30; disconnect a client that has not authenticated",
            default: Some("120 s"),
            source: "sshd_config.5 LoginGraceTime (\"The default is 120 seconds\"); servconf.c",
        },
        Knob {
            name: "ClientAliveInterval / ClientAliveCountMax",
            how: "sshd_config ClientAliveInterval 60, ClientAliveCountMax 3: disconnect an unresponsive client after \
                  interval x count",
            default: Some("0 (off) / 3"),
            source: "sshd_config.5 ClientAliveInterval (default 0), ClientAliveCountMax (default 3)",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "sshd sends TCP keepalives by default (TCPKeepAlive yes); the timers are the host's sysctls.",
            source: "sshd_config.5 TCPKeepAlive (\"The default is yes\")",
        },
        knob: Some(Knob {
            name: "TCPKeepAlive",
            how: "sshd_config TCPKeepAlive yes|no",
            default: Some("yes"),
            source: "sshd_config.5 TCPKeepAlive; servconf.c tcp_keep_alive = 1",
        }),
        timers: None,
    },
    name_lookups: &[Knob {
        name: "UseDNS",
        how: "sshd_config UseDNS no",
        default: Some("no (since OpenSSH 6.8); used at authentication, not before the version banner"),
        source: "sshd_config.5 UseDNS (\"no (the default)\"); servconf.c use_dns = 0 (commit 3cd5103c, first in \
                 V_6_8_P1); auth.c auth_get_canonical_hostname(ssh, options.use_dns)",
    }],
    worker_limits: &[Knob {
        name: "MaxStartups",
        how: "sshd_config MaxStartups start:rate:full, e.g. 50:30:200 (reload sshd)",
        default: Some(
            "10:30:100 (since OpenSSH 6.2): random early drop from 10 unauthenticated connections, all \
                       dropped at 100",
        ),
        source: "sshd_config.5 MaxStartups (\"The default is 10:30:100\"); servconf.c max_startups = 100, \
                 max_startups_begin = 10, max_startups_rate = 30 (commit 1f583df8, first in V_6_2_P1)",
    }],
    accept_note: Some(Fact {
        text: "sshd accepts connections beyond MaxStartups (randomly from its start value), writes 'Not allowed at \
               this time' and closes them: those clients see the connection closed, not a silent wait.",
        source: "sshd.c should_drop_connection, drop_connection",
    }),
    greeting: Greeting::ServerFirst,
    greeting_source: "SSH (RFC 4253 section 4.2): both sides send an identification string when the connection \
                      opens; sshd does not wait for the client's",
};
