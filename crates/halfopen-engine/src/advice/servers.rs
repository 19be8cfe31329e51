//! The advice table: one `static` [`ServerAdvice`] per known server, every
//! setting and fact with the source it was verified against. Versions and
//! commits read: MariaDB 10.11.19 (Debian bookworm package, `mariadbd
//! --no-defaults --verbose --help`), MySQL sql/sys_vars.cc and WL#9704,
//! PostgreSQL pqcomm.c (master, and 15.20 headers and docs from Debian),
//! Redis 4f8cdc2a (2024-10), nginx 3f6f7824, Apache httpd 0cb68044
//! (2024-10), HAProxy 3.5-dev5, Postfix 17830e5c, ProFTPD 1dbfb9d7, vsftpd
//! 3.0.2, Dovecot 2.3.21.1 and 2.4 (f28b5a92), Node.js doc/api, Tomcat
//! 84ac9af0, OpenSSH portable 0ef0f5a8, Go src/net.
use super::{Fact, Greeting, KeepaliveDefault, KeepaliveTimers, Knob, Server, ServerAdvice, ServerKeepalive};

/// The entry for `s`.
pub(super) fn table(s: Server) -> &'static ServerAdvice {
    match s {
        Server::MySql => &MYSQL,
        Server::Postgres => &POSTGRES,
        Server::Redis => &REDIS,
        Server::Nginx => &NGINX,
        Server::Apache => &APACHE,
        Server::Haproxy => &HAPROXY,
        Server::Postfix => &POSTFIX,
        Server::Proftpd => &PROFTPD,
        Server::Vsftpd => &VSFTPD,
        Server::Dovecot => &DOVECOT,
        Server::Node => &NODE,
        Server::Tomcat => &TOMCAT,
        Server::Jetty => &JETTY,
        Server::Java => &JAVA,
        Server::Sshd => &SSHD,
        Server::DockerProxy => &DOCKER_PROXY,
        Server::Unknown => &UNKNOWN,
    }
}

/// The kernel's cap on every backlog.
pub(super) const KERNEL_CAP: Fact = Fact {
    text: "The kernel caps the backlog at net.core.somaxconn: the accept queue holds at most \
           min(backlog, net.core.somaxconn) connections (`ss -tln` shows that limit as Send-Q).",
    source: "Linux net/socket.c __sys_listen: if ((unsigned int)backlog > somaxconn) backlog = somaxconn",
};

// ---------------------------------------------------------------- MariaDB/MySQL

