//! The advice entries for MariaDB/MySQL, PostgreSQL and Redis (sources: see the parent module).
use super::super::{Fact, Greeting, KeepaliveDefault, KeepaliveTimers, Knob, Server, ServerAdvice, ServerKeepalive};

// ---------------------------------------------------------------- MariaDB/MySQL

pub(super) static MYSQL: ServerAdvice = ServerAdvice {
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

pub(super) static POSTGRES: ServerAdvice = ServerAdvice {
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

pub(super) static REDIS: ServerAdvice = ServerAdvice {
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
