//! The `/metrics` endpoint: a small HTTP/1.1 server (hyper, already in the
//! tree through tonic) on its own tokio task. Each scrape encodes the
//! registry from what the metrics hold now (atomics and published
//! snapshots): it never queues behind a service's work. Connections are
//! bounded in number and in time, so a stuck scraper cannot pile them up.
use crate::registry::{encode, Format};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Connections served at once; one more is closed at accept.
pub const MAX_CONNECTIONS: usize = 32;
/// A request's headers must arrive within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection (keep-alive included) is closed after this time.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The metrics address cannot be bound (in use, not local, no permission).
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The running endpoint. Dropping it stops the server and closes its
/// connections.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `registry` at `GET /metrics` on a task of the
/// current tokio runtime until the returned handle is dropped.
///
/// Errors: [`TelemetryError::Bind`] when the address cannot be bound; it is
/// returned before anything is spawned.
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>) -> Result<MetricsServer, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    info!(listen = %local_addr, "metrics at http://{local_addr}/metrics");
    let task = tokio::spawn(accept_loop(listener, registry));
    Ok(MetricsServer { local_addr, task })
}

async fn accept_loop(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    // Dropped with this task, which aborts every connection still open.
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: a scrape fails, the service goes on.
                error!("metrics endpoint cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= MAX_CONNECTIONS {
            warn!(%peer, open = conns.len(), "metrics endpoint busy: connection closed");
            continue;
        }
        let registry = registry.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = respond(&registry, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, "metrics connection: {e}"),
                Err(_) => debug!(%peer, "metrics connection closed after {CONNECTION_LIFETIME:?}"),
            }
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The answer to one request: the registry at `GET /metrics`, a pointer to
/// it at `/`, 404 or 405 otherwise.
fn respond(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::from_accept(accept);
            match encode(registry, format) {
                Ok(body) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
                    r
                }
                Err(e) => {
                    error!("encoding the metrics failed: {e}");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics failed\n")
                }
            }
        }
        (&Method::GET, "/") => text(StatusCode::OK, "halfopen: metrics at /metrics\n"),
        (_, "/metrics" | "/") => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found: metrics are at /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::new_registry;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 request over a real TCP connection; the whole response.
    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("the server answered in time")
            .unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_registry_in_the_format_asked_for_and_nothing_else() {
        let mut r = new_registry("reconciler", &[]);
        let c: Counter = Counter::default();
        r.register("things", "Things done", c.clone());
        c.inc_by(7);
        let server = serve("127.0.0.1:0".parse().unwrap(), Arc::new(r)).await.unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let plain = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
        assert!(plain.contains("content-type: text/plain; version=0.0.4"), "{plain}");
        assert!(plain.contains("\r\n\r\n# HELP halfopen_build_info"), "{plain}");
        assert!(plain.contains("\nhalfopen_things_total 7\n"), "{plain}");
        assert!(!plain.contains("# EOF"), "{plain}");

        let om = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            om.contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");

        let missing = get(addr, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("allow: GET"), "{post}");

        // Dropping the handle stops the server.
        drop(server);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn an_address_in_use_is_a_bind_error_naming_it() {
        let held = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = held.local_addr().unwrap();
        let e = serve(addr, Arc::new(new_registry("collector", &[]))).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("cannot serve metrics on {addr}: ")), "{msg}");
        assert!(msg.to_lowercase().contains("in use"), "{msg}");
    }
}