static MYSQL: ServerAdvice = ServerAdvice {
    server: Server::MySql,
    name: "MariaDB/MySQL",
    backlog: Knob {
        name: "back_log",
        how: "my.cnf [mysqld] back_log = N (read-only variable: restart mysqld/mariadbd), and net.core.somaxconn >= N",
        default: Some(
            "autosized from max_connections: MariaDB and MySQL 5.6/5.7: min(900, 50 + max_connections/5) = 80 at \
             max_connections 151; MySQL 8.0+: max_connections (151)",
        ),
        source: "MariaDB 10.11.19 `mariadbd --no-defaults --verbose --help`: back-log 80 (max-connections 151), \
                 250 (1000), 900 (10000); MySQL WL#9704 (8.0: back_log = max_connections, 5.7: 50 + \
                 max_connections/5 capped at 900); sql/sys_vars.cc Sys_back_log (READ_ONLY, range 0..65535)",
    },
    backlog_note: Some(Fact {
        text: "back_log is the listen() backlog of the TCP listener; the kernel then caps it at net.core.somaxconn.",
        source: "sql/sys_vars.cc Sys_back_log (\"The number of outstanding connection requests\"); Linux \
                 net/socket.c __sys_listen",
    }),
    idle_timeouts: &[
        Knob {
            name: "wait_timeout",
            how: "my.cnf [mysqld] wait_timeout = S, or SET GLOBAL wait_timeout = S (new sessions); closes an idle \
                  non-interactive session",
            default: Some("28800 s (8 h)"),
            source: "MariaDB 10.11.19 --verbose --help: wait-timeout 28800; MySQL 8.0 Reference Manual, Server \
                     System Variables: wait_timeout default 28800",
        },
        Knob {
            name: "interactive_timeout",
            how: "my.cnf [mysqld] interactive_timeout = S; applies to clients that connect with CLIENT_INTERACTIVE",
            default: Some("28800 s (8 h)"),
            source: "MariaDB 10.11.19 --verbose --help: interactive-timeout 28800; MySQL 8.0 Reference Manual: \
                     interactive_timeout default 28800",
        },
        Knob {
            name: "connect_timeout",
            how: "my.cnf [mysqld] connect_timeout = S; how long the server waits for the client's handshake \
                  response before 'Bad handshake'",
            default: Some("10 s"),
            source: "MariaDB 10.11.19 --verbose --help: connect-timeout 10; MySQL Enterprise Manager metric \
                     'Connect Timeout' description",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "The server turns SO_KEEPALIVE on for every TCP client connection; the timers are the host's \
                   sysctls unless MariaDB's tcp_keepalive_* settings are non-zero.",
            source: "sql/sql_connect.cc check_connection: vio_keepalive(net->vio, TRUE) (MySQL and MariaDB)",
        },
        knob: Some(Knob {
            name: "tcp_keepalive_time / tcp_keepalive_interval / tcp_keepalive_probes (MariaDB only)",
            how: "my.cnf [mariadbd] tcp_keepalive_time = S (and _interval, _probes); MySQL has no such setting: \
                  change the host's net.ipv4.tcp_keepalive_* sysctls",
            default: Some("0 = the host's sysctls"),
            source: "MariaDB 10.11.19 --verbose --help: tcp-keepalive-time/-interval/-probes 0 (\"If set to 0, \
                     system dependent default is used\")",
        }),
        timers: None,
    },
    name_lookups: &[Knob {
        name: "skip_name_resolve",
        how: "my.cnf [mysqld] skip_name_resolve = ON (restart; accounts must then be granted by IP address)",
        default: Some("OFF: the server resolves each TCP client's address to a host name before its handshake"),
        source: "sql/sql_connect.cc check_connection: ip_to_hostname() unless skip_name_resolve, before \
                 acl_authenticate sends the handshake; MariaDB 10.11.19 --verbose --help: skip-name-resolve FALSE",
    }],
    worker_limits: &[Knob {
        name: "max_connections",
        how: "my.cnf [mysqld] max_connections = N or SET GLOBAL max_connections = N; beyond it clients get \
              'Too many connections', they are not left queued",
        default: Some("151"),
        source: "MariaDB 10.11.19 --verbose --help: max-connections 151; MySQL 8.0 Reference Manual: \
                 max_connections default 151",
    }],
    accept_note: Some(Fact {
        text: "The server speaks first: after accepting (and resolving the client's name unless \
               skip_name_resolve) it sends its handshake packet. A stopped or stalled server leaves clients in \
               the accept queue waiting for that greeting.",
        source: "sql/sql_connect.cc check_connection, then acl_authenticate (server handshake)",
    }),
    greeting: Greeting::ServerFirst,
    greeting_source: "sql/sql_connect.cc: the server sends the initial handshake packet",
};

// ---------------------------------------------------------------- PostgreSQL

