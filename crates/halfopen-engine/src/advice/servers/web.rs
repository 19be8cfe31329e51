//! The advice entries for web servers, proxies and application runtimes: nginx, Apache httpd, HAProxy, Node.js, Tomcat, Jetty, other JVMs, docker-proxy (sources: see the parent module).
use super::super::{Fact, Greeting, KeepaliveDefault, Knob, Server, ServerAdvice, ServerKeepalive};
use super::KERNEL_CAP;

// ---------------------------------------------------------------- nginx

pub(super) static NGINX: ServerAdvice = ServerAdvice {
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

pub(super) static APACHE: ServerAdvice = ServerAdvice {
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

pub(super) static HAPROXY: ServerAdvice = ServerAdvice {
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

// ---------------------------------------------------------------- Node.js

pub(super) static NODE: ServerAdvice = ServerAdvice {
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

pub(super) static TOMCAT: ServerAdvice = ServerAdvice {
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

pub(super) static JETTY: ServerAdvice = ServerAdvice {
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

pub(super) static JAVA: ServerAdvice = ServerAdvice {
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

// ---------------------------------------------------------------- docker-proxy

pub(super) static DOCKER_PROXY: ServerAdvice = ServerAdvice {
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
