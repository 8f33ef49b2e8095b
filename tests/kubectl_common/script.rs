//! The one kubectl script that runs against both control planes (the emulator and the reference
//! cluster), what each run printed ([`Transcript`]), and how two transcripts are compared: after
//! [`normalise`] (names, times, UIDs, resourceVersions, addresses, the API server's port, the
//! kubeconfig and manifest paths) and after dropping the [`KNOWN_DIFFERENCES`], each listed
//! with its reason, they must be equal.

use super::{text, Kubectl};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The namespace the script works in.
pub const NAMESPACE: &str = "demo";

/// A pod running netassay's agent (the one image the sandbox runs), listening on a named port.
pub const POD: &str =
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: demo, labels: {app: web}}\n\
spec:\n  containers:\n  - name: agent\n    image: ghcr.io/netassay/netassay:latest\n    \
command: [netassay, agent, serve, --identity, demo/web, --listen, 'tcp:80']\n    \
ports: [{containerPort: 80, name: web}]\n";

pub const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-ingress, namespace: demo}\n\
spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: web}]}]\n";

/// A port name with an endPort: the API server refuses it (422) at that field.
pub const BAD_POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: demo}\n\
spec: {podSelector: {}, ingress: [{ports: [{port: web, endPort: 81}]}]}\n";

/// What kubectl must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Success,
    Failure,
}

/// How a step's output is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Line by line, normalised.
    Text,
    /// `-o yaml`: as data, normalised value by value, keys sorted.
    Yaml,
    /// Normalised lines, sorted (events, whose list order is their generated names' order).
    SortedLines,
    /// `-v=6`: only the response lines whose status starts with this, without klog's prefix
    /// or timings.
    Responses(&'static str),
}

/// One thing the script does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Run kubectl (`{dir}` in an argument is the manifests' folder) and record what it printed.
    /// While stderr contains `retry_while` (and for at most 30 s) the step is repeated: the
    /// reference cluster refuses pods until kube-controller-manager made the namespace's
    /// default ServiceAccount, as any cluster does.
    Run {
        args: Vec<String>,
        expect: Expect,
        view: View,
        retry_while: Option<&'static str>,
    },
    /// Poll `args` (not recorded) until its stdout is `want`, for at most 60 s. The emulator
    /// serves no watch, so the script cannot use `kubectl wait`.
    Until {
        args: Vec<String>,
        want: &'static str,
    },
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn run(args: &[&str]) -> Action {
    step(args, Expect::Success, View::Text)
}

fn fails(args: &[&str]) -> Action {
    step(args, Expect::Failure, View::Text)
}

fn step(args: &[&str], expect: Expect, view: View) -> Action {
    Action::Run {
        args: strings(args),
        expect,
        view,
        retry_while: None,
    }
}

fn until(args: &[&str], want: &'static str) -> Action {
    Action::Until {
        args: strings(args),
        want,
    }
}

const SERVICE_ACCOUNT_RACE: &str = "error looking up service account";