static POSTGRES: ServerAdvice = ServerAdvice {
    server: Server::Postgres,
    name: "PostgreSQL",
    backlog: Knob {
        name: "max_connections (PostgreSQL has no backlog setting)",
        how: "postgresql.conf max_connections = N (restart): the listen() backlog is derived from it; raise \
              net.core.somaxconn too",
        default: Some(
            "PostgreSQL 16+: 2 x max_connections = 200; 15 and earlier: min(2 x MaxBackends, 10000), MaxBackends = \
             max_connections + autovacuum_max_workers + 1 + max_worker_processes (+ max_wal_senders in later \
             releases)",
        ),
        source: "src/backend/libpq/pqcomm.c ListenServerPort: listen(fd, MaxConnections * 2) (master; \
                 StreamServerPort in 16); up to 15: maxconn = MaxBackends * 2 capped at PG_SOMAXCONN (10000 in \
                 pg_config_manual.h, still defined in Debian's postgresql-server-dev-15 15.20), removed by the \
                 2022 pgsql-hackers patch 0003-remove-PG_SOMAXCONN; the 15/16 boundary is inferred from those two \
                 facts, the commit itself was not read",
    },
    backlog_note: Some(Fact {
        text: "The kernel caps the derived backlog at net.core.somaxconn; PostgreSQL's manual names that sysctl as \
               the queue limit to raise.",
        source: "PostgreSQL 15 documentation 19.4.3 (kernel-resources.html): net.core.somaxconn; Linux \
                 net/socket.c __sys_listen",
    }),
    idle_timeouts: &[
        Knob {
            name: "idle_session_timeout",
            how: "postgresql.conf idle_session_timeout = '10min' (reload, or per role/database); ends a session \
                  idle outside a transaction (PostgreSQL 14+)",
            default: Some("0 (disabled)"),
            source: "PostgreSQL 15 documentation 20.11.1 (runtime-config-client.html); postgresql.conf.sample \
                     15.20: #idle_session_timeout = 0",
        },
        Knob {
            name: "idle_in_transaction_session_timeout",
            how: "postgresql.conf idle_in_transaction_session_timeout = '10min'; ends a session idle inside an \
                  open transaction",
            default: Some("0 (disabled)"),
            source: "PostgreSQL 15 documentation 20.11.1; postgresql.conf.sample 15.20",
        },
        Knob {
            name: "authentication_timeout",
            how: "postgresql.conf authentication_timeout = '30s'; closes a connection that has not completed \
                  authentication",
            default: Some("1 min"),
            source: "PostgreSQL 15 documentation 20.3.2 (runtime-config-connection.html); postgresql.conf.sample \
                     15.20",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "Every backend turns SO_KEEPALIVE on for its TCP client socket and applies tcp_keepalives_* \
                   (0 = the host's sysctls).",
            source: "src/backend/libpq/pqcomm.c pq_init (StreamConnection up to 16): setsockopt SO_KEEPALIVE, \
                     then pq_setkeepalivesidle/interval/count",
        },
        knob: Some(Knob {
            name: "tcp_keepalives_idle / tcp_keepalives_interval / tcp_keepalives_count (and tcp_user_timeout)",
            how: "postgresql.conf tcp_keepalives_idle = 60, tcp_keepalives_interval = 10, tcp_keepalives_count = 6 \
                  (reload; new connections)",
            default: Some("0 = the host's sysctls"),
            source: "PostgreSQL 15 documentation 20.3.1: \"A value of 0 (the default) selects the operating \
                     system's default\"; postgresql.conf.sample 15.20",
        }),
        timers: None,
    },
    name_lookups: &[Knob {
        name: "host names in pg_hba.conf, log_hostname",
        how: "use addresses, not host names, in pg_hba.conf; log_hostname = off",
        default: Some("log_hostname off; a host name in pg_hba.conf makes the server reverse-resolve the client"),
        source: "PostgreSQL 15 documentation 21.1 (auth-pg-hba-conf.html): a host name is compared with the \
                 result of a reverse name resolution of the client's IP address; postgresql.conf.sample 15.20 \
                 #log_hostname = off",
    }],
    worker_limits: &[Knob {
        name: "max_connections",
        how: "postgresql.conf max_connections = N (restart); beyond it the backend answers 'sorry, too many \
              clients already'",
        default: Some("100"),
        source: "postgresql.conf.sample 15.20: #max_connections = 100; PostgreSQL 15 documentation 20.3.1",
    }],
    accept_note: Some(Fact {
        text: "Only the postmaster accepts, then forks a backend per connection. A frozen postmaster (stopped, \
               swapping, stuck) leaves new connections in the listener's accept queue up to its backlog while \
               existing backends keep working; those clients have sent their startup message and wait for the \
               server's answer.",
        source: "src/backend/libpq/pqcomm.c AcceptConnection (called by the postmaster); PostgreSQL 15 \
                 documentation 55.2.1 (the frontend opens the connection and sends a startup message)",
    }),
    greeting: Greeting::ClientFirst,
    greeting_source: "PostgreSQL 15 documentation 55.2.1: the frontend sends a startup message first",
};

// ---------------------------------------------------------------- Redis

