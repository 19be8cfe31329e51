//! [`NetnsSpec`]: which network namespaces a collector covers, as written
//! in `halfopen collector --netns all|self|ITEM[,ITEM...]` where an ITEM is
//! `self`, a /run/netns name, or `pid:N` (the namespace process N is in).
//! Parsing is pure; [`NetnsSpec::select`] applies a spec to a
//! [`Discovery`] (reading `/proc/N/ns/net` for `pid:N` items).
//!
//! The words win over names: a namespace named `all` or `self`, or whose
//! name starts with `pid:` or contains a comma, cannot be chosen by name
//! (choose it by `pid:N` of a member, or with `all`).
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::discover::{Discovery, Netns};
use super::id::inode_at;

/// A parsed `--netns` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsSpec {
    /// `all`: every namespace the discovery finds.
    All,
    /// A list of items (`self` alone is `Only([Own])`), without duplicates,
    /// in the order written.
    Only(Vec<NetnsSelector>),
}

/// One item of a `--netns` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetnsSelector {
    /// `self`: the collector's own namespace.
    Own,
    /// A /run/netns name.
    Named(String),
    /// `pid:N`: the namespace process N (in the collector's pid namespace)
    /// is in.
    Pid(u32),
}

impl fmt::Display for NetnsSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsSelector::Own => f.write_str("self"),
            NetnsSelector::Named(n) => f.write_str(n),
            NetnsSelector::Pid(p) => write!(f, "pid:{p}"),
        }
    }
}