/// The script: what people do with kubectl while writing scenarios.
pub fn script() -> Vec<Action> {
    let n = ["-n", NAMESPACE];
    let with_n = |args: &[&str]| -> Vec<String> {
        let mut v = strings(&n);
        v.extend(strings(args));
        v
    };
    let run_n = |args: &[&str]| Action::Run {
        args: with_n(args),
        expect: Expect::Success,
        view: View::Text,
        retry_while: None,
    };
    let fails_n = |args: &[&str]| Action::Run {
        args: with_n(args),
        expect: Expect::Failure,
        view: View::Text,
        retry_while: None,
    };
    let retried = |args: &[&str]| Action::Run {
        args: strings(args),
        expect: Expect::Success,
        view: View::Text,
        retry_while: Some(SERVICE_ACCOUNT_RACE),
    };
    vec![
        // Typed clients (protobuf bodies) and apply.
        run(&["create", "namespace", NAMESPACE]),
        retried(&["apply", "-f", "{dir}/pod.yaml"]),
        retried(&[
            "run",
            "bb",
            "-n",
            NAMESPACE,
            "--image=busybox",
            "--",
            "sleep",
            "3600",
        ]),
        run_n(&["create", "service", "clusterip", "web", "--tcp=80:80"]),
        run(&["apply", "-f", "{dir}/policy.yaml"]),
        until(
            &[
                "get",
                "pod",
                "web",
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            "True",
        ),
        until(
            &[
                "get",
                "pod",
                "bb",
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
            ],
            "ErrImagePull",
        ),
        // Server-side Tables.
        run_n(&["get", "pods", "-o", "wide"]),
        run_n(&["get", "pods"]),
        run_n(&["get", "services", "-o", "wide"]),
        run(&["get", "services", "-A"]),
        run(&["get", "namespaces"]),
        run(&["get", "nodes", "-o", "wide"]),
        run_n(&["get", "networkpolicies"]),
        // Objects as YAML, describe, events.
        Action::Run {
            args: with_n(&["get", "pod", "web", "-o", "yaml"]),
            expect: Expect::Success,
            view: View::Yaml,
            retry_while: None,
        },
        Action::Run {
            args: with_n(&["get", "networkpolicy", "web-ingress", "-o", "yaml"]),
            expect: Expect::Success,
            view: View::Yaml,
            retry_while: None,
        },
        run_n(&["describe", "pod", "bb"]),
        Action::Run {
            args: with_n(&["get", "events"]),
            expect: Expect::Success,
            view: View::SortedLines,
            retry_while: None,
        },
        // Label, exec, logs.
        run_n(&["label", "pod", "web", "tier=db"]),
        run_n(&["get", "pod", "web", "--show-labels"]),
        run_n(&["describe", "pod", "web"]),
        run_n(&["exec", "web", "--", "netassay", "--version"]),
        fails_n(&["exec", "web", "--", "netassay", "no-such-command"]),
        run_n(&["logs", "web"]),
        run(&["logs", "-n", "kube-system", "coredns"]),
        run(&["logs", "-n", "kube-system", "coredns", "--tail=1"]),
        fails_n(&["logs", "nobody"]),
        fails_n(&["logs", "bb"]),
        // Who may do what.
        run_n(&["auth", "can-i", "create", "pods"]),
        run(&["auth", "can-i", "delete", "namespaces"]),
        run_n(&["auth", "can-i", "--list"]),
        run(&["auth", "whoami"]),
        // An invalid policy: 422 with the field path.
        fails(&["apply", "-f", "{dir}/bad.yaml"]),
        step(
            &["apply", "-f", "{dir}/bad.yaml", "-v=6"],
            Expect::Failure,
            View::Responses("422"),
        ),
        // Delete, down to the namespace.
        run_n(&["delete", "pod", "bb"]),
        run_n(&["delete", "networkpolicy", "web-ingress"]),
        run_n(&["delete", "pod", "web"]),
        run(&["delete", "namespace", NAMESPACE]),
        fails(&["get", "namespace", NAMESPACE]),
    ]
}

/// What one step printed.
#[derive(Clone, Debug)]
pub struct Record {
    /// The command as written in the script (`{dir}` unexpanded).
    pub command: String,
    pub view: View,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Everything the script printed against one backend, and what to normalise away.
pub struct Transcript {
    pub records: Vec<Record>,
    /// Literal strings that differ between runs, each with what it stands for.
    pub names: Vec<(String, &'static str)>,
}

impl Transcript {
    /// The record of the step whose command is exactly `command` (as written in the script,
    /// words joined by spaces).
    pub fn get(&self, command: &str) -> &Record {
        self.records
            .iter()
            .find(|r| r.command == command)
            .unwrap_or_else(|| panic!("the script has no step `{command}`"))
    }

    pub fn stdout(&self, command: &str) -> &str {
        &self.get(command).stdout
    }

    pub fn stderr(&self, command: &str) -> &str {
        &self.get(command).stderr
    }

    /// The whole transcript, normalised and with the known differences dropped.
    pub fn normalised(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            out.push_str(&format!("$ kubectl {}\n[exit {}]\n", r.command, r.code));
            for (stream, content) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                let content = self.view(r, content);
                let content = drop_known(&r.command, stream, &content);
                if !content.is_empty() {
                    out.push_str(&format!("--- {stream}\n{content}"));
                    if !content.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
        }
        out
    }

    fn view(&self, record: &Record, content: &str) -> String {
        if record.view == View::Yaml && !content.trim().is_empty() {
            // Names are replaced in the parsed values: `{node}` would read as a YAML mapping.
            let mut value: Value = serde_saphyr::from_str(content)
                .unwrap_or_else(|e| panic!("`{}` printed no YAML: {e}", record.command));
            self.normalise_value(&mut value);
            for (command, path, _) in KNOWN_YAML_DIFFERENCES {
                if record.command.contains(command) {
                    remove_path(&mut value, path);
                }
            }
            return serde_json::to_string_pretty(&value).expect("JSON") + "\n";
        }
        let content = self.replace_names(content);
        match record.view {
            View::Text => normalise(&content),
            View::SortedLines => {
                let normalised = normalise(&content);
                let mut lines: Vec<&str> = normalised.lines().collect();
                if lines.len() > 1 {
                    lines[1..].sort();
                }
                lines.iter().map(|l| format!("{l}\n")).collect()
            }
            View::Yaml => normalise(&content),
            View::Responses(status) => content
                .lines()
                .filter(|l| l.contains("\"Response\"") && l.contains(&format!("status=\"{status}")))
                .map(|l| {
                    // klog's prefix (level, time, pid, file:line) up to "] ", and the timing.
                    let l = l.split_once("] ").map_or(l, |(_, rest)| rest);
                    let l = l.split(" milliseconds=").next().unwrap_or(l);
                    normalise(l)
                })
                .collect(),
        }
    }

    /// Normalises parsed YAML: names and [`normalise_words`] in every string, every
    /// resourceVersion, and nulls dropped (to the API an explicit null and an absent field are
    /// the same: Go's encoder writes `lastProbeTime: null` where k8s-openapi leaves it out).
    fn normalise_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = normalise_words(&self.replace_names(s)),
            Value::Array(items) => items.iter_mut().for_each(|v| self.normalise_value(v)),
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                for (key, inner) in map.iter_mut() {
                    if key == "resourceVersion" {
                        *inner = Value::String("<resourceVersion>".into());
                    } else {
                        self.normalise_value(inner);
                    }
                }
            }
            _ => {}
        }
    }

    fn replace_names(&self, content: &str) -> String {
        let mut content = content.to_string();
        for (literal, stands_for) in &self.names {
            if !literal.is_empty() {
                content = content.replace(literal.as_str(), stands_for);
            }
        }
        content
    }
}