static REDIS: ServerAdvice = ServerAdvice {
    server: Server::Redis,
    name: "Redis",
    backlog: Knob {
        name: "tcp-backlog",
        how: "redis.conf tcp-backlog N (immutable: restart redis-server), and net.core.somaxconn >= N",
        default: Some("511"),
        source: "redis.conf: tcp-backlog 511; src/config.c createIntConfig(\"tcp-backlog\", ..., IMMUTABLE_CONFIG, \
                 ..., 511)",
    },
    backlog_note: Some(Fact {
        text: "Redis logs at start when somaxconn is lower: \"WARNING: The TCP backlog setting of N cannot be \
               enforced because /proc/sys/net/core/somaxconn is set to the lower value of M.\"",
        source: "src/server.c checkTcpBacklogSettings",
    }),
    idle_timeouts: &[Knob {
        name: "timeout",
        how: "redis.conf timeout S, or CONFIG SET timeout S; not applied to replicas, blocked clients (BLPOP ...) \
              or Pub/Sub subscribers",
        default: Some("0 (never close idle clients)"),
        source: "redis.conf: timeout 0; src/config.c createIntConfig(\"timeout\", ..., 0); src/timeout.c \
                 clientsCronHandleTimeout",
    }],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "With tcp-keepalive N > 0 Redis sets SO_KEEPALIVE with its own timers on Linux: idle N s, \
                   interval N/3 s, 3 probes (300 s, 100 s, 3 by default: a dead peer is reset after 10 min).",
            source: "src/anet.c anetKeepAlive: TCP_KEEPIDLE = interval, TCP_KEEPINTVL = interval/3, TCP_KEEPCNT \
                     = 3; src/networking.c connKeepAlive(conn, server.tcpkeepalive)",
        },
        knob: Some(Knob {
            name: "tcp-keepalive",
            how: "redis.conf tcp-keepalive S, or CONFIG SET tcp-keepalive S (0 disables keepalive)",
            default: Some("300 s (since Redis 3.2.1; 0 before)"),
            source: "redis.conf: tcp-keepalive 300 (\"the new Redis default starting with Redis 3.2.1\"); \
                     src/config.c createIntConfig(\"tcp-keepalive\", ..., 300); commit c6e3ce38 'Enable \
                     tcp-keepalive by default.'",
        }),
        timers: Some(KeepaliveTimers {
            idle_s: 300,
            intvl_s: 100,
            probes: 3,
        }),
    },
    name_lookups: &[],
    worker_limits: &[Knob {
        name: "maxclients",
        how: "redis.conf maxclients N or CONFIG SET maxclients N; beyond it Redis accepts and answers \
              '-ERR max number of clients reached'",
        default: Some("10000"),
        source: "src/config.c createUIntConfig(\"maxclients\", ..., 10000); src/networking.c",
    }],
    accept_note: Some(Fact {
        text: "Redis accepts on its main event loop: while a long command or script runs, it calls no accept() \
               and the accept queue fills.",
        source: "src/socket.c connSocketAcceptHandler, registered on the main aeEventLoop",
    }),
    greeting: Greeting::ClientFirst,
    greeting_source: "Redis protocol: the client sends commands, the server only replies",
};

// ---------------------------------------------------------------- nginx

