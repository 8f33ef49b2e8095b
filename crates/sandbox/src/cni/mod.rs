//! The container runtime's half of the CNI specification (1.0 and 1.1): what containerd's
//! libcni does for a kubelet. A [`Network`] is one conflist; each operation runs its plugins as
//! executables with the `CNI_*` environment and the plugin's configuration on stdin, and reads
//! a result or an error from stdout.
//!
//! - ADD runs the plugins in order, each given the previous one's result as `prevResult`; the
//!   last result is the attachment's. A failed ADD is undone with DEL, as runtimes do.
//! - CHECK (conflists of 0.4.0 and later) runs them in order with the ADD result.
//! - DEL runs them in reverse order with the ADD result; a missing attachment is not an error
//!   for a conforming plugin.
//! - STATUS and GC exist from 1.1.0 on: they run only for a conflist that declares 1.1.0 or
//!   later, which [`Network::load`] accepts only when every plugin's VERSION lists it.
//!
//! Every plugin runs inside the runtime's network namespace (the node's), under a time limit,
//! and its binary is looked up in one folder (`CNI_PATH`), which the caller owns.

pub mod networks;

use serde_json::{json, Map, Value};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use thiserror::Error;

/// How long one plugin invocation may take: the kubelet's budget for creating a pod sandbox
/// (4 minutes), which plugins plan for (Cilium queues endpoint creations for up to 60 s).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(240);

#[derive(Debug, Error)]
pub enum CniError {
    #[error("{file}: {detail}")]
    Config { file: String, detail: String },
    /// The plugin answered with the CNI error structure (or exited non-zero).
    #[error("CNI {command} of plugin {plugin} failed (code {code}): {msg}{}", details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
        details: Option<String>,
    },
    #[error("CNI {command} of plugin {plugin}: {detail}")]
    Exec {
        plugin: String,
        command: &'static str,
        detail: String,
    },
}

