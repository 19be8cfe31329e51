//! TCP keepalive as the kernel applies it: a host's
//! net.ipv4.tcp_keepalive_* sysctls (parsed from the collected sysctl map)
//! and when they make the kernel reset an idle socket whose peer is gone.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// net.ipv4.tcp_keepalive_time default, seconds (kernel
/// Documentation/networking/ip-sysctl.rst: "Default: 2hours").
pub const LINUX_KEEPALIVE_TIME_S: u64 = 7200;
/// net.ipv4.tcp_keepalive_intvl default, seconds (ip-sysctl.rst: "Default value: 75sec").
pub const LINUX_KEEPALIVE_INTVL_S: u64 = 75;
/// net.ipv4.tcp_keepalive_probes default (ip-sysctl.rst: "Default value: 9").
pub const LINUX_KEEPALIVE_PROBES: u64 = 9;

const TIME_KEY: &str = "net.ipv4.tcp_keepalive_time";
const INTVL_KEY: &str = "net.ipv4.tcp_keepalive_intvl";
const PROBES_KEY: &str = "net.ipv4.tcp_keepalive_probes";

/// Seconds from the last data on a socket with keepalive armed until the
/// kernel gives up on a peer that answers no probe: `time_s` of idleness,
/// then `probes` probes `intvl_s` apart, the last one unanswered for
/// `intvl_s` (ip-sysctl.rst: tcp_keepalive_intvl "Multiplied by
/// tcp_keepalive_probes it is time to kill not responding connection, after
/// probes started"). With the Linux defaults: 7200 + 9 × 75 = 7875 s
/// (2 h 11 min). A peer host that is up but no longer has the connection
/// answers the first probe with a reset, which closes the socket after
/// `time_s` already; this is the upper bound. Saturates instead of
/// overflowing.
pub fn keepalive_reap_time(time_s: u64, intvl_s: u64, probes: u64) -> u64 {
    time_s.saturating_add(intvl_s.saturating_mul(probes))
}

/// A host's keepalive sysctls, seconds and a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveSysctls {
    pub time_s: u64,
    pub intvl_s: u64,
    pub probes: u64,
}

impl Default for KeepaliveSysctls {
    /// The Linux defaults: 7200 s, 75 s, 9 probes.
    fn default() -> Self {
        KeepaliveSysctls {
            time_s: LINUX_KEEPALIVE_TIME_S,
            intvl_s: LINUX_KEEPALIVE_INTVL_S,
            probes: LINUX_KEEPALIVE_PROBES,
        }
    }
}

/// A keepalive sysctl that was collected but cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    #[error("{present} was collected but {missing} was not")]
    Missing {
        present: &'static str,
        missing: &'static str,
    },
    #[error("{key} = {value:?} is not a non-negative integer")]
    Malformed { key: &'static str, value: String },
}

impl KeepaliveSysctls {
    /// The three keepalive sysctls from a host's collected sysctl map
    /// ("net.ipv4.tcp_keepalive_time" -> "7200"). `Ok(None)` when none of
    /// them was collected (the caller then says the Linux defaults apply
    /// unless changed); an error when only some were, or one is not a
    /// non-negative integer (values as in /proc/sys/net/ipv4/, whitespace
    /// trimmed).
    pub fn from_sysctls(map: &BTreeMap<String, String>) -> Result<Option<Self>, SysctlError> {
        let keys = [TIME_KEY, INTVL_KEY, PROBES_KEY];
        let present: Vec<&'static str> = keys.iter().copied().filter(|k| map.contains_key(*k)).collect();
        if present.is_empty() {
            return Ok(None);
        }
        if let Some(missing) = keys.iter().copied().find(|k| !map.contains_key(*k)) {
            return Err(SysctlError::Missing {
                present: present[0],
                missing,
            });
        }
        let get = |key: &'static str| -> Result<u64, SysctlError> {
            let value = map.get(key).map(String::as_str).unwrap_or_default();
            value.trim().parse::<u64>().map_err(|_| SysctlError::Malformed {
                key,
                value: value.to_string(),
            })
        };
        Ok(Some(KeepaliveSysctls {
            time_s: get(TIME_KEY)?,
            intvl_s: get(INTVL_KEY)?,
            probes: get(PROBES_KEY)?,
        }))
    }

    /// [`keepalive_reap_time`] of these values.
    pub fn reap_time_s(&self) -> u64 {
        keepalive_reap_time(self.time_s, self.intvl_s, self.probes)
    }
}