static NGINX: ServerAdvice = ServerAdvice {
    server: Server::Nginx,
    name: "nginx",
    backlog: Knob {
        name: "listen ... backlog=N",
        how: "nginx: listen 443 ssl backlog=N; in the server block, then nginx -s reload (a changed backlog is \
              applied with a new listen() call on reload), and net.core.somaxconn >= N",
        default: Some("511 on Linux (NGX_LISTEN_BACKLOG; -1 = somaxconn on FreeBSD and macOS)"),
        source: "src/os/unix/ngx_linux_config.h: #define NGX_LISTEN_BACKLOG 511; src/http/ngx_http_core_module.c \
                 lsopt.backlog = NGX_LISTEN_BACKLOG; src/core/ngx_connection.c ngx_open_listening_sockets and \
                 'change backlog via listen()'",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "keepalive_timeout",
            how: "http/server/location: keepalive_timeout 30s; closes an idle keep-alive connection",
            default: Some("75 s"),
            source: "src/http/ngx_http_core_module.c ngx_http_core_merge_loc_conf: keepalive_timeout 75000 ms",
        },
        Knob {
            name: "client_header_timeout",
            how: "http/server: client_header_timeout 15s; closes a connection whose request header does not \
                  arrive in time",
            default: Some("60 s"),
            source: "src/http/ngx_http_core_module.c ngx_http_core_merge_srv_conf: client_header_timeout 60000 ms",
        },
        Knob {
            name: "proxy_timeout (stream module)",
            how: "stream server: proxy_timeout 10m; closes a TCP proxy session idle in both directions",
            default: Some("10 min"),
            source: "src/stream/ngx_stream_proxy_module.c: proxy_timeout default 10 * 60000 ms",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Off,
        fact: Fact {
            text: "nginx sets SO_KEEPALIVE only on listeners with so_keepalive=on (or idle:intvl:cnt).",
            source: "src/core/ngx_connection.c: setsockopt SO_KEEPALIVE only if ls[i].keepalive; \
                     src/http/ngx_http_core_module.c parses listen ... so_keepalive=",
        },
        knob: Some(Knob {
            name: "listen ... so_keepalive=on|[keepidle]:[keepintvl]:[keepcnt]",
            how: "nginx: listen 443 so_keepalive=60s:10s:6; then reload",
            default: Some("off"),
            source: "src/http/ngx_http_core_module.c ngx_http_core_listen: so_keepalive parameter",
        }),
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[Knob {
        name: "worker_connections",
        how: "events { worker_connections N; } (and worker_rlimit_nofile); a worker with no free connection logs \
              'N worker_connections are not enough' and closes the connection it just accepted",
        default: Some("512 compiled in (the shipped nginx.conf usually sets 1024)"),
        source: "src/event/ngx_event.c: #define DEFAULT_CONNECTIONS 512; src/core/ngx_connection.c \
                 ngx_get_connection: \"%ui worker_connections are not enough\"; src/event/ngx_event_accept.c \
                 ngx_event_accept: ngx_close_socket(s) when ngx_get_connection fails",
    }],
    accept_note: Some(Fact {
        text: "A worker out of worker_connections closes freshly accepted connections (the clients see them \
               close); a worker out of file descriptors (EMFILE/ENFILE) disables its accept events for a while, \
               and new connections wait in the accept queue.",
        source: "src/event/ngx_event_accept.c ngx_event_accept: ngx_close_socket after ngx_get_connection fails; \
                 ngx_disable_accept_events on NGX_EMFILE/NGX_ENFILE",
    }),
    greeting: Greeting::ClientFirst,
    greeting_source: "HTTP: the client sends the request first",
};

// ---------------------------------------------------------------- Apache httpd

static APACHE: ServerAdvice = ServerAdvice {
    server: Server::Apache,
    name: "Apache httpd",
    backlog: Knob {
        name: "ListenBacklog",
        how: "ListenBacklog N in the server config (restart httpd/apache2), and net.core.somaxconn >= N",
        default: Some("511"),
        source: "include/mpm_common.h: #define DEFAULT_LISTENBACKLOG 511; docs/manual/mod/mpm_common.xml \
                 ListenBackLog (Default: ListenBackLog 511)",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "KeepAliveTimeout",
            how: "KeepAliveTimeout S in the server config or virtual host; wait for the next request on a \
                  persistent connection",
            default: Some("5 s"),
            source: "docs/manual/mod/core.xml KeepAliveTimeout (Default: 5); include/httpd.h \
                     DEFAULT_KEEPALIVE_TIMEOUT 5",
        },
        Knob {
            name: "TimeOut",
            how: "TimeOut S; how long the server waits for I/O on a request",
            default: Some("60 s"),
            source: "docs/manual/mod/core.xml TimeOut (Default: TimeOut 60); include/httpd.h DEFAULT_TIMEOUT 60",
        },
        Knob {
            name: "RequestReadTimeout (mod_reqtimeout)",
            how: "RequestReadTimeout header=20-40,MinRate=500 (when mod_reqtimeout is loaded)",
            default: Some("handshake=0 header=20-40,MinRate=500 body=20,MinRate=500"),
            source: "docs/manual/mod/mod_reqtimeout.xml RequestReadTimeout default",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::On,
        fact: Fact {
            text: "httpd sets SO_KEEPALIVE on its listening sockets, and accepted sockets inherit it; the timers \
                   are the host's sysctls.",
            source: "server/listen.c make_sock: apr_socket_opt_set(s, APR_SO_KEEPALIVE, one); Linux \
                     net/ipv4/tcp_minisocks.c tcp_create_openreq_child",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[Knob {
        name: "HostnameLookups",
        how: "HostnameLookups Off",
        default: Some("Off"),
        source: "docs/manual/mod/core.xml HostnameLookups (Default: HostnameLookups Off)",
    }],
    worker_limits: &[Knob {
        name: "MaxRequestWorkers",
        how: "MaxRequestWorkers N (and ServerLimit, ThreadsPerChild) in the MPM config; restart",
        default: Some("prefork: 256; event/worker: ServerLimit 16 x ThreadsPerChild 25 = 400"),
        source: "docs/manual/mod/mpm_common.xml MaxRequestWorkers; server/mpm/event/mpm_default.h \
                 DEFAULT_THREADS_PER_CHILD 25, event.c DEFAULT_SERVER_LIMIT 16",
    }],
    accept_note: Some(Fact {
        text: "Connections beyond MaxRequestWorkers wait in the listen queue (ListenBacklog) until a worker is free.",
        source: "docs/manual/mod/mpm_common.xml MaxRequestWorkers: \"will normally be queued, up to a number \
                 based on the ListenBacklog directive\"",
    }),
    greeting: Greeting::ClientFirst,
    greeting_source: "HTTP: the client sends the request first",
};

// ---------------------------------------------------------------- HAProxy

static HAPROXY: ServerAdvice = ServerAdvice {
    server: Server::Haproxy,
    name: "HAProxy",
    backlog: Knob {
        name: "backlog",
        how: "backlog N in the defaults, frontend or listen section (or on the bind line); reload haproxy; and \
              net.core.somaxconn >= N",
        default: Some(
            "unset: the bind line's maxconn, else the frontend's maxconn (which defaults to the global maxconn), \
             else 1024",
        ),
        source: "src/listener.c listener_backlog(); src/proxy.c proxy_adjust_all_maxconn (frontend maxconn = \
                 global.maxconn when unset); doc/configuration.txt 'backlog' (\"By default, HAProxy passes the \
                 frontend's maxconn value to the listen() syscall\")",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "timeout client",
            how: "timeout client 30s in defaults/frontend; closes a client side inactive that long",
            default: Some("none: infinite (HAProxy warns at start)"),
            source: "doc/configuration.txt 'timeout client': \"An unspecified timeout results in an infinite \
                     timeout\"",
        },
        Knob {
            name: "timeout http-keep-alive",
            how: "timeout http-keep-alive 10s; wait for a new HTTP request on a kept-alive connection",
            default: Some("timeout http-request's value"),
            source: "doc/configuration.txt 'timeout http-keep-alive'",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Off,
        fact: Fact {
            text: "HAProxy sends TCP keepalives on the client side only with option clitcpka.",
            source: "doc/configuration.txt 'option clitcpka' (timers from the system or clitcpka-idle/-intvl/-cnt)",
        },
        knob: Some(Knob {
            name: "option clitcpka (clitcpka-idle, clitcpka-intvl, clitcpka-cnt)",
            how: "option clitcpka in defaults/frontend; clitcpka-idle 60s, clitcpka-intvl 10s, clitcpka-cnt 6",
            default: Some("off"),
            source: "doc/configuration.txt 'option clitcpka', 'clitcpka-idle'",
        }),
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[Knob {
        name: "maxconn",
        how: "maxconn N in the frontend (and the global section); when reached the proxy stops accepting",
        default: Some("frontend: the global maxconn; global: computed from ulimit -n and memory when unset"),
        source: "doc/configuration.txt 'maxconn' (frontend: \"When this value is set to zero, which is the \
                 default, the global maxconn value is used\"; global: \"automatically calculated\")",
    }],
    accept_note: Some(Fact {
        text: "When a frontend reaches maxconn, excess connections wait in the socket's listen queue until a \
               connection closes.",
        source: "doc/configuration.txt 'maxconn' (\"Excess connections will be queued by the system in the \
                 socket's listen queue\")",
    }),
    greeting: Greeting::Depends,
    greeting_source: "HAProxy relays: who speaks first is the backend protocol's",
};

// ---------------------------------------------------------------- Postfix

static POSTFIX: ServerAdvice = ServerAdvice {
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

static PROFTPD: ServerAdvice = ServerAdvice {
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

static VSFTPD: ServerAdvice = ServerAdvice {
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

static DOVECOT: ServerAdvice = ServerAdvice {
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

// ---------------------------------------------------------------- Node.js

static NODE: ServerAdvice = ServerAdvice {
    server: Server::Node,
    name: "Node.js",
    backlog: Knob {
        name: "server.listen({ port, backlog })",
        how: "pass backlog to server.listen() in the application (restart it), and net.core.somaxconn >= it",
        default: Some("511"),
        source: "Node.js doc/api/net.md server.listen(): \"The default value of this parameter is 511 (not 512)\"",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "server.keepAliveTimeout",
            how: "server.keepAliveTimeout = ms (http/https); closes an idle kept-alive connection",
            default: Some("5000 ms"),
            source: "Node.js doc/api/http.md server.keepAliveTimeout (Default: 5000)",
        },
        Knob {
            name: "server.headersTimeout",
            how: "server.headersTimeout = ms; time to receive the complete request headers",
            default: Some("min(server.requestTimeout, 60000) ms (v19.4.0, v18.14.0+)"),
            source: "Node.js doc/api/http.md server.headersTimeout",
        },
        Knob {
            name: "server.requestTimeout",
            how: "server.requestTimeout = ms; time to receive the entire request",
            default: Some("300000 ms (since v18.0.0; no timeout before)"),
            source: "Node.js doc/api/http.md server.requestTimeout",
        },
        Knob {
            name: "server.timeout",
            how: "server.timeout = ms or server.setTimeout(ms); socket inactivity timeout",
            default: Some("0 (none; 120 s before v13.0.0)"),
            source: "Node.js doc/api/http.md server.timeout",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Off,
        fact: Fact {
            text: "Node.js servers leave TCP keepalive off on accepted sockets unless created with keepAlive: true.",
            source: "Node.js doc/api/net.md net.createServer() options keepAlive (Default: false, v16.5.0+)",
        },
        knob: Some(Knob {
            name: "keepAlive / keepAliveInitialDelay (net.createServer, http.createServer options)",
            how: "http.createServer({ keepAlive: true, keepAliveInitialDelay: 60000 }, handler), or \
                  socket.setKeepAlive(true, 60000) in the 'connection' handler",
            default: Some("false"),
            source: "Node.js doc/api/net.md net.createServer() options",
        }),
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[],
    accept_note: Some(Fact {
        text: "Node.js accepts connections on its single event loop: while JavaScript runs without yielding (a \
               blocked event loop) no accept() happens and the accept queue fills, even though the process is up.",
        source: "nodejs.org guide 'Don't Block the Event Loop (or the Worker Pool)': the Event Loop handles incoming \
                 client connections",
    }),
    greeting: Greeting::Depends,
    greeting_source: "depends on the application's protocol (HTTP: the client speaks first)",
};

// ---------------------------------------------------------------- Java

static TOMCAT: ServerAdvice = ServerAdvice {
    server: Server::Tomcat,
    name: "Apache Tomcat",
    backlog: Knob {
        name: "acceptCount",
        how: "server.xml <Connector ... acceptCount=\"N\"> (restart Tomcat), and net.core.somaxconn >= N",
        default: Some("100"),
        source: "java/org/apache/tomcat/util/net/AbstractEndpoint.java acceptCount = 100; webapps/docs/config/\
                 http.xml acceptCount (\"The default value is 100\")",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[
        Knob {
            name: "connectionTimeout",
            how: "server.xml <Connector connectionTimeout=\"ms\">; wait for the request line after accepting",
            default: Some("60000 ms (the shipped server.xml sets 20000)"),
            source: "webapps/docs/config/http.xml connectionTimeout",
        },
        Knob {
            name: "keepAliveTimeout",
            how: "server.xml <Connector keepAliveTimeout=\"ms\">; wait for the next request on a kept-alive \
                  connection",
            default: Some("connectionTimeout's value"),
            source: "webapps/docs/config/http.xml keepAliveTimeout",
        },
    ],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Off,
        fact: Fact {
            text: "Tomcat leaves SO_KEEPALIVE at the JVM default (off) unless socket.soKeepAlive is set.",
            source: "webapps/docs/config/http.xml socket.soKeepAlive (\"JVM default used if not set\")",
        },
        knob: Some(Knob {
            name: "socket.soKeepAlive",
            how: "server.xml <Connector socket.soKeepAlive=\"true\">",
            default: Some("not set (JVM default: off)"),
            source: "webapps/docs/config/http.xml socket.soKeepAlive",
        }),
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[
        Knob {
            name: "maxConnections",
            how: "server.xml <Connector maxConnections=\"N\">; when reached Tomcat stops accepting and further \
                  connections wait in the OS queue (acceptCount)",
            default: Some("8192"),
            source: "webapps/docs/config/http.xml maxConnections",
        },
        Knob {
            name: "maxThreads",
            how: "server.xml <Connector maxThreads=\"N\">",
            default: Some("200"),
            source: "webapps/docs/config/http.xml maxThreads",
        },
    ],
    accept_note: Some(Fact {
        text: "When maxConnections is reached Tomcat accepts one more connection and then stops accepting; the \
               operating system queues further connections up to acceptCount.",
        source: "webapps/docs/config/http.xml maxConnections, acceptCount",
    }),
    greeting: Greeting::ClientFirst,
    greeting_source: "HTTP: the client sends the request first",
};

static JETTY: ServerAdvice = ServerAdvice {
    server: Server::Jetty,
    name: "Eclipse Jetty",
    backlog: Knob {
        name: "acceptQueueSize (ServerConnector)",
        how: "connector.setAcceptQueueSize(N), or jetty.http.acceptQueueSize=N in start.ini / start.d (restart); \
              net.core.somaxconn >= N",
        default: Some("0, which the JDK turns into a backlog of 50"),
        source: "Jetty ServerConnector: _acceptQueueSize = 0 (9.x and later); JDK \
                 sun.nio.ch.ServerSocketChannelImpl bind: Net.listen(fd, backlog < 1 ? 50 : backlog); the \
                 start.ini property name was NOT VERIFIED",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[Knob {
        name: "idleTimeout (connector)",
        how: "connector.setIdleTimeout(ms), or jetty.http.idleTimeout=ms",
        default: Some("30000 ms"),
        source: "Jetty AbstractConnector: _idleTimeout = 30000; the property name was NOT VERIFIED",
    }],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Unknown,
        fact: Fact {
            text: "Whether Jetty sets SO_KEEPALIVE on accepted sockets was not checked.",
            source: "NOT VERIFIED",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[],
    accept_note: None,
    greeting: Greeting::ClientFirst,
    greeting_source: "HTTP: the client sends the request first",
};

static JAVA: ServerAdvice = ServerAdvice {
    server: Server::Java,
    name: "Java server",
    backlog: Knob {
        name: "the backlog of ServerSocket / ServerSocketChannel.bind, or Netty's ChannelOption.SO_BACKLOG",
        how: "pass a backlog in the application (new ServerSocket(port, N), channel.bind(addr, N), \
              bootstrap.option(ChannelOption.SO_BACKLOG, N)) and restart it; net.core.somaxconn >= N",
        default: Some("JDK: 50 when the backlog is 0 or not given; Netty: net.core.somaxconn as read at start"),
        source: "JDK sun.nio.ch.ServerSocketChannelImpl bind: Net.listen(fd, backlog < 1 ? 50 : backlog); Netty \
                 io.netty.util.NetUtil.SOMAXCONN (reads /proc/sys/net/core/somaxconn), the default of \
                 DefaultServerSocketChannelConfig backlog",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Off,
        fact: Fact {
            text: "Java sockets start with SO_KEEPALIVE off unless the application sets it.",
            source: "java.net.StandardSocketOptions.SO_KEEPALIVE javadoc (initial value FALSE); NOT VERIFIED \
                     against the JDK source",
        },
        knob: Some(Knob {
            name: "SO_KEEPALIVE (socket option)",
            how: "socket.setKeepAlive(true), or childOption(ChannelOption.SO_KEEPALIVE, true) in Netty",
            default: Some("off"),
            source: "java.net.StandardSocketOptions.SO_KEEPALIVE",
        }),
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[],
    accept_note: None,
    greeting: Greeting::Depends,
    greeting_source: "depends on the application's protocol",
};

// ---------------------------------------------------------------- sshd

static SSHD: ServerAdvice = ServerAdvice {
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

// ---------------------------------------------------------------- docker-proxy

static DOCKER_PROXY: ServerAdvice = ServerAdvice {
    server: Server::DockerProxy,
    name: "docker-proxy",
    backlog: Knob {
        name: "none: Go's default listen backlog",
        how: "docker-proxy only relays: look at the container's own listener (its -container-ip:-container-port) \
              first; docker-proxy's backlog is net.core.somaxconn as Go reads it when the listener is created",
        default: Some("net.core.somaxconn"),
        source: "golang/go src/net/sock_linux.go maxListenerBacklog: reads /proc/sys/net/core/somaxconn; older \
                 docker-proxy NewTCPProxy: net.ListenTCP. How recent Docker versions create the published port's \
                 socket was NOT VERIFIED",
    },
    backlog_note: None,
    idle_timeouts: &[],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Unknown,
        fact: Fact {
            text: "Go turns keepalive on for accepted TCP connections by default (idle 15 s, interval 15 s, 9 \
                   probes in Go 1.23+); whether docker-proxy keeps Go's default was not checked.",
            source: "golang/go src/net/dial.go defaultTCPKeepAliveIdle/Interval = 15 s, defaultTCPKeepAliveCount = \
                     9; src/net/tcpsock_posix.go accept: newTCPConn(fd, ln.lc.KeepAlive, nil); docker-proxy: NOT \
                     VERIFIED",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[],
    accept_note: Some(Fact {
        text: "docker-proxy relays a published port to a container: the application, its accept queue and its \
               greeting are the container's listener, in the container's network namespace.",
        source: "docker-proxy command line -container-ip / -container-port (see docker_proxy_backend)",
    }),
    greeting: Greeting::Depends,
    greeting_source: "a relay: the container's server decides",
};

// ---------------------------------------------------------------- unknown

static UNKNOWN: ServerAdvice = ServerAdvice {
    server: Server::Unknown,
    name: "unknown server",
    backlog: Knob {
        name: "listen() backlog",
        how: "the backlog argument of listen() in the server's code or configuration; net.core.somaxconn >= it",
        default: None,
        source: "listen(2); Linux net/socket.c __sys_listen",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Unknown,
        fact: Fact {
            text: "Sockets have no TCP keepalive unless the server sets SO_KEEPALIVE (on the socket or its \
                   listener); the timers are then the host's net.ipv4.tcp_keepalive_* sysctls unless it sets \
                   TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT.",
            source: "socket(7) SO_KEEPALIVE, tcp(7) TCP_KEEPIDLE; kernel Documentation/networking/ip-sysctl.rst",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[],
    accept_note: None,
    greeting: Greeting::Depends,
    greeting_source: "unknown server",
};
