//! The runtime side of the CNI protocol against fake plugins (shell scripts that record what
//! they were given): no root, no network namespace.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// Records every call as a line of `log` (and its stdin as `stdin.N`); answers VERSION with
/// the versions in `versions`, ADD with a result whose container IP is `10.9.0.<ip-TYPE>`, or
/// with the CNI error structure when `fail-TYPE` exists.
const FAKE_PLUGIN: &str = r#"#!/bin/sh
d=$(dirname "$0"); t=$(basename "$0")
n=$(cat "$d/.n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/.n"
cat > "$d/stdin.$n"
echo "$CNI_COMMAND $t cid=$CNI_CONTAINERID if=$CNI_IFNAME netns=$CNI_NETNS args=$CNI_ARGS path=$CNI_PATH stdin=$n" >> "$d/log"
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":['"$(cat "$d/versions")"']}' ;;
ADD)
  if [ -e "$d/fail-$t" ]; then
    echo '{"cniVersion":"1.0.0","code":11,"msg":"no addresses left","details":"range 10.9.0.0/24 is full"}'
    exit 1
  fi
  echo '{"cniVersion":"1.0.0","interfaces":[{"name":"veth-'$t'","mac":"aa:aa:aa:aa:aa:aa"},{"name":"'$CNI_IFNAME'","mac":"bb:bb:bb:bb:bb:bb","sandbox":"'$CNI_NETNS'"}],"ips":[{"address":"10.9.0.99/24","interface":0},{"address":"10.9.0.'$(cat "$d/ip-$t")'/24","interface":1}]}' ;;
esac
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Plugins `types` (IPs 1, 2, ...), each supporting `versions`, and a conflist of them at
    /// `cni_version`.
    fn new(types: &[&str], versions: &str, cni_version: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (i, t) in types.iter().enumerate() {
            let path = dir.path().join(t);
            std::fs::write(&path, FAKE_PLUGIN).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(dir.path().join(format!("ip-{t}")), (i + 1).to_string()).unwrap();
        }
        std::fs::write(dir.path().join("versions"), versions).unwrap();
        let plugins: Vec<Value> = types
            .iter()
            .map(|t| json!({"type": t, "setting": format!("of {t}")}))
            .collect();
        let conflist = json!({"cniVersion": cni_version, "name": "testnet", "plugins": plugins});
        std::fs::write(dir.path().join("net.conflist"), conflist.to_string()).unwrap();
        Fixture { dir }
    }

    fn load(&self) -> Result<Network, CniError> {
        Network::load(&self.dir.path().join("net.conflist"), self.dir.path(), None)
    }

    /// The calls so far other than VERSION, as `COMMAND TYPE`.
    fn calls(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|l| !l.starts_with("VERSION"))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// What the call of `command` to `plugin` got on stdin (the last such call).
    fn stdin_of(&self, command: &str, plugin: &str) -> Value {
        let line = self
            .lines()
            .into_iter()
            .rfind(|l| l.starts_with(&format!("{command} {plugin} ")))
            .unwrap_or_else(|| panic!("no {command} of {plugin}"));
        let n = line.rsplit("stdin=").next().unwrap();
        let text = std::fs::read_to_string(self.dir.path().join(format!("stdin.{n}"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn attachment() -> Attachment {
    Attachment {
        container_id: "c0ffee".into(),
        netns: PathBuf::from("/run/netns/na1234-p7"),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAMESPACE".into(), "x".into()),
            ("K8S_POD_NAME".into(), "a".into()),
        ],
    }
}

const UP_TO_1_0: &str = r#""0.3.1","0.4.0","1.0.0""#;
const UP_TO_1_1: &str = r#""0.4.0","1.0.0","1.1.0""#;

#[test]
fn add_runs_the_plugins_in_order_each_with_the_previous_result_and_the_attachments_environment() {
    let f = Fixture::new(&["first", "second"], UP_TO_1_0, "1.0.0");
    let network = f.load().unwrap();
    let result = network.add(&attachment()).unwrap();
    assert_eq!(f.calls(), ["ADD first", "ADD second"]);
    // The last plugin's result is the attachment's; its container IP is the one on eth0, not
    // the host-side interface's.
    assert_eq!(
        result_ipv4(&result, "eth0"),
        Some(Ipv4Addr::new(10, 9, 0, 2))
    );
    let first = f.stdin_of("ADD", "first");
    assert_eq!(first["name"], "testnet");
    assert_eq!(first["cniVersion"], "1.0.0");
    assert_eq!(first["setting"], "of first");
    assert!(first.get("prevResult").is_none());
    let second = f.stdin_of("ADD", "second");
    assert_eq!(second["prevResult"]["ips"][1]["address"], "10.9.0.1/24");
    let line = f
        .lines()
        .into_iter()
        .find(|l| l.starts_with("ADD first"))
        .unwrap();
    assert!(
        line.contains("cid=c0ffee if=eth0 netns=/run/netns/na1234-p7"),
        "{line}"
    );
    assert!(
        line.contains("args=IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a"),
        "{line}"
    );
    assert!(
        line.contains(&format!("path={}", f.dir.path().display())),
        "{line}"
    );
}

#[test]
fn a_failed_add_is_undone_in_reverse_order_and_the_plugins_error_is_reported() {
    let f = Fixture::new(&["first", "second"], UP_TO_1_0, "1.0.0");
    std::fs::write(f.dir.path().join("fail-second"), "").unwrap();
    let network = f.load().unwrap();
    let error = network.add(&attachment()).unwrap_err();
    assert_eq!(
        f.calls(),
        ["ADD first", "ADD second", "DEL second", "DEL first"]
    );
    let text = error.to_string();
    assert!(
        text.contains("CNI ADD of plugin second failed (code 11): no addresses left: range 10.9.0.0/24 is full"),
        "{text}"
    );
    // The undo hands every plugin what the plugins before the failure had done.
    assert_eq!(
        f.stdin_of("DEL", "first")["prevResult"]["ips"][1]["address"],
        "10.9.0.1/24"
    );
}

#[test]
fn del_runs_in_reverse_order_with_the_add_result_and_check_in_order() {
    let f = Fixture::new(&["first", "second"], UP_TO_1_0, "1.0.0");
    let network = f.load().unwrap();
    let result = network.add(&attachment()).unwrap();
    network.check(&attachment(), &result).unwrap();
    network.del(&attachment(), Some(&result)).unwrap();
    assert_eq!(
        f.calls(),
        [
            "ADD first",
            "ADD second",
            "CHECK first",
            "CHECK second",
            "DEL second",
            "DEL first"
        ]
    );
    for (command, plugin) in [("CHECK", "first"), ("DEL", "first"), ("DEL", "second")] {
        assert_eq!(
            f.stdin_of(command, plugin)["prevResult"]["ips"][1]["address"],
            "10.9.0.2/24",
            "{command} {plugin}"
        );
    }
}

/// CNI 1.1 §"STATUS", §"GC": a runtime calls them only for configurations of 1.1.0 or later.
#[test]
fn status_and_gc_run_only_for_a_1_1_conflist() {
    let cases = [("1.0.0", UP_TO_1_1, false), ("1.1.0", UP_TO_1_1, true)];
    for (cni_version, versions, runs) in cases {
        let f = Fixture::new(&["only"], versions, cni_version);
        let network = f.load().unwrap();
        network.status().unwrap();
        network.gc(&[attachment()]).unwrap();
        let expected: &[&str] = if runs {
            &["STATUS only", "GC only"]
        } else {
            &[]
        };
        assert_eq!(f.calls(), expected, "cniVersion {cni_version}");
        if runs {
            let gc = f.stdin_of("GC", "only");
            assert_eq!(
                gc["cni.dev/valid-attachments"],
                json!([{"containerID": "c0ffee", "ifname": "eth0"}])
            );
            let status = f
                .lines()
                .into_iter()
                .find(|l| l.starts_with("STATUS"))
                .unwrap();
            assert!(
                status.contains("cid= if= netns="),
                "STATUS has no attachment: {status}"
            );
        }
    }
}

#[test]
fn a_conflist_its_plugins_do_not_support_is_refused_naming_the_file_and_the_versions() {
    let f = Fixture::new(&["first"], UP_TO_1_0, "1.1.0");
    let text = f.load().unwrap_err().to_string();
    assert!(text.contains("net.conflist"), "{text}");
    assert!(
        text.contains("cniVersion is 1.1.0, which plugin first does not support (it supports 0.3.1, 0.4.0, 1.0.0)"),
        "{text}"
    );
}

#[test]
fn malformed_conflists_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"name": "n", "plugins": [{"type": "bridge"}]}),
            "field `cniVersion`",
        ),
        (
            json!({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}),
            "field `name`",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
            "field `plugins`",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"mtu": 1}]}),
            "field `plugins[1].type`",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}),
            "field `plugins[0].type`",
        ),
    ];
    for (conflist, field) in cases {
        let error = Network::parse("f.conflist", &conflist, dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("f.conflist: "), "{error}");
        assert!(error.contains(field), "{conflist}: {error}");
    }
}

