//! The deployment files under `deploy/`, checked by the tools that judge them
//! and against what was measured (deploy/README.md):
//! - every Kubernetes manifest validates offline against the API schemas
//!   (`kubernetes-validate --strict`, for Kubernetes 1.30, the first with
//!   `appArmorProfile`, and 1.37), and broken copies are rejected, so the
//!   validator is known to really check;
//! - the manifests agree with each other and with the systemd units: the
//!   kustomization lists every manifest, the DaemonSet adds exactly the
//!   capabilities the collector unit grants and drops the rest, host
//!   namespaces and mounts, the reconciler's volume and Services;
//! - the units pass `systemd-analyze verify` without a diagnostic, and
//!   `systemd-analyze security --offline` rates each OK or better, within the
//!   exposure recorded in deploy/README.md;
//! - (root) the collector unit's capability set, given to an unprivileged uid
//!   with setpriv, names the process behind another user's socket, and every
//!   smaller set does not.
//!
//! A missing tool or privilege fails the test under CI=true (or 1); elsewhere
//! it prints why and returns.
use std::collections::BTreeSet;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

/// Kubernetes versions the manifests are validated for: the oldest they
/// support (securityContext.appArmorProfile is GA since 1.30) and the newest
/// that kubernetes-validate 1.37 ships schemas for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// `systemd-analyze security --offline` exposure of each unit as measured
/// with systemd 252 (deploy/README.md); a change that raises it fails here.
const EXPOSURE_CEILINGS: [(&str, f64); 2] = [
    ("halfopen-collector.service", 2.6),
    ("halfopen-reconciler.service", 1.1),
];

/// What a unit's score must be rated at least.
const GOOD_RATINGS: [&str; 3] = ["PERFECT", "SAFE", "OK"];

const INSTALL_HINT: &str = "install: apt-get install systemd util-linux coreutils; \
                            python3 -m pip install kubernetes-validate==1.37.0";

fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Under CI a missing tool is a failure; elsewhere say why and let the test return.
fn missing(what: &str) {
    if in_ci() {
        panic!("{what} (CI=true: the deploy checks must run; {INSTALL_HINT})");
    }
    eprintln!("skipping: {what} ({INSTALL_HINT})");
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn kubernetes_dir() -> PathBuf {
    deploy_dir().join("kubernetes")
}

/// Every manifest under deploy/kubernetes (the kustomization is not one), sorted.
fn manifest_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(kubernetes_dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.file_name().unwrap() != "kustomization.yaml")
        .collect();
    out.sort();
    assert!(out.len() >= 5, "too few manifests: {out:?}");
    out
}

fn load_yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of every manifest.
fn all_documents() -> Vec<Yaml> {
    manifest_files().iter().flat_map(|p| load_yaml(p)).collect()
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}")).to_string())
        .collect()
}

/// The values of `key=` in a unit's [Service] section, every assignment's
/// space-separated words in order (comments and other sections ignored).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.starts_with('#') {
            continue;
        }
        if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            out.extend(v.split_whitespace().map(str::to_string));
        }
    }
    out
}

fn read_unit(name: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(name)).unwrap()
}

