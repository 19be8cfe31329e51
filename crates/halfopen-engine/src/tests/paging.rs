//! Paging: the pages together are the whole listing, nothing is listed
//! twice, tokens round-trip and foreign ones are refused.
use super::*;
use crate::paging::order_key;
use proptest::prelude::*;
/// Findings of every kind over awkward host names and both address families,
/// restored straight into an engine (paging does not care how they came).
fn paging_findings(n: usize) -> Vec<Finding> {
    let hosts = ["app-1", "app~2", "dbé", "", "a-very-long-host-name.example"];
    (0..n)
        .map(|i| {
            let kind = FindingKind::ALL[i % FindingKind::ALL.len()];
            let client = if i % 3 == 0 {
                sa("2001:db8::2", 40_000 + (i % 20_000) as u16)
            } else {
                sa("198.18.0.2", 30_000 + (i % 30_000) as u16)
            };
            let server = if i % 3 == 0 {
                sa("2001:db8::1", 3306)
            } else {
                sa("198.18.0.1", 3306 + (i % 7) as u16)
            };
            let server_host = hosts[(i / 5) % hosts.len()];
            let subject = if !kind.is_connection() {
                Subject::Listener {
                    host: server_host.into(),
                    addr: sa("198.18.0.1", (1000 + i) as u16),
                }
            } else {
                conn(Tuple::new(client, server), hosts[i % hosts.len()], server_host)
            };
            finding(kind, subject)
        })
        .collect()
}

fn keys(v: &[FindingView]) -> Vec<String> {
    v.iter().map(|f| format!("{:?}", order_key(&f.finding))).collect()
}

/// Reads every page of `kind` with `limit` per page.
fn all_pages(e: &Engine, kind: Option<FindingKind>, limit: usize) -> (Vec<FindingView>, usize) {
    let mut out = Vec::new();
    let mut after: Option<PageCursor> = None;
    for pages in 1..10_000 {
        let (page, next) = e.findings_page(clk(0), kind, after.as_ref(), limit);
        assert!(page.len() <= limit, "a page holds at most its limit");
        out.extend(page);
        match next {
            // the cursor travels as a token, as it does through the CLI
            Some(c) => after = Some(PageCursor::parse(&c.token()).expect("a token we made parses")),
            None => return (out, pages),
        }
    }
    panic!("paging did not end");
}

#[test]
fn pages_together_are_the_whole_listing_in_order() {
    let mut e = Engine::new(EngineConfig::default());
    e.restore(paging_findings(103), clk(0));
    let whole = e.findings(clk(0));
    assert_eq!(whole.len(), 103);
    let mut sorted = keys(&whole);
    sorted.dedup();
    assert_eq!(sorted.len(), 103, "no two findings share an order key");
    for limit in [1, 7, 50, 103, 1000] {
        let (paged, pages) = all_pages(&e, None, limit);
        assert_eq!(keys(&paged), keys(&whole), "limit {limit}");
        assert_eq!(
            pages,
            103usize.div_ceil(limit).max(1),
            "limit {limit}: no empty last page"
        );
    }
    for kind in FindingKind::ALL {
        let want: Vec<_> = whole.iter().filter(|f| f.finding.kind == kind).cloned().collect();
        assert!(!want.is_empty());
        assert_eq!(keys(&all_pages(&e, Some(kind), 4).0), keys(&want), "{kind:?}");
    }
}

#[test]
fn findings_appearing_between_pages_are_never_listed_twice() {
    let all = paging_findings(60);
    let mut e = Engine::new(EngineConfig::default());
    e.restore(all[..30].to_vec(), clk(0));
    let (first, next) = e.findings_page(clk(0), None, None, 10);
    e.restore(all[30..].to_vec(), clk(0));
    let (rest, _) = {
        let mut out = Vec::new();
        let mut after = next;
        while let Some(c) = after {
            let (p, n) = e.findings_page(clk(0), None, Some(&c), 10);
            out.extend(p);
            after = n;
        }
        (out, ())
    };
    let mut listed = keys(&first);
    listed.extend(keys(&rest));
    let n = listed.len();
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), n, "a finding was listed twice");
    // Every finding present from the start is listed.
    for f in &all[..30] {
        let k = format!("{:?}", order_key(f));
        assert!(listed.contains(&k), "{k} was present throughout but not listed");
    }
}

proptest! {
    #[test]
    fn page_tokens_round_trip(client in ".*", server in ".*", port in any::<u16>(), v6 in any::<bool>(), k in 0usize..5) {
        let ip = if v6 { "2001:db8::7" } else { "198.18.1.7" };
        let subject = if !FindingKind::ALL[k].is_connection() {
            Subject::Listener { host: server, addr: sa(ip, port) }
        } else {
            conn(Tuple::new(sa(ip, port), sa(ip, 3306)), &client, &server)
        };
        let f = finding(FindingKind::ALL[k], subject);
        let c = PageCursor::of(&f);
        prop_assert_eq!(PageCursor::parse(&c.token()), Some(c));
    }

    #[test]
    fn any_string_as_a_page_token_is_read_or_refused_without_panic(s in ".*") {
        let _ = PageCursor::parse(&s);
    }
}

#[test]
fn foreign_page_tokens_are_refused() {
    let good = PageCursor::of(&paging_findings(1)[0]).token();
    assert!(PageCursor::parse(&good).is_some());
    for bad in [
        String::new(),
        "client_only".to_string(),
        good.replacen("client_only", "orphan", 1),
        format!("{good}~00"),
        good.rsplit_once('~').unwrap().0.to_string(),
        format!("{}~0", good.rsplit_once('~').unwrap().0),  // odd hex
        format!("{}~zz", good.rsplit_once('~').unwrap().0), // not hex
        format!("{}~ff", good.rsplit_once('~').unwrap().0), // not UTF-8
        good.replacen("2001:db8::1", "2001:dbx::1", 1),     // not an address
    ] {
        assert_eq!(PageCursor::parse(&bad), None, "{bad:?}");
    }
}

#[test]
fn a_restored_listener_at_risk_adds_no_nameless_host() {
    let mut e = Engine::new(EngineConfig::default());
    e.restore(
        vec![finding(
            FindingKind::ListenerAtRisk,
            Subject::Listener {
                host: "db".into(),
                addr: sa(S_IP, 3306),
            },
        )],
        clk(0),
    );
    let hosts: Vec<String> = e.hosts(clk(0)).into_iter().map(|h| h.name).collect();
    assert_eq!(hosts, vec!["db".to_string()]);
    let f = e.findings(clk(0));
    assert_eq!(f.len(), 1);
    assert!(!f[0].client_host_stale, "a listener has no client host to be stale");
}