#[test]
fn a_missing_plugin_binary_is_named() {
    let f = Fixture::new(&["first"], UP_TO_1_0, "1.0.0");
    std::fs::remove_file(f.dir.path().join("first")).unwrap();
    let text = f.load().unwrap_err().to_string();
    assert!(
        text.contains("CNI VERSION of plugin first: no such plugin binary"),
        "{text}"
    );
}

#[test]
fn result_ipv4_takes_the_containers_interface_and_accepts_ips_without_an_index() {
    let result = json!({"interfaces": [{"name": "vethx"}, {"name": "eth0", "sandbox": "/run/netns/p"}],
                        "ips": [{"address": "10.0.0.9/24", "interface": 0},
                                {"address": "fd00::5/64", "interface": 1},
                                {"address": "10.244.0.7/16", "interface": 1}]});
    assert_eq!(
        result_ipv4(&result, "eth0"),
        Some(Ipv4Addr::new(10, 244, 0, 7))
    );
    let bare = json!({"ips": [{"address": "10.244.0.8/16"}]});
    assert_eq!(
        result_ipv4(&bare, "eth0"),
        Some(Ipv4Addr::new(10, 244, 0, 8))
    );
    assert_eq!(result_ipv4(&json!({"ips": []}), "eth0"), None);
}

#[test]
fn versions_compare_by_major_and_minor() {
    for (version, at_least_1_1) in [
        ("1.1.0", true),
        ("1.2.0", true),
        ("1.0.0", false),
        ("0.4.0", false),
        ("x", false),
    ] {
        assert_eq!(version_at_least(version, (1, 1)), at_least_1_1, "{version}");
    }
}