impl fmt::Display for NetnsSpec {
    /// The canonical form, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsSpec::All => f.write_str("all"),
            NetnsSpec::Only(items) => {
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{s}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a `--netns` value did not parse. Each message quotes the offending
/// item and says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("--netns is empty: use all, self, a /run/netns name, or pid:N (several separated by commas)")]
    Empty,
    #[error("--netns {value:?}: item {position} is empty (two commas in a row, or a comma at an end)")]
    EmptyItem { value: String, position: usize },
    #[error("--netns {value:?}: 'all' cannot be combined with other items; use 'all' alone")]
    AllCombined { value: String },
    #[error("--netns item {item:?}: {reason}; pid:N takes a process id from 1 to 4194304")]
    BadPid { item: String, reason: &'static str },
    #[error("--netns item {item:?}: {reason}; a /run/netns name is 1 to 255 bytes without '/', NUL or control characters, and not '.' or '..'")]
    BadName { item: String, reason: &'static str },
}

/// PID_MAX_LIMIT on 64-bit kernels (include/linux/threads.h): 4 * 1024 * 1024.
const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;

fn parse_item(item: &str) -> Result<NetnsSelector, SpecError> {
    if item == "self" {
        return Ok(NetnsSelector::Own);
    }
    if let Some(n) = item.strip_prefix("pid:") {
        let bad = |reason| SpecError::BadPid {
            item: item.to_string(),
            reason,
        };
        if n.is_empty() {
            return Err(bad("no number after 'pid:'"));
        }
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a decimal number"));
        }
        let pid: u32 = n.parse().map_err(|_| bad("number too large"))?;
        if pid == 0 {
            return Err(bad("pid 0 is not a process"));
        }
        if pid > PID_MAX_LIMIT {
            return Err(bad("number too large"));
        }
        return Ok(NetnsSelector::Pid(pid));
    }
    let bad = |reason| SpecError::BadName {
        item: item.to_string(),
        reason,
    };
    if item.len() > 255 {
        return Err(bad("longer than 255 bytes"));
    }
    if item.contains('/') {
        return Err(bad("contains '/'"));
    }
    if item.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    if item == "." || item == ".." {
        return Err(bad("is '.' or '..'"));
    }
    Ok(NetnsSelector::Named(item.to_string()))
}

impl FromStr for NetnsSpec {
    type Err = SpecError;

    /// Items are separated by commas; spaces around an item are ignored
    /// (`--netns "web, db"`); a repeated item counts once.
    fn from_str(value: &str) -> Result<NetnsSpec, SpecError> {
        if value.trim().is_empty() {
            return Err(SpecError::Empty);
        }
        let mut items: Vec<NetnsSelector> = Vec::new();
        let mut all = false;
        let mut count = 0;
        for (i, raw) in value.split(',').enumerate() {
            count += 1;
            let item = raw.trim();
            if item.is_empty() {
                return Err(SpecError::EmptyItem {
                    value: value.to_string(),
                    position: i + 1,
                });
            }
            if item == "all" {
                all = true;
                continue;
            }
            let s = parse_item(item)?;
            if !items.contains(&s) {
                items.push(s);
            }
        }
        match (all, count) {
            (true, 1) => Ok(NetnsSpec::All),
            (true, _) => Err(SpecError::AllCombined {
                value: value.to_string(),
            }),
            (false, _) => Ok(NetnsSpec::Only(items)),
        }
    }
}

/// What [`NetnsSpec::select`] picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'d> {
    /// The namespaces chosen, in discovery (inode) order, each once.
    pub chosen: Vec<&'d Netns>,
    /// Items that matched nothing, with the reason (a name that does not
    /// exist, a process that is gone...). The collector should say so and
    /// may look again at its next discovery.
    pub unmatched: Vec<(NetnsSelector, String)>,
}

impl NetnsSpec {
    /// The namespaces of `d` this spec picks. `pid:N` items are resolved by
    /// reading `<proc_root>/N/ns/net` now (the discovery keeps only a sample
    /// of member pids); other items need no I/O.
    pub fn select<'d>(&self, d: &'d Discovery, proc_root: &Path) -> Selection<'d> {
        let items = match self {
            NetnsSpec::All => {
                return Selection {
                    chosen: d.namespaces.iter().collect(),
                    unmatched: Vec::new(),
                }
            }
            NetnsSpec::Only(items) => items,
        };
        let mut chosen: Vec<&Netns> = Vec::new();
        let mut unmatched = Vec::new();
        for s in items {
            let found: Result<&Netns, String> = match s {
                NetnsSelector::Own => d.own().ok_or_else(|| "the discovery has no own namespace".to_string()),
                NetnsSelector::Named(n) => d.named(n).ok_or_else(|| format!("no network namespace named {n:?}")),
                NetnsSelector::Pid(p) => {
                    let path = proc_root.join(format!("{p}/ns/net"));
                    match std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())) {
                        Err(_) => Err(format!("{}: path contains NUL", path.display())),
                        Ok(c) => match inode_at(None, &c) {
                            Ok(inode) => d
                                .get(inode)
                                .ok_or_else(|| format!("process {p} is in {inode}, which the discovery did not list")),
                            Err(e) => Err(format!("{}: {e}", path.display())),
                        },
                    }
                }
            };
            match found {
                Ok(ns) => {
                    if !chosen.iter().any(|c| c.inode == ns.inode) {
                        chosen.push(ns);
                    }
                }
                Err(why) => unmatched.push((s.clone(), why)),
            }
        }
        chosen.sort_by_key(|n| n.inode);
        Selection { chosen, unmatched }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::NsInode;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<NetnsSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn accepted_values() {
        assert_eq!(parse("all").unwrap(), NetnsSpec::All);
        assert_eq!(parse("self").unwrap(), NetnsSpec::Only(vec![NetnsSelector::Own]));
        assert_eq!(
            parse("web").unwrap(),
            NetnsSpec::Only(vec![NetnsSelector::Named("web".into())])
        );
        assert_eq!(
            parse("web, db,pid:1234 ,self,web").unwrap(),
            NetnsSpec::Only(vec![
                NetnsSelector::Named("web".into()),
                NetnsSelector::Named("db".into()),
                NetnsSelector::Pid(1234),
                NetnsSelector::Own,
            ])
        );
        assert_eq!(
            parse("cni-1f2e3d4c-aaaa-bbbb-cccc-0123456789ab").unwrap(),
            NetnsSpec::Only(vec![NetnsSelector::Named(
                "cni-1f2e3d4c-aaaa-bbbb-cccc-0123456789ab".into()
            )])
        );
        assert_eq!(
            parse("pid:4194304").unwrap(),
            NetnsSpec::Only(vec![NetnsSelector::Pid(4_194_304)])
        );
        // names may hold spaces inside and non-ASCII letters
        assert_eq!(
            parse("my ns").unwrap(),
            NetnsSpec::Only(vec![NetnsSelector::Named("my ns".into())])
        );
    }

    #[test]
    fn rejected_values_say_why() {
        let e = parse("").unwrap_err();
        assert_eq!(e, SpecError::Empty);
        assert!(e.to_string().contains("use all, self"));
        assert_eq!(parse("  ").unwrap_err(), SpecError::Empty);

        let e = parse("a,,b").unwrap_err();
        assert_eq!(
            e,
            SpecError::EmptyItem {
                value: "a,,b".into(),
                position: 2
            }
        );
        assert!(e.to_string().contains("item 2 is empty"), "{e}");
        assert!(matches!(
            parse("a,").unwrap_err(),
            SpecError::EmptyItem { position: 2, .. }
        ));

        let e = parse("all,web").unwrap_err();
        assert!(e.to_string().contains("'all' cannot be combined"), "{e}");
        assert!(matches!(parse("all,all").unwrap_err(), SpecError::AllCombined { .. }));

        for (v, why) in [
            ("pid:", "no number"),
            ("pid:abc", "not a decimal"),
            ("pid:-3", "not a decimal"),
            ("pid:+3", "not a decimal"),
            ("pid:0", "pid 0"),
            ("pid:4194305", "too large"),
            ("pid:99999999999999999999", "too large"),
        ] {
            match parse(v) {
                Err(e @ SpecError::BadPid { .. }) => assert!(e.to_string().contains(why), "{v}: {e}"),
                other => panic!("{v}: {other:?}"),
            }
        }
        for (v, why) in [
            ("a/b", "'/'"),
            ("..", "'.' or '..'"),
            (".", "'.' or '..'"),
            ("a\tb", "control"),
            ("a\u{7f}", "control"),
        ] {
            match parse(v) {
                Err(e @ SpecError::BadName { .. }) => assert!(e.to_string().contains(why), "{v}: {e}"),
                other => panic!("{v}: {other:?}"),
            }
        }
        let long = "x".repeat(256);
        assert!(matches!(parse(&long), Err(SpecError::BadName { .. })));
        assert!(parse(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn display_round_trips() {
        for v in ["all", "self", "web,db", "pid:7,self,web"] {
            let s = parse(v).unwrap();
            assert_eq!(s.to_string(), v);
            assert_eq!(parse(&s.to_string()).unwrap(), s);
        }
    }

    fn ns(ino: u64, names: &[&str], is_self: bool) -> Netns {
        Netns {
            inode: NsInode { dev: 4, ino },
            cookie: None,
            names: names.iter().map(|s| s.to_string()).collect(),
            pids: Vec::new(),
            members: 0,
            is_self,
        }
    }

    #[test]
    fn selection_by_name_and_self() {
        let d = Discovery {
            namespaces: vec![ns(1, &[], true), ns(2, &["web"], false), ns(3, &["db", "db2"], false)],
            ..Default::default()
        };
        let p = Path::new("/proc");
        let all = NetnsSpec::All.select(&d, p);
        assert_eq!(all.chosen.len(), 3);
        assert!(all.unmatched.is_empty());

        let sel = parse("db2,self,nope,db").unwrap().select(&d, p);
        let inos: Vec<u64> = sel.chosen.iter().map(|n| n.inode.ino).collect();
        assert_eq!(inos, vec![1, 3], "sorted, db and db2 count once");
        assert_eq!(sel.unmatched.len(), 1);
        assert_eq!(sel.unmatched[0].0, NetnsSelector::Named("nope".into()));
        assert!(sel.unmatched[0].1.contains("no network namespace named \"nope\""));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(s in ".{0,80}") {
            if let Ok(spec) = parse(&s) {
                // whatever parses prints back to something that parses the same
                prop_assert_eq!(parse(&spec.to_string()).unwrap(), spec);
            }
        }

        #[test]
        fn comma_lists_of_names(names in proptest::collection::vec("[a-z0-9-]{1,12}", 1..6)) {
            let v = names.join(",");
            match parse(&v) {
                Ok(NetnsSpec::Only(items)) => prop_assert!(items.len() <= names.len()),
                Ok(NetnsSpec::All) => prop_assert_eq!(v, "all"),
                Err(e) => prop_assert!(names.iter().any(|n| n == "all"), "{}", e),
            }
        }
    }
}
