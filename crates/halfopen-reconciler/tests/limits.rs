//! The limits a peer meets, on a real reconciler over real gRPC on
//! loopback: sessions per peer address, host ids, message size and page
//! size are each refused with a status that names the limit, and a refused
//! session leaves nothing in the engine.
use halfopen_core::{Hello, Instance, SourceKind};
use halfopen_engine::EngineConfig;
use halfopen_proto::convert::hello_to_wire;
use halfopen_proto::transport::{self, ClientConfig, Role};
use halfopen_proto::v1;
use halfopen_reconciler::{serve, ServeConfig, SessionLimits};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn start(
    engine: EngineConfig,
    sessions: SessionLimits,
    max_message_bytes: usize,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listen = free_port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cfg = ServeConfig {
        listen,
        db: None,
        engine,
        tick: Duration::from_millis(100),
        retention: None,
        incident_gap: Duration::from_secs(300),
        sessions,
        max_message_bytes,
        metrics_listen: None,
        // Plaintext on loopback (the TLS paths have their own tests).
        tls: None,
        insecure: false,
        auth_stats: Default::default(),
    };
    tokio::spawn(async move {
        serve(cfg, async {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    let url = format!("http://{listen}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            return (url, stop);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("reconciler did not start on {listen}");
}

fn hello(host: &str, netns: u64) -> v1::CollectorMessage {
    v1::CollectorMessage {
        msg: Some(v1::collector_message::Msg::Hello(hello_to_wire(&Hello {
            host_id: host.into(),
            addresses: vec!["198.18.5.1".parse().unwrap()],
            interval_ms: 1000,
            source: SourceKind::Netlink,
            version: "test".into(),
            instance: Instance {
                machine_id: "m".into(),
                boot_id: "b".into(),
                netns,
                pid: 1,
            },
            blind_spots: vec![],
            ..Default::default()
        }))),
    }
}

/// Opens a collector session that sends `first`; returns the sender (keep
/// it to keep the session) and the first answer (a message or a status).
async fn session(
    url: &str,
    first: Vec<v1::CollectorMessage>,
) -> (
    mpsc::Sender<v1::CollectorMessage>,
    Result<Option<v1::ReconcilerMessage>, tonic::Status>,
) {
    let ch = ClientConfig {
        reconciler: url.to_string(),
        role: Role::Collector,
        tls: None,
        insecure: false,
    }
    .connect()
    .await
    .unwrap();
    let mut c = transport::ingest_client(ch);
    let (tx, rx) = mpsc::channel(4);
    for m in first {
        tx.send(m).await.unwrap();
    }
    let r = match c.collect(ReceiverStream::new(rx)).await {
        Ok(resp) => tokio::time::timeout(Duration::from_secs(10), resp.into_inner().message())
            .await
            .expect("an answer within 10 s"),
        Err(s) => Err(s),
    };
    (tx, r)
}

async fn hosts(url: &str) -> Vec<String> {
    let ch = ClientConfig {
        reconciler: url.to_string(),
        role: Role::Reader,
        tls: None,
        insecure: false,
    }
    .connect()
    .await
    .unwrap();
    let r = transport::query_client(ch)
        .list_hosts(v1::ListHostsRequest {})
        .await
        .unwrap();
    r.into_inner().hosts.into_iter().map(|h| h.host_id).collect()
}

#[tokio::test]
async fn sessions_per_peer_and_host_ids_are_bounded() {
    let (url, _stop) = start(
        EngineConfig {
            max_hosts: 2,
            ..Default::default()
        },
        SessionLimits {
            max_sessions_per_peer: 2,
        },
        1 << 20,
    )
    .await;
    let (_a, ra) = session(&url, vec![hello("a", 1)]).await;
    assert!(ra.is_ok(), "{ra:?}");
    let (b, rb) = session(&url, vec![hello("b", 2)]).await;
    assert!(rb.is_ok(), "{rb:?}");
    // A third session from 127.0.0.1.
    let (_c, rc) = session(&url, vec![hello("c", 3)]).await;
    let s = rc.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(
        s.message(),
        "127.0.0.1 already has 2 collector sessions open (the reconciler's --max-sessions-per-peer)"
    );
    // b ends: its slot is free again; a third host id is over --max-hosts.
    drop(b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_c, rc) = session(&url, vec![hello("c", 3)]).await;
    let s = rc.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message().contains("already knows 2 host ids (its --max-hosts)"),
        "{s:?}"
    );
    let mut known = hosts(&url).await;
    known.sort();
    assert_eq!(known, ["a", "b"], "nothing of c reached the engine");
}

#[tokio::test]
async fn oversized_messages_and_pages_are_refused_naming_the_limit() {
    let (url, _stop) = start(EngineConfig::default(), SessionLimits::default(), 64 * 1024).await;
    // A Hello of ~100 KiB (a blind spot that big).
    let mut big = hello("big", 1);
    if let Some(v1::collector_message::Msg::Hello(h)) = big.msg.as_mut() {
        h.blind_spots = vec!["x".repeat(100 * 1024)];
    }
    let (_t, r) = session(&url, vec![big]).await;
    let s = r.unwrap_err();
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    assert!(s.message().contains("message length too large"), "{s:?}");
    assert!(hosts(&url).await.is_empty());

    let ch = ClientConfig {
        reconciler: url.clone(),
        role: Role::Reader,
        tls: None,
        insecure: false,
    }
    .connect()
    .await
    .unwrap();
    let mut q = transport::query_client(ch);
    let s = q
        .list_orphans(v1::ListOrphansRequest {
            kind: String::new(),
            page_size: 10_001,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(
        s.message(),
        "page size 10001 is above the limit of 10000: ask for smaller pages and follow next_page_token"
    );
}
