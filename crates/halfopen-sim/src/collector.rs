//! One simulated collector per host, speaking the real protocol on a real
//! `Collect` stream: Hello, a full table (chunked by the collector's own
//! `report_messages`), then a delta every interval at the host's own phase,
//! lookups answered from the host's table at the moment they are answered,
//! and a full table again after a `Resync` or a reconnect.
use crate::addr::{host_id, host_ip, HostIdx};
use crate::observe::{wall_ms, Registry};
use crate::world::World;
use anyhow::{anyhow, bail, Result};
use halfopen_collector::session::report_messages;
use halfopen_proto::v1;
use halfopen_proto::v1::ingest_client::IngestClient;
use prost::Message;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Messages queued per session before `send` waits for gRPC to take them.
const QUEUE: usize = 8;

/// Counters shared by every simulated collector.
#[derive(Default)]
pub struct Counters {
    pub reports: AtomicU64,
    pub full_reports: AtomicU64,
    pub report_messages: AtomicU64,
    pub full_records: AtomicU64,
    pub delta_records: AtomicU64,
    pub bytes: AtomicU64,
    pub lookups: AtomicU64,
    pub lookup_tuples: AtomicU64,
    pub lookup_present: AtomicU64,
    pub resyncs: AtomicU64,
    pub sessions: AtomicU64,
    pub stream_errors: AtomicU64,
    /// Hosts whose first full table has been handed to gRPC.
    pub hosts_sent_full: AtomicU64,
    /// Full tables sent again after a reconnect or a Resync.
    pub repeat_fulls: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}

/// State every simulated collector shares.
pub struct Fleet {
    pub world: Mutex<World>,
    pub registry: Mutex<Registry>,
    pub counters: Counters,
    /// Bounds how many full tables are being built and sent at once.
    pub full_gate: Semaphore,
    pub interval: Duration,
    pub stop: watch::Receiver<bool>,
}

impl Fleet {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs host `h`'s collector until the fleet stops, reconnecting (with a
/// new session and a full table) whenever the stream breaks.
pub async fn run_host(h: HostIdx, phase: Duration, client: IngestClient<Channel>, fleet: Arc<Fleet>) {
    let mut first = Some(phase);
    let mut sent_full = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = Instant::now();
        let r = session(
            h,
            first.take().unwrap_or(Duration::ZERO),
            client.clone(),
            &fleet,
            &mut sent_full,
        )
        .await;
        fleet.world().host_disconnected(h);
        match r {
            Ok(()) => return,
            Err(e) => {
                let n = fleet.counters.stream_errors.fetch_add(1, Relaxed);
                if n < 10 {
                    eprintln!("{}: session ended: {e:#}; reconnecting", host_id(h));
                } else if n == 10 {
                    eprintln!("(further session errors are only counted)");
                }
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        let mut stop = fleet.stop.clone();
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    h: HostIdx,
    phase: Duration,
    mut client: IngestClient<Channel>,
    fleet: &Fleet,
    sent_full: &mut bool,
) -> Result<()> {
    let mut stop = fleet.stop.clone();
    if *stop.borrow_and_update() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<v1::CollectorMessage>(QUEUE);
    let hello = v1::Hello {
        host_id: host_id(h),
        addresses: vec![host_ip(h).octets().to_vec(), Ipv4Addr::LOCALHOST.octets().to_vec()],
        interval_ms: fleet.interval.as_millis().min(u32::MAX as u128) as u32,
        source: "sim".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        // Every simulated collector is its own instance (as on real hosts).
        instance: Some(v1::Instance {
            machine_id: format!("sim-machine-{h}"),
            boot_id: "sim-boot".into(),
            netns: 1,
            pid: std::process::id(),
        }),
        blind_spots: Vec::new(),
        ..Default::default()
    };
    send(
        &tx,
        v1::CollectorMessage {
            msg: Some(v1::collector_message::Msg::Hello(hello)),
        },
        &fleet.counters,
    )
    .await?;
    let mut inbound = client.collect(ReceiverStream::new(rx)).await?.into_inner();
    fleet.counters.sessions.fetch_add(1, Relaxed);

    let mut seq = 0u64;
    let mut need_full = true;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, fleet.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = ticker.tick() => {
                send_report(h, &tx, &mut seq, need_full, fleet).await?;
                if need_full {
                    let c = &fleet.counters;
                    if std::mem::replace(sent_full, true) { &c.repeat_fulls } else { &c.hosts_sent_full }
                        .fetch_add(1, Relaxed);
                }
                need_full = false;
            }
            m = inbound.message() => {
                let Some(m) = m? else { bail!("the reconciler closed the stream") };
                match m.msg {
                    Some(v1::reconciler_message::Msg::Lookup(l)) => {
                        let results = fleet.world().lookup(h, &l.tuples, l.attribute);
                        let c = &fleet.counters;
                        c.lookups.fetch_add(1, Relaxed);
                        c.lookup_tuples.fetch_add(results.len() as u64, Relaxed);
                        c.lookup_present.fetch_add(results.iter().filter(|r| r.present).count() as u64, Relaxed);
                        let reply = v1::LookupReply { id: l.id, results };
                        let msg = v1::CollectorMessage { msg: Some(v1::collector_message::Msg::LookupReply(reply)) };
                        send(&tx, msg, c).await?;
                    }
                    Some(v1::reconciler_message::Msg::Resync(r)) => {
                        let n = fleet.counters.resyncs.fetch_add(1, Relaxed);
                        if n < 10 {
                            eprintln!("{}: reconciler asked for a full table: {}", host_id(h), r.reason);
                        }
                        need_full = true;
                        ticker.reset_immediately();
                    }
                    // Anything newer than this simulator (or empty): ignored,
                    // as an older collector would.
                    _ => {}
                }
            }
        }
    }
}

async fn send(tx: &mpsc::Sender<v1::CollectorMessage>, m: v1::CollectorMessage, c: &Counters) -> Result<()> {
    c.bytes.fetch_add(m.encoded_len() as u64, Relaxed);
    tx.send(m)
        .await
        .map_err(|_| anyhow!("the stream to the reconciler is closed"))
}

/// Builds and sends one report. A full table holds a slot of the fleet's
/// full-table gate until gRPC has taken its last message, which bounds the
/// memory of tables waiting to be sent.
async fn send_report(
    h: HostIdx,
    tx: &mpsc::Sender<v1::CollectorMessage>,
    seq: &mut u64,
    full: bool,
    fleet: &Fleet,
) -> Result<()> {
    let _permit = if full {
        Some(fleet.full_gate.acquire().await?)
    } else {
        None
    };
    let built = {
        let mut w = fleet.world();
        if full {
            w.full_report(h)
        } else {
            w.delta_report(h)
        }
    };
    let records = (built.data.upserted.len() + built.data.removed.len()) as u64;
    let msgs = report_messages(seq, built.data, None);
    let c = &fleet.counters;
    c.report_messages.fetch_add(msgs.len() as u64, Relaxed);
    for m in msgs {
        send(tx, m, c).await?;
    }
    if full {
        // Wait until every queued message has been taken by the encoder.
        drop(tx.reserve_many(QUEUE).await?);
        c.full_reports.fetch_add(1, Relaxed);
        c.full_records.fetch_add(records, Relaxed);
    } else {
        c.delta_records.fetch_add(records, Relaxed);
    }
    c.reports.fetch_add(1, Relaxed);
    if !built.planted.is_empty() {
        fleet.registry().mark_sent(&built.planted, Instant::now(), wall_ms());
    }
    Ok(())
}
