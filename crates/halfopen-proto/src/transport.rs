//! Transport settings, written once: message limits, keepalives, timeouts,
//! and how clients reach the reconciler and how it serves. The collector,
//! the CLI, the fleet simulator and the reconciler all take them from here.
use crate::v1::ingest_client::IngestClient;
use crate::v1::query_client::QueryClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Server};

/// The reconciler's gRPC port.
pub const DEFAULT_PORT: u16 = 7077;

/// Largest message the reconciler accepts from a collector. Collectors chunk
/// their tables far below this (~1 MiB a chunk); the margin is for foreign
/// or future collectors.
pub const MAX_INGEST_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Largest answer the reconciler sends. ListOrphans costs ~550 bytes per
/// finding (explanations included), so 16 MiB ran out at ~20-30k findings,
/// in exactly the incident it exists for. Only bounds what it sends.
pub const MAX_QUERY_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

/// Largest page of ListOrphans (~5.5 MB at ~550 bytes per finding).
pub const MAX_PAGE_SIZE: usize = 10_000;

/// TCP keepalive on every connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// HTTP/2 PING interval and the time a PING may go unanswered.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A CLI query that takes longer than this is an error.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid reconciler URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error(
        "cannot reach the reconciler at {url} (is `halfopen reconciler` running there? set --reconciler or HALFOPEN_RECONCILER): {source}"
    )]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A reconciler address as given by a user ("host:port" or a URL) as a URL:
/// `http://` is added when no scheme is given.
pub fn reconciler_url(s: &str) -> String {
    if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    }
}

/// Who is calling: a long-lived collector stream or a one-shot query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Collector,
    Reader,
}

/// How to reach the reconciler.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// As the user gave it; see [`reconciler_url`].
    pub reconciler: String,
    pub role: Role,
}

impl ClientConfig {
    /// The endpoint, with every transport setting applied (no connection yet).
    pub fn endpoint(&self) -> Result<Endpoint, TransportError> {
        let url = reconciler_url(&self.reconciler);
        let ep = Endpoint::from_shared(url.clone())
            .map_err(|e| TransportError::Url {
                url,
                reason: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Some(TCP_KEEPALIVE))
            .http2_keep_alive_interval(H2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        Ok(match self.role {
            Role::Collector => ep,
            Role::Reader => ep.timeout(QUERY_TIMEOUT),
        })
    }

    /// A connected channel.
    pub async fn connect(&self) -> Result<Channel, TransportError> {
        let ep = self.endpoint()?;
        ep.connect().await.map_err(|source| TransportError::Connect {
            url: ep.uri().to_string(),
            source,
        })
    }
}

/// The collectors' client, with its message limits.
pub fn ingest_client(ch: Channel) -> IngestClient<Channel> {
    IngestClient::new(ch)
        .max_decoding_message_size(MAX_INGEST_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_INGEST_MESSAGE_BYTES)
}

/// The readers' client, with its message limits.
pub fn query_client(ch: Channel) -> QueryClient<Channel> {
    QueryClient::new(ch).max_decoding_message_size(MAX_QUERY_RESPONSE_BYTES)
}

/// A server with the transport settings applied; add the services to it.
pub fn server() -> Server {
    Server::builder()
        .tcp_keepalive(Some(TCP_KEEPALIVE))
        .http2_keepalive_interval(Some(H2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(H2_KEEPALIVE_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciler_url_adds_http_only_when_no_scheme() {
        assert_eq!(reconciler_url("10.0.0.5:7077"), "http://10.0.0.5:7077");
        assert_eq!(reconciler_url("[::1]:7077"), "http://[::1]:7077");
        assert_eq!(reconciler_url("https://recon:7077"), "https://recon:7077");
    }

    #[test]
    fn a_bad_url_is_a_clear_error() {
        let e = ClientConfig {
            reconciler: "http://bad host:1".into(),
            role: Role::Reader,
        }
        .endpoint()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("invalid reconciler URL \"http://bad host:1\""), "{e}");
    }
}
