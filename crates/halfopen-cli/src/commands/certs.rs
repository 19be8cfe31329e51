//! `halfopen certs init|issue`: halfopen's own small CA and the mutual-TLS
//! certificates of the reconciler, collectors and readers (halfopen-identity
//! does the work); says what was written and what to run next.
use crate::cli::{CertsCmd, IssueWhat};
use anyhow::{bail, Result};
use halfopen_identity::{init_ca, issue, CaOptions, Issue, IssueOptions, IssuedFiles, Role};
use halfopen_proto::transport::DEFAULT_PORT;
use std::path::Path;
use std::time::SystemTime;

fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Quotes a path for a shell command line when it needs it.
fn sh(p: &Path) -> String {
    let s = p.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn run(cmd: CertsCmd) -> Result<()> {
    match cmd {
        CertsCmd::Init {
            dir,
            name,
            validity,
            force,
        } => {
            let ca = init_ca(&dir, &CaOptions { name, validity, force })?;
            println!(
                "wrote {} (the CA certificate, valid until {}): give it to the reconciler, every collector and every reader",
                ca.cert.display(),
                when(ca.not_after)
            );
            println!(
                "wrote {} (the CA's private key, mode 0600): keep it on this machine only; whoever has it can \
                 report as any host",
                ca.key.display()
            );
            println!(
                "next: halfopen certs issue --dir {} --reconciler NAME_OR_IP[,...]   (every name collectors dial)",
                sh(&dir)
            );
            Ok(())
        }
        CertsCmd::Issue {
            dir,
            what,
            validity,
            out,
            force,
        } => {
            let what = match what {
                IssueWhat {
                    reconciler: Some(names),
                    ..
                } => Issue::Reconciler { names },
                IssueWhat { host: Some(host), .. } => Issue::Collector { host },
                IssueWhat { reader: Some(name), .. } => Issue::Reader { name },
                _ => bail!("say what to issue: --reconciler NAME_OR_IP[,...], --host NAME or --reader NAME"),
            };
            let opts = IssueOptions {
                validity,
                not_before: None,
                out_dir: out,
                force,
            };
            let f = issue(&dir, &what, &opts)?;
            print_issued(&f, &what);
            Ok(())
        }
    }
}

fn print_issued(f: &IssuedFiles, what: &Issue) {
    println!(
        "wrote {} ({} certificate, serial {}, valid until {})",
        f.cert.display(),
        f.role,
        f.serial,
        when(f.not_after)
    );
    println!("wrote {} (its private key, mode 0600)", f.key.display());
    if f.cut_to_ca {
        println!("note: its validity was cut to end with the CA's");
    }
    let flags = format!(
        "--tls-ca {} --tls-cert {} --tls-key {}",
        sh(&f.ca),
        sh(&f.cert),
        sh(&f.key)
    );
    match (&f.role, what) {
        (Role::Reconciler, Issue::Reconciler { names }) => {
            println!("next, on the reconciler: halfopen reconciler {flags}");
            let first = names.first().map(String::as_str).unwrap_or("RECONCILER");
            let host = if first.contains(':') {
                format!("[{first}]")
            } else {
                first.to_string()
            };
            println!("collectors and readers then use --reconciler https://{host}:{DEFAULT_PORT} (or any other name above)");
        }
        (Role::Collector { host }, _) => println!(
            "next, on {host} (copy the three files there): halfopen collector --reconciler https://RECONCILER:{DEFAULT_PORT} \
             --host-id {host} {flags}"
        ),
        (Role::Reader { .. }, _) => println!(
            "next: halfopen orphans --reconciler https://RECONCILER:{DEFAULT_PORT} {flags}"
        ),
        _ => {}
    }
}
