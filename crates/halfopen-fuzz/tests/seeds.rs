//! The session seeds do what they are for: honest collectors driving the
//! real engine reach confirmed findings of every kind, findings gone,
//! resyncs and superseded sessions, so the fuzzer starts from deep states.
use halfopen_fuzz::seeds;

#[test]
fn the_incident_confirms_client_only_stalled_and_at_risk_then_one_goes() {
    let s = seeds::incident();
    let c = s.confirmed();
    println!("{c:?} gone {}", s.gone());
    assert_eq!(c.get("client_only"), Some(&2), "{:#?}", s.actions);
    assert!(c.get("stalled_greeting").is_some_and(|&n| n >= 1), "{c:?}");
    assert!(c.get("listener_at_risk").is_some_and(|&n| n >= 1), "{c:?}");
    assert!(s.gone() >= 1);
}

#[test]
fn the_v6_session_confirms_server_only_then_it_goes() {
    let s = seeds::server_only_v6();
    let c = s.confirmed();
    assert_eq!(c.get("server_only"), Some(&1), "{c:?} {:#?}", s.actions);
    assert_eq!(
        c.get("client_only"),
        None,
        "mapped addresses join their IPv4 other ends"
    );
    assert_eq!(s.gone(), 1);
}

#[test]
fn the_churn_session_resyncs() {
    let s = seeds::churn();
    assert!(s.resyncs() >= 1, "{:#?}", s.actions);
}
