//! Secrets in command lines. A socket's owner is shown with its command
//! line, which often carries credentials (`mysql -psecret`,
//! `--password=...`, `postgres://user:pw@db/`, `API_TOKEN=...`). They are
//! replaced by `***` before the command line leaves the host, unless an
//! operator turns redaction off.
//!
//! Rules, applied to each argument (argv, as /proc/PID/cmdline gives it):
//! - a flag whose name (without leading dashes) contains a secret word
//!   (password, passwd, pwd, pass, secret, token, apikey, api-key, api_key,
//!   auth, credential, private-key, key) or is one of the extra flags:
//!   `--name=VALUE` keeps the name; `--name VALUE` hides the next argument;
//! - `NAME=VALUE` with a secret word in NAME (environment-style);
//! - `-pVALUE` for MySQL/MariaDB clients (`-p` alone prompts: nothing to hide);
//! - credentials in URLs (`scheme://user:PASSWORD@host`) and secret query
//!   parameters (`?password=...&token=...`).
use std::borrow::Cow;

const HIDDEN: &str = "***";

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "apikey",
    "api-key",
    "api_key",
    "auth",
    "credential",
    "private-key",
    "private_key",
    "key",
];

/// Programs whose `-pVALUE` is a password (mysql(1): "--password[=password], -p[password]").
const MYSQL_CLIENTS: &[&str] = &[
    "mysql",
    "mariadb",
    "mysqldump",
    "mariadb-dump",
    "mysqladmin",
    "mariadb-admin",
    "mysqlimport",
    "mariadb-import",
    "mysqlshow",
    "mariadb-show",
    "mysqlcheck",
    "mariadb-check",
    "mysqlslap",
    "mariadb-slap",
    "mysqlbinlog",
    "mariadb-binlog",
];

/// Short flags whose next argument is a password for one program
/// (redis-cli(1) `-a`, sshpass(1) `-p`, mongosh `-p`).
const PROGRAM_SECRET_FLAGS: &[(&str, &str)] = &[
    ("redis-cli", "-a"),
    ("sshpass", "-p"),
    ("mongosh", "-p"),
    ("mongo", "-p"),
];

/// How command lines are redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// Off: command lines are passed on as they are.
    pub enabled: bool,
    /// More flag names whose value is secret (without dashes: "db-pw").
    pub extra_flags: Vec<String>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            enabled: true,
            extra_flags: Vec::new(),
        }
    }
}

fn is_secret_name(name: &str, extra: &[String]) -> bool {
    let n = name.to_ascii_lowercase();
    // "keepalive", "keyspace", "monkey" hold "key" but are not secrets:
    // "key" counts only as a whole word of the name.
    let words: Vec<&str> = n.split(['-', '_', '.']).collect();
    extra.iter().any(|e| e.eq_ignore_ascii_case(&n))
        || SECRET_WORDS.iter().any(|w| match *w {
            "key" | "pass" | "auth" => words.contains(w),
            w => n.contains(w),
        })
}

/// The query parameters and URL credentials of `arg`, hidden.
fn redact_url(arg: &str) -> Cow<'_, str> {
    let Some(scheme_end) = arg.find("://") else {
        return Cow::Borrowed(arg);
    };
    let mut out = String::with_capacity(arg.len());
    let rest = &arg[scheme_end + 3..];
    out.push_str(&arg[..scheme_end + 3]);
    // user:password@ before the first '/'
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            out.push_str(&authority[..colon + 1]);
            out.push_str(HIDDEN);
            out.push_str(&authority[at..]);
        }
        _ => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..q + 1]);
            let query = &tail[q + 1..];
            let (query, frag) = match query.find('#') {
                Some(f) => (&query[..f], &query[f..]),
                None => (query, ""),
            };
            let parts: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret_name(k, &[]) => format!("{k}={HIDDEN}"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&parts.join("&"));
            out.push_str(frag);
        }
        None => out.push_str(tail),
    }
    Cow::Owned(out)
}