/// Runs `cmd` to completion with stdout and stderr captured; kills it after `timeout`.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A directory removed on drop, readable and searchable by every uid.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("halfopen-deploy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }

    /// A copy of the halfopen binary in it that every uid can run.
    fn binary(&self) -> PathBuf {
        let bin = self.0.join("halfopen");
        std::fs::copy(env!("CARGO_BIN_EXE_halfopen"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- Kubernetes

/// The command that runs kubernetes-validate, if installed.
fn kubernetes_validate() -> Option<Vec<&'static str>> {
    if works("kubernetes-validate", &["--version"]) {
        Some(vec!["kubernetes-validate"])
    } else if works("python3", &["-m", "kubernetes_validate", "--version"]) {
        Some(vec!["python3", "-m", "kubernetes_validate"])
    } else {
        None
    }
}

fn validate(tool: &[&str], version: &str, files: &[PathBuf]) -> Output {
    run_bounded(
        Command::new(tool[0])
            .args(&tool[1..])
            .args(["--strict", "--kubernetes-version", version])
            .args(files),
        Duration::from_secs(120),
    )
}

#[test]
fn kubernetes_manifests_validate_offline_against_the_api_schemas() {
    let Some(tool) = kubernetes_validate() else {
        return missing("kubernetes-validate is not installed");
    };
    let files = manifest_files();
    let documents = all_documents().len();
    for version in KUBERNETES_VERSIONS {
        let out = validate(&tool, version, &files);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "Kubernetes {version}:\n{text}");
        let passed = text.lines().filter(|l| l.contains(" passed for resource ")).count();
        assert_eq!(passed, documents, "every resource passes for {version}:\n{text}");
        assert!(!text.contains("WARN"), "{version}:\n{text}");
    }

    // The validator must reject what is wrong: a type error, and (strict) a
    // misspelt field that a lenient check would ignore.
    let dir = TempDir::new("k8s");
    let good = std::fs::read_to_string(kubernetes_dir().join("collector-daemonset.yaml")).unwrap();
    for (what, from, to) in [
        ("a type error", "hostPID: true", "hostPID: \"yes\""),
        ("a misspelt field", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
    ] {
        assert!(good.contains(from), "the DaemonSet has {from}");
        let broken = dir.0.join("broken.yaml");
        std::fs::write(&broken, good.replace(from, to)).unwrap();
        let out = validate(&tool, KUBERNETES_VERSIONS[1], &[broken]);
        assert!(
            !out.status.success(),
            "kubernetes-validate accepted {what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn manifests_agree_with_each_other_and_with_the_units() {
    // The kustomization lists exactly the manifests.
    let kust = load_yaml(&kubernetes_dir().join("kustomization.yaml"));
    let listed: BTreeSet<String> = strings(&kust[0]["resources"]).into_iter().collect();
    let present: BTreeSet<String> = manifest_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml resources vs deploy/kubernetes/*.yaml"
    );
    let namespace = kust[0]["namespace"]
        .as_str()
        .expect("the kustomization sets a namespace");

    let docs = all_documents();
    for d in &docs {
        let kind = d["kind"].as_str().unwrap();
        if kind == "Namespace" {
            assert_eq!(d["metadata"]["name"].as_str(), Some(namespace));
        } else {
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                Some(namespace),
                "{kind} {:?}",
                d["metadata"]["name"]
            );
        }
    }

    // The collector: host namespaces, exactly the unit's capabilities, nothing else.
    let ds = find(&docs, "DaemonSet", "halfopen-collector");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(pod["dnsPolicy"].as_str(), Some("ClusterFirstWithHostNet"));
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let k8s_caps: BTreeSet<String> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    let unit = read_unit("halfopen-collector.service");
    let ambient: BTreeSet<String> = unit_values(&unit, "AmbientCapabilities").into_iter().collect();
    let bounding: BTreeSet<String> = unit_values(&unit, "CapabilityBoundingSet").into_iter().collect();
    assert!(!ambient.is_empty());
    assert_eq!(ambient, bounding, "the collector unit's ambient and bounding sets");
    let unit_caps: BTreeSet<String> = ambient
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    assert_eq!(k8s_caps, unit_caps, "DaemonSet capabilities.add vs the collector unit");
    for what in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(c["resources"][what][res].as_str().is_some(), "collector {what}.{res}");
        }
    }
    let mounts = c["volumeMounts"].as_vec().unwrap();
    let mount = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("the collector mounts {path}"))
    };
    for m in mounts {
        assert_eq!(
            m["readOnly"].as_bool(),
            Some(true),
            "every collector mount is read-only: {m:?}"
        );
    }
    assert_eq!(
        mount("/run/netns")["mountPropagation"].as_str(),
        Some("HostToContainer")
    );
    for path in ["/host/proc", "/var/log/pods", "/var/lib/docker/containers"] {
        mount(path);
    }
    let args = strings(&c["args"]);
    assert_eq!(args[0], "collector");
    let exec = unit_values(&unit, "ExecStart");
    let interval = exec.iter().position(|w| w == "--interval").map(|i| exec[i + 1].clone());
    assert_eq!(interval.as_deref(), Some("5s"), "{exec:?}");
    assert!(args.contains(&"--interval=5s".to_string()), "{args:?}");
    // Every network namespace of the node (pods), with CAP_SYS_ADMIN above;
    // the unit relies on the default, which is the same.
    assert!(args.contains(&"--netns=all".to_string()), "{args:?}");
    assert!(unit_caps.contains("SYS_ADMIN"), "setns needs CAP_SYS_ADMIN");
    assert!(
        !exec.iter().any(|w| w.starts_with("--netns")),
        "the unit covers every namespace, the default: {exec:?}"
    );

    // The reconciler: one replica, non-root, no capability, its database on its volume.
    let sts = find(&docs, "StatefulSet", "halfopen-reconciler");
    assert_eq!(sts["spec"]["replicas"].as_i64(), Some(1));
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        sc["capabilities"]["add"].is_badvalue(),
        "the reconciler adds no capability"
    );
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    let args = strings(&c["args"]);
    let db = args.iter().find_map(|a| a.strip_prefix("--db=")).expect("--db=PATH");
    let claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .unwrap();
    let data = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some(claim))
        .expect("the claim is mounted");
    assert!(
        Path::new(db).starts_with(data["mountPath"].as_str().unwrap()),
        "the database {db} is on the volume"
    );
    let reconciler_unit = read_unit("halfopen-reconciler.service");
    assert!(unit_values(&reconciler_unit, "ExecStart").contains(&"--db".to_string()));
    assert_eq!(unit_values(&reconciler_unit, "DynamicUser"), ["yes"]);
    assert!(unit_values(&reconciler_unit, "CapabilityBoundingSet").is_empty());

    // The Services reach the reconciler's port; the collector's URL names the Service.
    let port = c["ports"][0]["containerPort"].as_i64().unwrap();
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    let svc = find(&docs, "Service", "halfopen-reconciler");
    let headless = find(&docs, "Service", sts["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    for s in [svc, headless] {
        for (k, v) in s["spec"]["selector"].as_hash().unwrap() {
            assert_eq!(
                &pod_labels[k.as_str().unwrap()],
                v,
                "the Service selects the reconciler's pods"
            );
        }
        assert_eq!(s["spec"]["ports"][0]["port"].as_i64(), Some(port));
    }
    let env = ds["spec"]["template"]["spec"]["containers"][0]["env"].as_vec().unwrap();
    let url = env
        .iter()
        .find(|e| e["name"].as_str() == Some("HALFOPEN_RECONCILER"))
        .and_then(|e| e["value"].as_str())
        .expect("HALFOPEN_RECONCILER");
    assert_eq!(url, format!("https://halfopen-reconciler.{namespace}.svc:{port}"));
}

/// `--tls-X=PATH` (or `--tls-X PATH`) in an argument list, for X in ca, cert, key.
fn tls_paths(args: &[String]) -> Vec<String> {
    ["--tls-ca", "--tls-cert", "--tls-key"]
        .iter()
        .map(|flag| {
            args.iter()
                .enumerate()
                .find_map(|(i, a)| {
                    a.strip_prefix(&format!("{flag}="))
                        .map(str::to_string)
                        .or_else(|| (a == flag).then(|| args[i + 1].clone()))
                })
                .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
        })
        .collect()
}

/// Every deployment talks mutual TLS: both units and both workloads give
/// the three TLS files, each unit's files are credentials it loads, each
/// workload's files are on a read-only mount (the collector's from the node,
/// only that node's; the reconciler's from its Secret).
#[test]
fn every_deployment_talks_mutual_tls() {
    for (unit, role_file) in [
        ("halfopen-collector.service", "collector"),
        ("halfopen-reconciler.service", "reconciler"),
    ] {
        let text = read_unit(unit);
        let exec = unit_values(&text, "ExecStart");
        assert!(!exec.contains(&"--insecure".to_string()), "{unit}");
        let creds = unit_values(&text, "LoadCredential");
        for path in tls_paths(&exec) {
            let name = path
                .strip_prefix("${CREDENTIALS_DIRECTORY}/")
                .unwrap_or_else(|| panic!("{unit}: {path} is not a credential"));
            let cred = creds
                .iter()
                .find(|c| c.starts_with(&format!("{name}:")))
                .unwrap_or_else(|| panic!("{unit}: no LoadCredential={name}:..."));
            assert!(
                cred.starts_with(&format!("{name}:/etc/halfopen/tls/")),
                "{unit}: {cred}"
            );
        }
        assert!(
            creds.iter().any(|c| c.ends_with(&format!("/{role_file}-key.pem"))),
            "{unit}: {creds:?}"
        );
    }
    let docs = all_documents();
    for (kind, name) in [
        ("DaemonSet", "halfopen-collector"),
        ("StatefulSet", "halfopen-reconciler"),
    ] {
        let w = find(&docs, kind, name);
        let pod = &w["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let args = strings(&c["args"]);
        assert!(!args.contains(&"--insecure".to_string()), "{name}");
        for path in tls_paths(&args) {
            let mount = c["volumeMounts"]
                .as_vec()
                .unwrap()
                .iter()
                .find(|m| Path::new(&path).starts_with(m["mountPath"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{name}: {path} is on no mount"));
            assert_eq!(mount["readOnly"].as_bool(), Some(true), "{name}: {mount:?}");
            let volume = pod["volumes"]
                .as_vec()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            match kind {
                "DaemonSet" => assert_eq!(volume["hostPath"]["type"].as_str(), Some("Directory"), "{volume:?}"),
                _ => assert!(volume["secret"]["secretName"].as_str().is_some(), "{volume:?}"),
            }
        }
    }
}

// ------------------------------------------------------------------- systemd

/// A copy of the unit in `dir` whose ExecStart runs the binary built here
/// (verify checks that the command exists), with `edit` applied.
fn unit_copy(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = read_unit(name).replace("/usr/local/bin/halfopen", env!("CARGO_BIN_EXE_halfopen"));
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// `systemd-analyze verify`'s diagnostics about this unit (it exits 0 on
/// unknown keys and bad values, so its stderr is what counts).
fn verify_diagnostics(path: &Path) -> Vec<String> {
    let out = run_bounded(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(path)
            .env("SYSTEMD_COLORS", "0"),
        Duration::from_secs(60),
    );
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut found: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(&name))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        found.push(format!("exit {}: {stderr}", out.status));
    }
    found
}

#[test]
fn systemd_units_verify_without_a_diagnostic() {
    if !works("systemd-analyze", &["--version"]) {
        return missing("systemd-analyze is not installed");
    }
    let dir = TempDir::new("verify");
    for (name, _) in EXPOSURE_CEILINGS {
        let path = unit_copy(&dir.0, name, |t| t);
        let diags = verify_diagnostics(&path);
        assert!(diags.is_empty(), "{name}:\n{}", diags.join("\n"));
        // ... and a misspelt setting is reported, so the check can fail.
        let typo = unit_copy(&dir.0, name, |t| {
            t.replace("ProtectSystem=strict", "ProtectSytem=strict")
        });
        let diags = verify_diagnostics(&typo);
        assert!(
            diags.iter().any(|d| d.contains("ProtectSytem")),
            "verify missed a misspelt key in {name}: {diags:?}"
        );
    }
}

/// (score, rating) from `systemd-analyze security --offline=true`.
fn exposure(path: &Path) -> (f64, String) {
    let out = run_bounded(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(path)
            .env("SYSTEMD_COLORS", "0"),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // "→ Overall exposure level for NAME: 1.9 OK 🙂"
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}"));
    let mut words = line.rsplit(": ").next().unwrap().split_whitespace();
    let score = words.next().and_then(|w| w.parse::<f64>().ok()).expect(line);
    let rating = words.next().expect(line).to_string();
    (score, rating)
}

#[test]
fn systemd_units_rate_ok_or_better_in_the_security_analysis() {
    if !works("systemd-analyze", &["security", "--help"]) {
        return missing("systemd-analyze is not installed");
    }
    for (name, ceiling) in EXPOSURE_CEILINGS {
        let (score, rating) = exposure(&deploy_dir().join(name));
        eprintln!("{name}: exposure {score} {rating}");
        assert!(
            GOOD_RATINGS.contains(&rating.as_str()),
            "{name} is rated {rating} ({score})"
        );
        assert!(
            score <= ceiling + 1e-9,
            "{name} exposure {score} is above the {ceiling} recorded in deploy/README.md"
        );
    }
    // The same units without their sandboxing must score worse: the parse and
    // the ceiling can fail.
    let dir = TempDir::new("security");
    let (name, ceiling) = EXPOSURE_CEILINGS[0];
    let bare = dir.0.join(name);
    let stripped: String = read_unit(name)
        .lines()
        .filter(|l| {
            ![
                "Protect",
                "Private",
                "Restrict",
                "SystemCall",
                "Capability",
                "NoNewPrivileges",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bare, stripped).unwrap();
    let (score, rating) = exposure(&bare);
    assert!(score > ceiling + 2.0, "unsandboxed {name} scored {score} {rating}");
}

// ------------------------------------------- the capabilities, really granted

const OTHER_UID: u32 = 65534;
/// The collector's uid in this test (no account needed).
const COLLECTOR_UID: u32 = 61234;

/// A process that owns sockets, killed on drop.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// setpriv's spelling of a capability set: "-all,+dac_read_search,...".
fn setpriv_caps(caps: &[String]) -> String {
    let mut s = String::from("-all");
    for c in caps {
        s.push_str(",+");
        s.push_str(&c.trim_start_matches("CAP_").to_lowercase());
    }
    s
}

/// What `halfopen snapshot --json`, run as COLLECTOR_UID with exactly `caps`,
/// says about the server end of `server_local` <- `client_local`:
/// None = socket not seen, Some(None) = seen without owner, Some(Some(pid)).
fn snapshot_owner(
    bin: &Path,
    cwd: &Path,
    caps: &[String],
    server_local: SocketAddr,
    client_local: SocketAddr,
) -> Option<Option<u64>> {
    let spec = setpriv_caps(caps);
    let out = run_bounded(
        Command::new("setpriv")
            .arg(format!("--reuid={COLLECTOR_UID}"))
            .arg(format!("--regid={COLLECTOR_UID}"))
            .arg("--clear-groups")
            .arg(format!("--inh-caps={spec}"))
            .arg(format!("--ambient-caps={spec}"))
            .arg(format!("--bounding-set={spec}"))
            .arg("--")
            .arg(bin)
            .args(["snapshot", "--json"])
            .current_dir(cwd),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "snapshot with {caps:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("snapshot --json is JSON");
    let row = rows.iter().find(|r| {
        r["side"] == "server"
            && r["local"].as_str() == Some(&server_local.to_string())
            && r["remote"].as_str() == Some(&client_local.to_string())
    })?;
    Some(row["pid"].as_u64())
}

#[test]
fn the_collector_units_capabilities_name_other_users_sockets_and_no_fewer_do() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return missing("not root: setpriv cannot switch to other uids");
    }
    if !works("setpriv", &["--version"]) {
        return missing("setpriv (util-linux) is not installed");
    }
    // The capabilities for naming owners (CAP_NET_ADMIN is for conntrack,
    // CAP_SYS_ADMIN for entering other network namespaces, CAP_BPF and
    // CAP_PERFMON for the eBPF source).
    let others = ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON"];
    let caps: Vec<String> = unit_values(&read_unit("halfopen-collector.service"), "AmbientCapabilities")
        .into_iter()
        .filter(|c| !others.contains(&c.as_str()))
        .collect();
    assert_eq!(caps, ["CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"]);

    // A server socket held by another user: accepted here, then handed to a
    // `sleep` running as OTHER_UID, which keeps it while this process closes its copies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_local = listener.local_addr().unwrap();
    let client = TcpStream::connect(server_local).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let client_local = client.local_addr().unwrap();
    let fds = [listener.as_raw_fd(), accepted.as_raw_fd()];
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={OTHER_UID}"),
        &format!("--regid={OTHER_UID}"),
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "sleep",
        "120",
    ])
    .stdin(Stdio::null());
    // SAFETY: only fcntl, async-signal-safe, in the child between fork and exec;
    // it clears close-on-exec on the child's copies of the two sockets.
    unsafe {
        cmd.pre_exec(move || {
            for fd in fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let holder = Holder(cmd.spawn().expect("setpriv runs"));
    let holder_pid = u64::from(holder.0.id());
    drop(accepted);
    drop(listener);
    // setpriv execs sleep in the same process: wait (bounded) until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{holder_pid}/comm"))
        .map(|c| c.trim() != "sleep")
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the holder never became `sleep`");
        std::thread::sleep(Duration::from_millis(10));
    }

    // The binary where every uid can run it.
    let dir = TempDir::new("caps");
    let bin = dir.binary();

    let owner = snapshot_owner(&bin, &dir.0, &caps, server_local, client_local);
    assert_eq!(owner, Some(Some(holder_pid)), "with {caps:?} the owner is named");
    let mut fewer: Vec<Vec<String>> = vec![Vec::new()];
    for i in 0..caps.len() {
        let mut c = caps.clone();
        c.remove(i);
        fewer.push(c);
    }
    for c in fewer {
        let owner = snapshot_owner(&bin, &dir.0, &c, server_local, client_local);
        assert_eq!(
            owner,
            Some(None),
            "with only {c:?} the socket is seen but its owner is not"
        );
    }
    drop(client);
    drop(holder);
}

/// The collector unit's capabilities (exactly its `AmbientCapabilities=`,
/// as an unprivileged uid) are enough for the eBPF source: the collector
/// asked for it (`--source bpf`) loads the programs and says so. The
/// unit's `SystemCallFilter=` (bpf, perf_event_open) is checked by
/// `systemd-analyze` above; without systemd as pid 1 here, the filter
/// itself is not run.
#[test]
fn the_collector_units_capabilities_load_the_ebpf_source() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return missing("not root: setpriv cannot switch to other uids");
    }
    if !works("setpriv", &["--version"]) {
        return missing("setpriv (util-linux) is not installed");
    }
    let caps = unit_values(&read_unit("halfopen-collector.service"), "AmbientCapabilities");
    for c in ["CAP_BPF", "CAP_PERFMON"] {
        assert!(caps.iter().any(|x| x == c), "the unit grants {c}: {caps:?}");
    }
    let dir = TempDir::new("bpfcaps");
    let bin = dir.binary();
    let log_path = dir.0.join("collector.log");
    let spec = setpriv_caps(&caps);
    let mut collector = Holder(
        Command::new("setpriv")
            .arg(format!("--reuid={COLLECTOR_UID}"))
            .arg(format!("--regid={COLLECTOR_UID}"))
            .arg("--clear-groups")
            .arg(format!("--inh-caps={spec}"))
            .arg(format!("--ambient-caps={spec}"))
            .arg(format!("--bounding-set={spec}"))
            .arg("--")
            .arg(&bin)
            .args([
                "collector",
                "--reconciler",
                "http://127.0.0.1:9",
                "--host-id",
                "bpfcaps",
            ])
            .args(["--source", "bpf", "--netns", "self"])
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("setpriv runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("source bpf: TCP transitions") {
            break log;
        }
        if let Some(status) = collector.0.try_wait().unwrap() {
            panic!("the collector exited ({status}) without loading its eBPF programs:\n{log}");
        }
        assert!(Instant::now() < deadline, "no eBPF source within 30 s:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!log.contains("lacks"), "{log}");
}

/// Stopping and file limits: both units give the graceful shutdown (at most
/// 3 s to close connections + 1 s to drain the engine + 10 s to flush the
/// database, serve.rs) room before systemd kills, and so do the Kubernetes
/// pods; the reconciler may hold a connection per collector.
#[test]
fn units_and_pods_leave_room_for_a_graceful_stop_and_enough_files() {
    for unit in ["halfopen-reconciler.service", "halfopen-collector.service"] {
        let u = read_unit(unit);
        assert_eq!(unit_values(&u, "TimeoutStopSec"), ["20s"], "{unit}");
        let nofile: u64 = unit_values(&u, "LimitNOFILE")
            .first()
            .unwrap_or_else(|| panic!("{unit} sets no LimitNOFILE"))
            .parse()
            .unwrap();
        let least = if unit.contains("reconciler") { 65_536 } else { 1_024 };
        assert!(nofile >= least, "{unit}: LimitNOFILE={nofile}");
    }
    let docs = all_documents();
    for (kind, name) in [
        ("DaemonSet", "halfopen-collector"),
        ("StatefulSet", "halfopen-reconciler"),
    ] {
        let grace = find(&docs, kind, name)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_i64();
        assert!(
            grace >= Some(15),
            "{kind} {name}: terminationGracePeriodSeconds {grace:?}"
        );
    }
}