/// One attachment of a container to a network: what identifies it to every plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    /// The path of the container's network namespace (`/run/netns/NAME`).
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` pairs (`K8S_POD_NAMESPACE`, ...), in order.
    pub args: Vec<(String, String)>,
}

impl Attachment {
    fn cni_args(&self) -> String {
        std::iter::once("IgnoreUnknown=1".to_string())
            .chain(self.args.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// A loaded conflist and where its plugins are.
#[derive(Debug, Clone)]
pub struct Network {
    /// The conflist's file (for errors).
    file: String,
    name: String,
    cni_version: String,
    plugins: Vec<Map<String, Value>>,
    /// `CNI_PATH`: the one folder plugins are looked up in.
    bin_dir: PathBuf,
    /// The network namespace plugins run in (`ip netns exec`); `None`: the caller's.
    runtime_netns: Option<String>,
}

impl Network {
    /// Reads a conflist and checks, with each plugin's VERSION, that every plugin supports the
    /// conflist's `cniVersion`.
    pub fn load(
        conflist: &Path,
        bin_dir: &Path,
        runtime_netns: Option<String>,
    ) -> Result<Network, CniError> {
        let file = conflist.display().to_string();
        let config_error = |detail: String| CniError::Config {
            file: file.clone(),
            detail,
        };
        let text = std::fs::read_to_string(conflist).map_err(|e| config_error(e.to_string()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| config_error(format!("not JSON: {e}")))?;
        let network = Network::parse(&file, &value, bin_dir, runtime_netns)?;
        for plugin in &network.plugins {
            let kind = plugin_type(plugin);
            let supported = network.supported_versions(kind)?;
            if !supported.iter().any(|v| v == &network.cni_version) {
                return Err(config_error(format!(
                    "cniVersion is {}, which plugin {kind} does not support (it supports {})",
                    network.cni_version,
                    supported.join(", ")
                )));
            }
        }
        Ok(network)
    }

    /// The conflist's shape: `name`, `cniVersion`, and `plugins`, each with a `type`.
    fn parse(
        file: &str,
        value: &Value,
        bin_dir: &Path,
        runtime_netns: Option<String>,
    ) -> Result<Network, CniError> {
        let config_error = |detail: String| CniError::Config {
            file: file.to_string(),
            detail,
        };
        let text = |field: &str| {
            value
                .get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    config_error(format!("field `{field}`: a non-empty string is required"))
                })
        };
        let name = text("name")?;
        let cni_version = text("cniVersion")?;
        let plugins = value
            .get("plugins")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| config_error("field `plugins`: a non-empty list is required".into()))?;
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, p)| match p.as_object() {
                Some(map)
                    if map
                        .get("type")
                        .and_then(Value::as_str)
                        .is_some_and(is_plain_name) =>
                {
                    Ok(map.clone())
                }
                _ => Err(config_error(format!(
                    "field `plugins[{i}].type`: the name of a plugin binary is required"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Network {
            file: file.to_string(),
            name,
            cni_version,
            plugins,
            bin_dir: bin_dir.to_path_buf(),
            runtime_netns,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the conflist's version has STATUS and GC (1.1.0 and later).
    pub fn has_status_and_gc(&self) -> bool {
        version_at_least(&self.cni_version, (1, 1))
    }

    fn has_check(&self) -> bool {
        version_at_least(&self.cni_version, (0, 4))
    }

    /// ADD: the final result. A failure undoes what the earlier plugins did (DEL).
    pub fn add(&self, attachment: &Attachment) -> Result<Value, CniError> {
        let mut previous: Option<Value> = None;
        for plugin in &self.plugins {
            let config = self.plugin_config(plugin, previous.as_ref());
            match self.invoke("ADD", plugin_type(plugin), &config, Some(attachment)) {
                Ok(result) => previous = Some(result),
                Err(e) => {
                    let _ = self.del(attachment, previous.as_ref());
                    return Err(e);
                }
            }
        }
        previous.ok_or_else(|| CniError::Config {
            file: self.file.clone(),
            detail: "no plugin returned a result".into(),
        })
    }

    /// CHECK: every plugin confirms the attachment is as ADD left it.
    pub fn check(&self, attachment: &Attachment, result: &Value) -> Result<(), CniError> {
        if !self.has_check() {
            return Ok(());
        }
        for plugin in &self.plugins {
            let config = self.plugin_config(plugin, Some(result));
            self.invoke("CHECK", plugin_type(plugin), &config, Some(attachment))?;
        }
        Ok(())
    }

    /// DEL, in reverse order. Every plugin runs even when one fails; the first error is kept.
    pub fn del(&self, attachment: &Attachment, result: Option<&Value>) -> Result<(), CniError> {
        let mut first_error = None;
        for plugin in self.plugins.iter().rev() {
            let config = self.plugin_config(plugin, result);
            if let Err(e) = self.invoke("DEL", plugin_type(plugin), &config, Some(attachment)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// STATUS (1.1): whether every plugin is ready for ADDs. Conflists before 1.1.0 have no
    /// STATUS: they are taken as ready.
    pub fn status(&self) -> Result<(), CniError> {
        if !self.has_status_and_gc() {
            return Ok(());
        }
        for plugin in &self.plugins {
            let config = self.plugin_config(plugin, None);
            self.invoke("STATUS", plugin_type(plugin), &config, None)?;
        }
        Ok(())
    }

    /// GC (1.1): every plugin may release what belongs to attachments not in `valid`.
    pub fn gc(&self, valid: &[Attachment]) -> Result<(), CniError> {
        if !self.has_status_and_gc() {
            return Ok(());
        }
        let valid: Vec<Value> = valid
            .iter()
            .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
            .collect();
        for plugin in &self.plugins {
            let mut config = self.plugin_config(plugin, None);
            config.insert(
                "cni.dev/valid-attachments".into(),
                Value::Array(valid.clone()),
            );
            self.invoke("GC", plugin_type(plugin), &config, None)?;
        }
        Ok(())
    }

    /// VERSION of one plugin: the spec versions it supports.
    fn supported_versions(&self, plugin: &str) -> Result<Vec<String>, CniError> {
        let mut config = Map::new();
        config.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        let answer = self.invoke("VERSION", plugin, &config, None)?;
        answer
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .ok_or_else(|| CniError::Exec {
                plugin: plugin.to_string(),
                command: "VERSION",
                detail: format!("no supportedVersions in its answer: {answer}"),
            })
    }

    /// The plugin's own configuration with the network's `name` and `cniVersion`, and
    /// `prevResult` when given.
    fn plugin_config(
        &self,
        plugin: &Map<String, Value>,
        previous: Option<&Value>,
    ) -> Map<String, Value> {
        let mut config = plugin.clone();
        config.insert("name".into(), Value::String(self.name.clone()));
        config.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(previous) = previous {
            config.insert("prevResult".into(), previous.clone());
        }
        config
    }

    /// Runs one command of one plugin; for ADD and VERSION its answer (others: `null`).
    fn invoke(
        &self,
        command: &'static str,
        kind: &str,
        config: &Map<String, Value>,
        attachment: Option<&Attachment>,
    ) -> Result<Value, CniError> {
        let kind = kind.to_string();
        let exec_error = |detail: String| CniError::Exec {
            plugin: kind.clone(),
            command,
            detail,
        };
        let binary = self.bin_dir.join(&kind);
        if !binary.is_file() {
            return Err(exec_error(format!(
                "no such plugin binary {}",
                binary.display()
            )));
        }
        let mut process = match &self.runtime_netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        process
            .env("CNI_COMMAND", command)
            .env("CNI_PATH", &self.bin_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(a) = attachment {
            process
                .env("CNI_CONTAINERID", &a.container_id)
                .env("CNI_NETNS", &a.netns)
                .env("CNI_IFNAME", &a.ifname)
                .env("CNI_ARGS", a.cni_args());
        }
        let input = Value::Object(config.clone()).to_string();
        let (status, stdout, stderr) =
            crate::processes::run_with_timeout(process, &input, PLUGIN_TIMEOUT)
                .map_err(exec_error)?;
        let answer: Option<Value> = serde_json::from_str(stdout.trim()).ok();
        if !status.success() {
            let code = answer
                .as_ref()
                .and_then(|a| a.get("code"))
                .and_then(Value::as_u64);
            let msg = answer
                .as_ref()
                .and_then(|a| a.get("msg"))
                .and_then(Value::as_str);
            let details = answer
                .as_ref()
                .and_then(|a| a.get("details"))
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(str::to_string);
            return Err(match (code, msg) {
                (Some(code), Some(msg)) => CniError::Plugin {
                    plugin: kind,
                    command,
                    code,
                    msg: msg.to_string(),
                    details,
                },
                _ => exec_error(format!(
                    "exited with {status}: {}",
                    first_nonempty(&[stdout.trim(), stderr.trim()])
                )),
            });
        }
        match command {
            "ADD" | "VERSION" => answer.ok_or_else(|| {
                exec_error(format!(
                    "its output is not a JSON result: {}",
                    stdout.trim()
                ))
            }),
            _ => Ok(Value::Null),
        }
    }
}

fn first_nonempty<'a>(texts: &[&'a str]) -> &'a str {
    texts
        .iter()
        .copied()
        .find(|t| !t.is_empty())
        .unwrap_or("no output")
}

fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A plugin type is a file name in the bin folder, never a path.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

/// `major.minor.patch` at least `(major, minor)`; unparsable versions are old.
fn version_at_least(version: &str, (major, minor): (u64, u64)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// The IPv4 address a result gives the interface `ifname` in the container (the first one, as
/// the kubelet takes the first IP of the pod network for `status.podIP`).
pub fn result_ipv4(result: &Value, ifname: &str) -> Option<Ipv4Addr> {
    let interfaces = result.get("interfaces").and_then(Value::as_array);
    let names_ifname = |index: u64| {
        interfaces
            .and_then(|list| list.get(usize::try_from(index).ok()?))
            .is_some_and(|i| {
                i.get("name").and_then(Value::as_str) == Some(ifname)
                    && i.get("sandbox")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
            })
    };
    result
        .get("ips")?
        .as_array()?
        .iter()
        .filter(|ip| {
            // An IP without an interface index belongs to the container (spec: optional).
            ip.get("interface")
                .and_then(Value::as_u64)
                .is_none_or(names_ifname)
        })
        .filter_map(|ip| ip.get("address")?.as_str()?.split('/').next()?.parse().ok())
        .next()
}

#[cfg(test)]
mod tests;
