//! Network namespaces of one machine as hosts (`halfopen collector --netns`):
//! a pod's namespace is a host of its own, `NODE/NAME`, whose Hello names
//! its parent, container and pod; NAT translated in the node's namespace
//! joins a pod's socket to its server end on another node; findings name
//! the pods; blind spots found after the Hello replace the Hello's.
use super::*;
use halfopen_core::{NatEntry, NatState};

const NODE_A: &str = "198.18.0.1";
const NODE_B: &str = "198.18.0.2";
const POD_A1: &str = "198.18.1.2";
const POD_B1: &str = "198.18.2.2";

/// The Hello of namespace `name` of machine `parent`.
fn pod_hello(parent: &str, name: &str, ip: &str, pod: &str, netns: u64) -> Hello {
    let mut h = hello(&format!("{parent}/{name}"), ip);
    h.instance.machine_id = format!("machine-of-{parent}");
    h.instance.netns = netns;
    h.parent = Some(parent.into());
    h.netns_name = Some(name.into());
    h.pod = Some(pod.into());
    h
}

struct Cluster {
    e: Engine,
    node_a: HostIdx,
    pod_a1: HostIdx,
    pod_b1: HostIdx,
    sessions: HashMap<HostIdx, u64>,
}

/// node-a (its own namespace) with pod a1, node-b with pod b1; every host
/// has a full table in place, NAT visible everywhere.
fn cluster() -> Cluster {
    let mut e = Engine::new(EngineConfig::default());
    let mut sessions = HashMap::new();
    let mut open = |e: &mut Engine, h: Hello| {
        let (x, s) = connect(e, h, clk(0));
        sessions.insert(x, s);
        x
    };
    let mut node_a_hello = hello("node-a", NODE_A);
    node_a_hello.instance.machine_id = "machine-of-node-a".into();
    let node_a = open(&mut e, node_a_hello);
    let pod_a1 = open(
        &mut e,
        pod_hello("node-a", "shop/client-7d9f", POD_A1, "shop/client-7d9f", 11),
    );
    let mut node_b_hello = hello("node-b", NODE_B);
    node_b_hello.instance.machine_id = "machine-of-node-b".into();
    let node_b = open(&mut e, node_b_hello);
    let pod_b1 = open(&mut e, pod_hello("node-b", "db-ns", POD_B1, "shop/db-0", 21));
    for h in [node_a, pod_a1, node_b, pod_b1] {
        let mut r = full(1, vec![]);
        r.nat_state = NatState::Visible;
        e.report(h, sessions[&h], r, clk(0));
    }
    Cluster {
        e,
        node_a,
        pod_a1,
        pod_b1,
        sessions,
    }
}

fn delta(seq: u64) -> Report {
    Report {
        seq,
        last_chunk: true,
        nat_state: NatState::Visible,
        ..Default::default()
    }
}

/// Both lookup rounds, answered from these tables.
fn confirm_round(w: &mut Cluster, tables: &HashMap<HostIdx, HashMap<Tuple, (TcpState, u64)>>, at: u64) -> Vec<Finding> {
    let a = w.e.tick(clk(at));
    let a = answer(&mut w.e, a, tables, &w.sessions, clk(at + 100));
    confirmed(&answer(&mut w.e, a, tables, &w.sessions, clk(at + 200)))
}

#[test]
fn a_pods_host_carries_its_parent_namespace_and_pod() {
    let w = cluster();
    let hosts = w.e.hosts(clk(10));
    let a1 = hosts.iter().find(|h| h.name == "node-a/shop/client-7d9f").unwrap();
    assert_eq!(a1.parent.as_deref(), Some("node-a"));
    assert_eq!(a1.netns_name.as_deref(), Some("shop/client-7d9f"));
    assert_eq!(a1.pod.as_deref(), Some("shop/client-7d9f"));
    assert_eq!(a1.container, None);
    let node = hosts.iter().find(|h| h.name == "node-a").unwrap();
    assert_eq!((node.parent.as_deref(), node.pod.as_deref()), (None, None));
}

/// kube-proxy: the client pod dials a Service VIP, node-a (the client's
/// node, its own namespace: the parent host) DNATs it to a pod on node-b.
/// Healthy: nothing. The server pod's end gone: the client pod's socket is
/// a finding naming both pods, the VIP as dialed and node-a as translator.
#[test]
fn a_vip_translated_on_the_clients_node_joins_a_pod_to_a_pod_on_another_node() {
    let mut w = cluster();
    let (node_a, pod_a1, pod_b1) = (w.node_a, w.pod_a1, w.pod_b1);
    let vip = sa("198.18.100.1", 80);
    let cl = rec(sa(POD_A1, 40001), vip, Side::Client, TcpState::Established, 7);
    let backend = Tuple::new(sa(POD_B1, 8080), sa(POD_A1, 40001));
    let sv = SocketRecord {
        tuple: backend,
        side: Side::Server,
        cookie: 8,
        ..cl
    };
    let mut d = delta(2);
    d.nat = vec![NatEntry {
        original: cl.tuple,
        reply: backend,
    }];
    w.e.report(node_a, w.sessions[&node_a], d, clk(100));
    let mut d = delta(2);
    d.upserted = vec![sv];
    w.e.report(pod_b1, w.sessions[&pod_b1], d, clk(100));
    let mut d = delta(2);
    d.upserted = vec![cl];
    w.e.report(pod_a1, w.sessions[&pod_a1], d, clk(100));
    assert_eq!(w.e.candidate_count(), 0, "both ends are held, through the node's NAT");
    assert!(looked_up(&w.e.tick(clk(1_500))).is_empty());

    let mut d = delta(3);
    d.removed = vec![backend];
    w.e.report(pod_b1, w.sessions[&pod_b1], d, clk(1_600));
    let tables = HashMap::from([
        (pod_b1, HashMap::new()),
        (pod_a1, HashMap::from([(cl.tuple, (TcpState::Established, 7))])),
    ]);
    // Within every host's stale limit (3 intervals after its last report at 100 ms).
    let a = w.e.tick(clk(2_700));
    assert_eq!(
        looked_up(&a),
        vec![backend],
        "the server pod is asked for the translated tuple"
    );
    let a = answer(&mut w.e, a, &tables, &w.sessions, clk(2_800));
    let f = confirmed(&answer(&mut w.e, a, &tables, &w.sessions, clk(2_900)));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].subject.client_host(), Some("node-a/shop/client-7d9f"));
    assert_eq!(f[0].subject.server_host(), "node-b/db-ns");
    assert_eq!(f[0].tuple().unwrap().remote(), vip, "as dialed");
    assert_eq!(f[0].server_end(), sa(POD_B1, 8080));
    assert_eq!(f[0].evidence.nat.as_ref().unwrap().translated_on, "node-a");
    let views = w.e.findings(clk(3_000));
    assert_eq!(views.len(), 1);
    let v = &views[0];
    assert_eq!(v.client_pod.as_deref(), Some("shop/client-7d9f"));
    assert_eq!(v.server_pod.as_deref(), Some("shop/db-0"));
    assert_eq!(
        (v.client_container.as_deref(), v.server_container.as_deref()),
        (None, None)
    );
}

