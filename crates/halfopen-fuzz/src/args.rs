//! Values typed by operators or carried back by clients:
//! - [`netns_spec`]: `halfopen collector --netns` (`halfopen_sockets::netns::NetnsSpec`);
//! - [`page_token`]: `ListOrphans.page_token` (`halfopen_engine::PageCursor::parse`);
//! - [`explain_target`]: `halfopen explain TARGET` and `ExplainRequest.target`
//!   (`halfopen_core::ExplainTarget::parse`);
//! - [`duration_arg`]: `--interval`, `--grace`, `--stall-after` (the CLI's
//!   `parse_duration`);
//! - [`time_arg`]: `--since`/`--until` (`halfopen_history::parse_time`).
//!
//! Command-line values reach their parsers as UTF-8 (clap's `String`
//! values), so non-UTF-8 inputs end here.
//!
//! The CLI is a binary crate, which nothing can link against: its value
//! parsers live in `crates/halfopen-cli/src/args.rs` (std and humantime
//! only), compiled here as a module, so the target runs the CLI's own
//! `parse_duration`, whatever it becomes.
use halfopen_core::ExplainTarget;
use halfopen_engine::PageCursor;
use halfopen_sockets::netns::NetnsSpec;

/// `--netns`: what parses prints (Display, the canonical form) to a value
/// that parses to the same spec; errors print.
pub fn netns_spec(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match s.parse::<NetnsSpec>() {
        Ok(spec) => {
            let printed = spec.to_string();
            assert_eq!(
                printed.parse::<NetnsSpec>().as_ref(),
                Ok(&spec),
                "{printed:?} from {s:?}"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A page token: one that parses is the token of its cursor, which parses
/// to the same cursor; tokens are printable ASCII without spaces.
pub fn page_token(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(c) = PageCursor::parse(s) else {
        return;
    };
    let token = c.token();
    assert!(token.bytes().all(|b| b.is_ascii_graphic()), "token {token:?}");
    assert_eq!(PageCursor::parse(&token).as_ref(), Some(&c), "{token:?} from {s:?}");
}

/// An explain target: blank is everything, an endpoint is canonical, a
/// host name is the trimmed text or a non-empty part of it; each prints.
pub fn explain_target(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let t = ExplainTarget::parse(s);
    let trimmed = s.trim();
    assert_eq!(t == ExplainTarget::Everything, trimmed.is_empty());
    match &t {
        ExplainTarget::Everything => {}
        ExplainTarget::Endpoint(e) => {
            crate::wire::assert_canonical_addr(*e);
            assert_eq!(
                ExplainTarget::parse(&t.to_string()),
                t,
                "an endpoint prints back to itself"
            );
        }
        ExplainTarget::HostPort { host, .. } => {
            assert!(
                !host.is_empty() && trimmed.contains(host.as_str()),
                "{host:?} from {s:?}"
            );
        }
        ExplainTarget::Host(h) => assert_eq!(h, trimmed),
    }
    let _ = t.to_string();
}

/// A duration flag: what parses is more than zero, and humantime's own
/// formatting of it parses back to it (what the collector logs is what
/// was meant).
pub fn duration_arg(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match cli::parse_duration(s) {
        Ok(d) => {
            assert!(!d.is_zero());
            let printed = humantime::format_duration(d).to_string();
            assert_eq!(cli::parse_duration(&printed), Ok(d), "{printed:?} from {s:?}");
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

#[allow(dead_code)]
#[path = "../../halfopen-cli/src/args.rs"]
mod cli;

/// A time argument (`--since`, `--until`): RFC 3339 or a time ago. What
/// parses is an instant that humantime prints back (whole ms, UTC) to text
/// that parses to the same instant; errors say what a time looks like.
pub fn time_arg(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    const NOW: i64 = 1_796_058_902_000;
    match halfopen_history::parse_time(s, NOW) {
        Ok(ms) => {
            if (0..253_402_300_799_000).contains(&ms) {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
                let printed = humantime::format_rfc3339_millis(t).to_string();
                assert_eq!(
                    halfopen_history::parse_time(&printed, 0),
                    Ok(ms),
                    "{printed:?} from {s:?}"
                );
            }
        }
        Err(e) => assert!(e.to_string().contains("is not a time"), "{e}"),
    }
}
