//! `explain` on a listener: concrete changes with current values.
use super::*;
#[test]
fn explain_a_listener_gives_concrete_changes() {
    let mut w = two_hosts();
    let s = w.s;
    let mut r = full(1, vec![]);
    r.listeners = vec![db_listener(5, 4)];
    r.sysctls = BTreeMap::from([("net.core.somaxconn".to_string(), "128".to_string())]);
    r.counters = BTreeMap::from([("TcpExt.ListenOverflows".to_string(), 0)]);
    w.e.report(s, w.sessions[&s], r, clk(0));
    let d = Report {
        seq: 2,
        last_chunk: true,
        listeners: vec![db_listener(5, 4)],
        counters: BTreeMap::from([("TcpExt.ListenOverflows".to_string(), 900)]),
        ..Default::default()
    };
    w.e.report(s, w.sessions[&s], d, clk(1_000));
    for target in ["db:3306", "198.18.0.1:3306", ""] {
        let diags = w.e.explain(&ExplainTarget::parse(target), clk(1_500)).unwrap();
        assert_eq!(diags.len(), 1, "{target}: {diags:?}");
        let back = &diags[0].changes[0];
        assert!(back.setting.starts_with("back_log (mariadbd)"), "{back:?}");
        assert_eq!(back.current, "4");
        assert!(diags[0]
            .changes
            .iter()
            .any(|c| c.setting == "net.core.somaxconn" && c.current == "128"));
    }
    assert!(w.e.explain(&ExplainTarget::parse("nosuchhost:1"), clk(0)).is_err());
    assert!(w.e.explain(&ExplainTarget::parse("garbage"), clk(0)).is_err());
}