/// Masquerade: a pod reaches a server outside through its node's address.
/// The server holds the tuple with the node's address and port; the node's
/// conntrack has the translation; the two ends join, and a missing server
/// end is found with the masqueraded address as `seen_as`.
#[test]
fn a_pod_masqueraded_behind_its_node_joins_to_a_server_outside() {
    let mut w = cluster();
    let (node_a, pod_a1) = (w.node_a, w.pod_a1);
    // The server outside: a machine of its own.
    let (srv, srv_session) = connect(&mut w.e, hello("db", "198.18.0.9"), clk(0));
    w.sessions.insert(srv, srv_session);
    let mut r = full(1, vec![]);
    r.nat_state = NatState::Visible;
    w.e.report(srv, srv_session, r, clk(0));
    let cl = rec(
        sa(POD_A1, 40002),
        sa("198.18.0.9", 5432),
        Side::Client,
        TcpState::Established,
        9,
    );
    let seen = Tuple::new(sa("198.18.0.9", 5432), sa(NODE_A, 61000));
    let sv = SocketRecord {
        tuple: seen,
        side: Side::Server,
        cookie: 10,
        ..cl
    };
    let mut d = delta(2);
    d.nat = vec![NatEntry {
        original: cl.tuple,
        reply: seen,
    }];
    w.e.report(node_a, w.sessions[&node_a], d, clk(100));
    let mut d = delta(2);
    d.upserted = vec![sv];
    w.e.report(srv, srv_session, d, clk(100));
    let mut d = delta(2);
    d.upserted = vec![cl];
    w.e.report(pod_a1, w.sessions[&pod_a1], d, clk(100));
    assert_eq!(w.e.candidate_count(), 0, "joined through the masquerade");
    assert!(
        looked_up(&w.e.tick(clk(1_500))).is_empty(),
        "and the server end is not server_only"
    );

    let mut d = delta(3);
    d.removed = vec![seen];
    w.e.report(srv, srv_session, d, clk(1_600));
    let tables = HashMap::from([
        (srv, HashMap::new()),
        (pod_a1, HashMap::from([(cl.tuple, (TcpState::Established, 9))])),
    ]);
    let f = confirm_round(&mut w, &tables, 2_700);
    assert_eq!(f.len(), 1, "{f:?}");
    let nat = f[0].evidence.nat.as_ref().unwrap();
    assert_eq!(nat.translated_on, "node-a");
    assert_eq!(nat.seen_as, sa(NODE_A, 61000), "the pod as the server saw it");
    assert_eq!(f[0].server_end(), sa("198.18.0.9", 5432));
    let v = &w.e.findings(clk(3_000))[0];
    assert_eq!(v.client_pod.as_deref(), Some("shop/client-7d9f"));
    assert_eq!(v.server_pod, None, "the server is no pod");
}

/// A namespace found after the Hello that cannot be entered: the parent's
/// next report carries the whole list, which replaces the Hello's; a report
/// without a list leaves it; an empty list clears it.
#[test]
fn blind_spots_in_a_report_replace_the_hellos() {
    let mut w = cluster();
    let node_a = w.node_a;
    let spots = |w: &Cluster| {
        w.e.hosts(clk(10))
            .into_iter()
            .find(|h| h.name == "node-a")
            .unwrap()
            .blind_spots
    };
    assert!(spots(&w).is_empty());
    let mut d = delta(2);
    d.blind_spots = Some(vec![
        "network namespace netns-4026532290 (pid 77): cannot enter: CAP_SYS_ADMIN missing".into(),
    ]);
    w.e.report(node_a, w.sessions[&node_a], d, clk(100));
    assert_eq!(spots(&w).len(), 1);
    assert!(spots(&w)[0].contains("cannot enter"));
    w.e.report(node_a, w.sessions[&node_a], delta(3), clk(200));
    assert_eq!(spots(&w).len(), 1, "unchanged without a list");
    let mut d = delta(4);
    d.blind_spots = Some(Vec::new());
    w.e.report(node_a, w.sessions[&node_a], d, clk(300));
    assert!(spots(&w).is_empty());
    let cov = w.e.coverage(clk(400));
    assert!(cov.blind_spots.is_empty(), "{cov:?}");
}