/// Runs the script; `dir` holds its manifests (written here) and kubectl's cache.
pub fn run_script(k: &Kubectl, dir: &Path) -> Transcript {
    for (name, yaml) in [
        ("pod.yaml", POD),
        ("policy.yaml", POLICY),
        ("bad.yaml", BAD_POLICY),
    ] {
        super::write(dir, name, yaml);
    }
    let dir_text = dir.to_string_lossy().into_owned();
    let expand = |args: &[String]| -> Vec<String> {
        args.iter()
            .map(|a| a.replace("{dir}", &dir_text))
            .collect::<Vec<_>>()
    };
    let mut records = Vec::new();
    for action in script() {
        match action {
            Action::Until { args, want } => {
                let expanded = expand(&args);
                let argv: Vec<&str> = expanded.iter().map(String::as_str).collect();
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let out = k.run(&argv);
                    if text(&out.stdout) == want {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "kubectl {argv:?} never printed {want:?}: {}{}",
                        text(&out.stdout),
                        text(&out.stderr)
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            Action::Run {
                args,
                expect,
                view,
                retry_while,
            } => {
                let expanded = expand(&args);
                let argv: Vec<&str> = expanded.iter().map(String::as_str).collect();
                let deadline = Instant::now() + Duration::from_secs(30);
                let out = loop {
                    let out = k.run(&argv);
                    let again = retry_while.is_some_and(|s| text(&out.stderr).contains(s))
                        && Instant::now() < deadline;
                    if !again {
                        break out;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                };
                let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
                assert_eq!(
                    out.status.success(),
                    expect == Expect::Success,
                    "kubectl {argv:?} should {}:\n{stdout}{stderr}",
                    if expect == Expect::Success {
                        "succeed"
                    } else {
                        "fail"
                    }
                );
                records.push(Record {
                    command: args.join(" "),
                    view,
                    code: out.status.code().unwrap_or(-1),
                    stdout,
                    stderr,
                });
            }
        }
    }
    let node = k.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let version: Value =
        serde_json::from_str(&k.ok(&["version", "-o", "json"])).expect("kubectl version JSON");
    let server_version = version["serverVersion"]["gitVersion"]
        .as_str()
        .expect("a server version")
        .to_string();
    Transcript {
        records,
        names: vec![
            (dir_text, "{dir}"),
            (k.kubeconfig.to_string_lossy().into_owned(), "{kubeconfig}"),
            (node, "{node}"),
            // The control planes' versions differ (the emulator says which API it emulates).
            (server_version, "{server-version}"),
        ],
    }
}

/// Known differences in `-o yaml` output: (a part of the step's command, a path to drop, why).
/// Paths are dot-separated keys; `*` stands for every element of a list.
pub const KNOWN_YAML_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "-o yaml",
    "metadata.managedFields",
    "kube-apiserver tracks field managers (server-side apply); the emulator approximates \
     apply with a merge patch and keeps no managedFields",
)];

/// Known differences in text output: (a part of the step's command, the stream, a part of the
/// lines to drop, why). Both transcripts lose the lines, so a difference that goes away needs no
/// change here, but each one left must still be explained.
pub const KNOWN_LINE_DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    (
        "get namespaces",
        "stdout",
        "netassay  Active",
        "the reference cluster applies manifests/rbac.yaml (namespace `netassay` with netassay's \
         ServiceAccount) so that runs use exactly that identity; the emulator has one user and no \
         RBAC, so no such namespace",
    ),
    (
        "auth whoami",
        "stdout",
        "authentication.kubernetes.io/credential-id",
        "kube-apiserver authenticates the admin by an X.509 client certificate and names that \
         credential; the emulator listens on loopback only and authenticates no one",
    ),
];