impl Redaction {
    /// `args` (argv) as one line, arguments separated by spaces, secrets
    /// hidden. `comm` is the process name (which programs take `-pVALUE`).
    pub fn apply(&self, comm: &str, args: &[&str]) -> String {
        if !self.enabled {
            return args.join(" ");
        }
        let program = args.first().and_then(|a| a.rsplit('/').next()).unwrap_or(comm);
        let mysql = MYSQL_CLIENTS.contains(&program) || MYSQL_CLIENTS.contains(&comm);
        let mut out: Vec<Cow<str>> = Vec::with_capacity(args.len());
        let mut hide_next = false;
        for (i, a) in args.iter().enumerate() {
            if hide_next {
                hide_next = false;
                out.push(Cow::Borrowed(HIDDEN));
                continue;
            }
            if i > 0 && a.starts_with('-') && a.len() > 1 {
                let flag = a.trim_start_matches('-');
                if let Some((name, _)) = flag.split_once('=') {
                    if is_secret_name(name, &self.extra_flags) {
                        out.push(Cow::Owned(format!(
                            "{}={HIDDEN}",
                            &a[..a.len() - flag.len() + name.len()]
                        )));
                        continue;
                    }
                } else if is_secret_name(flag, &self.extra_flags) {
                    // `--password VALUE`; a flag at the end hides nothing.
                    hide_next = args.get(i + 1).is_some_and(|n| !n.starts_with('-'));
                    out.push(Cow::Borrowed(a));
                    continue;
                }
                if PROGRAM_SECRET_FLAGS
                    .iter()
                    .any(|(p, f)| (*p == program || *p == comm) && f == a)
                {
                    hide_next = args.get(i + 1).is_some();
                    out.push(Cow::Borrowed(a));
                    continue;
                }
                if mysql && a.starts_with("-p") && !a.starts_with("--") && a.len() > 2 {
                    out.push(Cow::Borrowed("-p***"));
                    continue;
                }
            }
            if i > 0 && !a.starts_with('-') {
                if let Some((name, _)) = a.split_once('=') {
                    if !name.contains("://") && is_secret_name(name, &self.extra_flags) {
                        out.push(Cow::Owned(format!("{name}={HIDDEN}")));
                        continue;
                    }
                }
            }
            out.push(redact_url(a));
        }
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(comm: &str, line: &str) -> String {
        let args: Vec<&str> = line.split(' ').collect();
        Redaction::default().apply(comm, &args)
    }

    #[test]
    fn secrets_are_hidden_and_the_rest_kept() {
        let cases = [
            (
                "mysql",
                "mysql -h db -u app -pS3cret shop",
                "mysql -h db -u app -p*** shop",
            ),
            ("mysql", "mysql -h db -u app -p shop", "mysql -h db -u app -p shop"),
            (
                "mariadb",
                "/usr/bin/mariadb --password=S3cret",
                "/usr/bin/mariadb --password=***",
            ),
            (
                "java",
                "java -Dx=1 -jar app.jar --db-password S3cret --port 8080",
                "java -Dx=1 -jar app.jar --db-password *** --port 8080",
            ),
            ("ssh", "ssh -p 2222 host", "ssh -p 2222 host"),
            (
                "app",
                "app --api-key=abc --keepalive 60 --token xyz",
                "app --api-key=*** --keepalive 60 --token ***",
            ),
            ("app", "app --monkey 3 --keyspace k", "app --monkey 3 --keyspace k"),
            (
                "psql",
                "psql postgres://app:S3cret@db:5432/shop?sslmode=require",
                "psql postgres://app:***@db:5432/shop?sslmode=require",
            ),
            (
                "curl",
                "curl https://api/x?user=a&token=T0k&x=1",
                "curl https://api/x?user=a&token=***&x=1",
            ),
            (
                "env",
                "env DB_PASSWORD=S3cret PATH=/bin app",
                "env DB_PASSWORD=*** PATH=/bin app",
            ),
            (
                "redis-cli",
                "redis-cli -a S3cret --pass S3cret",
                "redis-cli -a *** --pass ***",
            ),
            ("sshpass", "sshpass -p S3cret ssh host", "sshpass -p *** ssh host"),
            ("app", "app --password", "app --password"),
            ("app", "", ""),
        ];
        for (comm, line, want) in cases {
            assert_eq!(r(comm, line), want, "{line}");
        }
        let extra = Redaction {
            enabled: true,
            extra_flags: vec!["db-pw".into()],
        };
        assert_eq!(extra.apply("app", &["app", "--db-pw", "S3cret"]), "app --db-pw ***");
        let off = Redaction {
            enabled: false,
            extra_flags: vec![],
        };
        assert_eq!(off.apply("mysql", &["mysql", "-pS3cret"]), "mysql -pS3cret");
    }

    proptest! {
        /// Whatever the arguments, a value given as --password=V or after
        /// --password never survives, and redaction never panics.
        #[test]
        fn a_password_never_survives(args in proptest::collection::vec("[ -~]{0,12}", 0..8), secret in "[A-Za-z0-9]{6,12}") {
            let mut a: Vec<String> = vec!["app".into()];
            a.extend(args.iter().map(|s| s.replace(' ', "_")));
            a.push(format!("--password={secret}"));
            a.push("--token".into());
            a.push(secret.clone());
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            let out = Redaction::default().apply("app", &refs);
            let tail: Vec<&str> = out.rsplitn(4, ' ').collect();
            prop_assert_eq!(tail[0], "***");
            prop_assert_eq!(tail[2], "--password=***");
        }
    }
}