fn drop_known(command: &str, stream: &str, content: &str) -> String {
    let known: Vec<&str> = KNOWN_LINE_DIFFERENCES
        .iter()
        .filter(|(c, s, _, _)| command.contains(c) && *s == stream)
        .map(|(_, _, line, _)| *line)
        .collect();
    if known.is_empty() {
        return content.to_string();
    }
    content
        .lines()
        .filter(|l| !known.iter().any(|k| l.contains(k)))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn remove_path(value: &mut Value, path: &str) {
    fn go(value: &mut Value, parts: &[&str]) {
        let Some((first, rest)) = parts.split_first() else {
            return;
        };
        match value {
            Value::Array(items) if *first == "*" => {
                for item in items {
                    go(item, rest);
                }
            }
            Value::Object(map) => {
                if rest.is_empty() {
                    map.remove(*first);
                } else if let Some(inner) = map.get_mut(*first) {
                    go(inner, rest);
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = path.split('.').collect();
    go(value, &parts);
}

/// Normalises text: runs of two or more spaces become two (column widths follow the values),
/// trailing spaces go, and [`normalise_words`] on each line.
pub fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut collapsed = String::new();
        let mut spaces = 0;
        for c in line.chars() {
            if c == ' ' {
                spaces += 1;
                continue;
            }
            if spaces > 0 {
                collapsed.push_str(if spaces > 1 { "  " } else { " " });
                spaces = 0;
            }
            collapsed.push(c);
        }
        out.push_str(&normalise_words(&collapsed));
        out.push('\n');
    }
    out
}

/// Replaces what differs from run to run: ages (`5s`, `2m3s`) as whole words, UIDs, RFC 3339
/// and RFC 1123 times, pod and Service addresses (10.244/16, 10.96/16), and the API server's
/// loopback address and port.
pub fn normalise_words(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        // RFC 1123, as describe prints times: "Mon, 02 Jan 2006 15:04:05 +0000".
        if i + 6 <= words.len() && is_rfc1123(&words[i..i + 6]) {
            out.push("<time>".into());
            i += 6;
            continue;
        }
        let w = words[i];
        // "for 300s" (a toleration) is a setting, not an age.
        if is_age(w) && (i == 0 || words[i - 1] != "for") {
            out.push("<age>".into());
        } else {
            out.push(replace_tokens(w));
        }
        i += 1;
    }
    let line = out.join(" ");
    // The API server's URL: the emulator serves plain HTTP on loopback, kube-apiserver HTTPS.
    let line = line
        .replace("https://<apiserver>", "{api}")
        .replace("http://<apiserver>", "{api}");
    generated_suffixes(&instance_folders(&line), "kube-api-access-", 5)
}

/// `<prefix><n random characters>`, as the API server names generated objects.
fn generated_suffixes(line: &str, prefix: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at + prefix.len()]);
        rest = &rest[at + prefix.len()..];
        let suffix = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if suffix == n {
            out.push_str("{suffix}");
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

/// `/run/netassay/<instance>/...`: each sandbox's folder has its instance prefix.
fn instance_folders(line: &str) -> String {
    const RUN: &str = "/run/netassay/";
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(RUN) {
        out.push_str(&rest[..at + RUN.len()]);
        rest = &rest[at + RUN.len()..];
        let end = rest.find(['/', ' ']).unwrap_or(rest.len());
        out.push_str("{instance}");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn is_age(word: &str) -> bool {
    let w = word.trim_end_matches(',');
    if w.is_empty() || !w.as_bytes()[0].is_ascii_digit() {
        return false;
    }
    let mut digits = false;
    let mut units = 0;
    for c in w.chars() {
        if c.is_ascii_digit() {
            digits = true;
        } else if "smhdy".contains(c) && digits {
            digits = false;
            units += 1;
        } else {
            return false;
        }
    }
    !digits && (1..=2).contains(&units)
}

fn is_rfc1123(words: &[&str]) -> bool {
    let days = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    let digits = |w: &str, n: usize| w.len() == n && w.bytes().all(|b| b.is_ascii_digit());
    days.contains(&words[0])
        && digits(words[1], 2)
        && words[2].len() == 3
        && digits(words[3], 4)
        && words[4].len() == 8
        && (words[5].starts_with('+') || words[5].starts_with('-'))
}

/// Replaces UIDs, RFC 3339 times and addresses inside one word.
fn replace_tokens(word: &str) -> String {
    let b = word.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric());
        if boundary {
            if let Some(n) = uid_at(&b[i..]) {
                out.push_str("<uid>");
                i += n;
                continue;
            }
            if let Some(n) = time_at(&b[i..]) {
                out.push_str("<time>");
                i += n;
                continue;
            }
            if let Some((n, what)) = address_at(&b[i..]) {
                out.push_str(what);
                i += n;
                continue;
            }
        }
        let c = word[i..].chars().next().expect("a char");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn uid_at(b: &[u8]) -> Option<usize> {
    let groups = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, len) in groups.iter().enumerate() {
        if g > 0 {
            (b.get(i) == Some(&b'-')).then_some(())?;
            i += 1;
        }
        for _ in 0..*len {
            let c = *b.get(i)?;
            (c.is_ascii_digit() || (b'a'..=b'f').contains(&c)).then_some(())?;
            i += 1;
        }
    }
    (b.get(i).is_none_or(|c| !c.is_ascii_alphanumeric())).then_some(i)
}

/// `2006-01-02T15:04:05` with an optional fraction and a zone (`Z` or `+07:00`).
fn time_at(b: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (c, s) in b.iter().zip(shape) {
        let ok = if *s == b'd' {
            c.is_ascii_digit()
        } else {
            c == s
        };
        ok.then_some(())?;
    }
    let mut i = shape.len();
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    match b.get(i) {
        Some(b'Z') => i += 1,
        Some(b'+' | b'-') if b.len() >= i + 6 => i += 6,
        _ => {}
    }
    Some(i)
}

/// A dotted IPv4 address (and, for the loopback API server, its port): what it stands for.
fn address_at(b: &[u8]) -> Option<(usize, &'static str)> {
    let mut i = 0;
    let mut octets = Vec::new();
    for part in 0..4 {
        if part > 0 {
            (b.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start && i - start <= 3).then_some(())?;
        octets.push(
            std::str::from_utf8(&b[start..i])
                .ok()?
                .parse::<u16>()
                .ok()?,
        );
    }
    if b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
        return None;
    }
    match octets[..] {
        [10, 244, ..] => Some((i, "<pod-ip>")),
        [10, 96, 0, 1 | 10] => None,
        [10, 96, ..] => Some((i, "<cluster-ip>")),
        [127, 0, 0, 1] if b.get(i) == Some(&b':') => {
            let mut j = i + 1;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            Some((j, "<apiserver>"))
        }
        _ => None,
    }
}

/// Compares two transcripts; on a difference, a unified diff (`diff -u`) of the normalised
/// texts, both of which are kept under `out` for a closer look.
pub fn compare(
    out: &Path,
    (left_name, left): (&str, &Transcript),
    (right_name, right): (&str, &Transcript),
) -> Result<(), String> {
    let (l, r) = (left.normalised(), right.normalised());
    std::fs::create_dir_all(out).expect("the output folder");
    let lp = out.join(format!("{left_name}.txt"));
    let rp = out.join(format!("{right_name}.txt"));
    std::fs::write(&lp, &l).expect("write");
    std::fs::write(&rp, &r).expect("write");
    if l == r {
        return Ok(());
    }
    let diff = std::process::Command::new("diff")
        .arg("-u")
        .arg(&lp)
        .arg(&rp)
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_else(|e| format!("(diff did not run: {e})"));
    Err(diff)
}
