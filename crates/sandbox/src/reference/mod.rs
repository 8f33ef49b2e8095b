//! The reference cluster (DESIGN §7a): real upstream etcd, kube-apiserver and
//! kube-controller-manager, built from Go modules by `scripts/reference-cluster/build.sh`,
//! started on loopback with TLS, RBAC, ServiceAccount tokens and the default admission plugins.
//! It replaces only the API: pods, exec and the dataplane stay the node agent's
//! ([`crate::node`]).
//!
//! Everything lives in the sandbox instance's state folder (`/run/netassay/naXXXX/control-plane`:
//! certificates, kubeconfigs, etcd's data, logs, and a `pids` file). The processes run in their
//! own process group (a terminal's Ctrl-C reaches netassay only, which then cleans up through
//! the API before it stops them), die with netassay (`PR_SET_PDEATHSIG`), and are killed by a
//! later start's sweep through the `pids` file if anything survives.

pub mod pki;

use crate::addresses::NODE_ADDRESS;
use crate::addresses::SERVICE_CIDR;
use pki::{Authority, KeyedCert, PkiError};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use thiserror::Error;

/// The upstream components the reference cluster runs, in start order.
pub const COMPONENTS: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];
/// The script that builds them.
pub const BUILD_SCRIPT: &str = "scripts/reference-cluster/build.sh";
/// Where the script puts them, under the repository root.
pub const DEFAULT_BIN_DIR: &str = "target/reference-cluster/bin";
/// The environment variable that names another folder.
pub const BIN_DIR_ENV: &str = "NETASSAY_SANDBOX_BIN_DIR";
/// How long the API server may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The ServiceAccount netassay runs as (manifests/rbac.yaml).
pub const RUN_NAMESPACE: &str = "netassay";
pub const RUN_SERVICE_ACCOUNT: &str = "netassay";
/// The least-privilege RBAC netassay runs under, applied at start.
const RBAC_YAML: &str = include_str!("../../../../manifests/rbac.yaml");

#[derive(Debug, Error)]
pub enum ReferenceError {
    #[error("the reference cluster's binaries are missing from {dir} ({missing}): build them with `{BUILD_SCRIPT}` (needs Go and the Go module proxy), or point --sandbox-bin-dir or {BIN_DIR_ENV} at a folder that has them")]
    MissingBinaries { dir: String, missing: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("the reference cluster: {0}")]
    Io(#[from] std::io::Error),
    #[error("the reference cluster's {component} {detail}; the end of its log ({log}):\n{tail}")]
    Component {
        component: String,
        detail: String,
        log: String,
        tail: String,
    },
    #[error("the reference cluster: {0}")]
    Api(String),
    #[error("not possible on this machine: {0}")]
    Unsupported(String),
}

/// Where the binaries are: `--sandbox-bin-dir`, else [`BIN_DIR_ENV`], else the build script's
/// folder next to the running executable's `target/` (`cargo run`), else under the current
/// directory.
pub fn bin_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        // target/<profile>/netassay -> target/reference-cluster/bin
        let target = exe.parent()?.parent()?;
        let dir = target.join("reference-cluster").join("bin");
        dir.is_dir().then_some(dir)
    });
    beside_exe.unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR))
}

/// Fails with the script to run when a component is missing.
pub fn check_binaries(dir: &Path, extra: &[&str]) -> Result<(), ReferenceError> {
    let missing: Vec<&str> = COMPONENTS
        .iter()
        .chain(extra)
        .copied()
        .filter(|c| !dir.join(c).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ReferenceError::MissingBinaries {
            dir: dir.display().to_string(),
            missing: missing.join(", "),
        })
    }
}

/// The kubeconfig of the real kubelet's Node identity (`system:node:<node>`), in the control
/// plane's folder, beside `kubelet-serving.crt` and `.key` (its serving certificate).
pub const KUBELET_KUBECONFIG: &str = "kubelet.kubeconfig";

/// What the reference control plane is started for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReferenceOptions {
    /// kube-controller-manager gives each Node a /24 of the pod range as its `podCIDR`
    /// (kubeadm's `podSubnet`), for CNIs whose IPAM reads it.
    pub allocate_pod_cidrs: bool,
    /// kube-apiserver resolves the node's name to 127.0.0.1 (in a private `/etc/hosts`): the
    /// real kubelet's Node carries its name as its Hostname address, and its endpoint is
    /// relayed to the host's loopback.
    pub node_name_on_loopback: bool,
}

/// `s` in single quotes for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The credentials the node agent's kubelet endpoint needs: its serving certificate and the CA
/// that the API server's client certificate chains to.
#[derive(Debug, Clone)]
pub struct KubeletTls {
    pub serving: KeyedCert,
    pub client_ca_der: Vec<u8>,
}

/// A running reference control plane.
pub struct ReferenceCluster {
    dir: PathBuf,
    url: String,
    /// Where the binaries are (absolute).
    bin: PathBuf,
    supervisor: Supervisor,
    admin_kubeconfig: PathBuf,
    run_kubeconfig: PathBuf,
    kubelet_tls: KubeletTls,
    version: String,
}

/// A kubeconfig with inline credentials.
fn kubeconfig(server: &str, ca_pem: &str, user: &str, credentials: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: netassay-reference\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n{credentials}contexts:\n- name: netassay-reference\n  context:\n    cluster: netassay-reference\n    user: {user}\ncurrent-context: netassay-reference\n",
        ca = b64(ca_pem),
    )
}

fn cert_credentials(cert: &KeyedCert) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&cert.cert_pem),
        b64(&cert.key_pem)
    )
}

/// A free TCP port on 127.0.0.1 (bound, then released: the component binds it right after).
pub(crate) fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))?;
    Ok(listener.local_addr()?.port())
}

fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, contents.as_bytes())
}

/// The last lines of a component's log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ReferenceCluster {
    /// Writes the PKI and kubeconfigs into `dir`, starts etcd, kube-apiserver and
    /// kube-controller-manager from `bin`, waits until the API server is ready, and applies
    /// the run's RBAC. `node_name` is the node agent's Node (its kubelet serving certificate).
    /// See [`ReferenceOptions`] for what else it can do.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        node_name: &str,
        options: ReferenceOptions,
    ) -> Result<ReferenceCluster, ReferenceError> {
        check_binaries(bin, &[])?;
        // The components run in `dir`: a relative folder would no longer point at them.
        let bin = &std::path::absolute(bin)?;
        std::fs::create_dir_all(dir)?;
        let ca = Authority::new("netassay-reference-ca")?;
        let api_port = free_port()?;
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let url = format!("https://127.0.0.1:{api_port}");
        let kubernetes_ip = IpAddr::V4(crate::system::KUBERNETES_SERVICE_IP);
        let apiserver = ca.server(
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            &[
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(NODE_ADDRESS),
                kubernetes_ip,
            ],
        )?;
        let kubelet_client = ca.client("kube-apiserver-kubelet-client", &["system:masters"])?;
        let admin = ca.client("netassay-sandbox-admin", &["system:masters"])?;
        let kcm = ca.client("system:kube-controller-manager", &[])?;
        // The real kubelet's own identity (`--sandbox-node kubelet`): the Node authorizer and
        // NodeRestriction judge it as any kubelet.
        let node_client = ca.client(&format!("system:node:{node_name}"), &["system:nodes"])?;
        let kubelet_serving = ca.server(
            node_name,
            &["localhost", node_name],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(NODE_ADDRESS)],
        )?;
        let (sa_key, sa_pub) = pki::signing_key()?;
        let file = |name: &str| dir.join(name);
        write(&file("ca.crt"), &ca.cert_pem)?;
        write(&file("apiserver.crt"), &apiserver.cert_pem)?;
        write(&file("apiserver.key"), &apiserver.key_pem)?;
        write(&file("kubelet-client.crt"), &kubelet_client.cert_pem)?;
        write(&file("kubelet-client.key"), &kubelet_client.key_pem)?;
        write(&file("kubelet-serving.crt"), &kubelet_serving.cert_pem)?;
        write(&file("kubelet-serving.key"), &kubelet_serving.key_pem)?;
        // The kubelet runs in the node's network namespace: the API through the node's relay.
        write(
            &file(KUBELET_KUBECONFIG),
            &kubeconfig(
                &format!("https://127.0.0.1:{NODE_API_PORT}"),
                &ca.cert_pem,
                "kubelet",
                &cert_credentials(&node_client),
            ),
        )?;
        write(&file("sa.key"), &sa_key)?;
        write(&file("sa.pub"), &sa_pub)?;
        let admin_kubeconfig = file("admin.kubeconfig");
        write(
            &admin_kubeconfig,
            &kubeconfig(&url, &ca.cert_pem, "admin", &cert_credentials(&admin)),
        )?;
        write(
            &file("kube-controller-manager.kubeconfig"),
            &kubeconfig(
                &url,
                &ca.cert_pem,
                "kube-controller-manager",
                &cert_credentials(&kcm),
            ),
        )?;

        let supervisor = Supervisor::start(dir.join(crate::processes::PIDS_FILE))?;
        let mut cluster = ReferenceCluster {
            dir: dir.to_path_buf(),
            url,
            bin: bin.to_path_buf(),
            supervisor,
            admin_kubeconfig,
            run_kubeconfig: file("netassay.kubeconfig"),
            kubelet_tls: KubeletTls {
                serving: kubelet_serving,
                client_ca_der: ca.cert_der.clone(),
            },
            version: String::new(),
        };
        let started = cluster
            .start_components(bin, api_port, etcd_port, peer_port, node_name, options)
            .await;
        if let Err(e) = started {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn start_components(
        &mut self,
        bin: &Path,
        api_port: u16,
        etcd_port: u16,
        peer_port: u16,
        node_name: &str,
        options: ReferenceOptions,
    ) -> Result<(), ReferenceError> {
        let dir = self.dir.clone();
        let p = |name: &str| dir.join(name).display().to_string();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        self.spawn(
            bin,
            "etcd",
            &[
                "--name=default".into(),
                format!("--data-dir={}", p("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                // The data lives on tmpfs and dies with the instance.
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;
        let (cidr, bits) = SERVICE_CIDR;
        let apiserver_args = [
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            // The control-plane node's address: the `kubernetes` Service's endpoint.
            format!("--advertise-address={NODE_ADDRESS}"),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            format!("--service-cluster-ip-range={cidr}/{bits}"),
            format!("--kubelet-client-certificate={}", p("kubelet-client.crt")),
            format!("--kubelet-client-key={}", p("kubelet-client.key")),
            format!("--kubelet-certificate-authority={}", p("ca.crt")),
            // The node agent's kubelet endpoint listens on loopback; its Node says so with a
            // Hostname address (its InternalIP is the dataplane's node address).
            "--kubelet-preferred-address-types=Hostname,InternalIP".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ];
        if options.node_name_on_loopback {
            self.spawn_apiserver_resolving_node(bin, node_name, &apiserver_args)?;
        } else {
            self.spawn(bin, "kube-apiserver", &apiserver_args)?;
        }
        let client = self.admin_client().await?;
        self.wait_ready(&client).await?;
        let mut kcm_args = vec![
            format!("--kubeconfig={}", p("kube-controller-manager.kubeconfig")),
            format!(
                "--authentication-kubeconfig={}",
                p("kube-controller-manager.kubeconfig")
            ),
            format!(
                "--authorization-kubeconfig={}",
                p("kube-controller-manager.kubeconfig")
            ),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            "--use-service-account-credentials=true".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            // No serving port: nothing reads its metrics here.
            "--secure-port=0".into(),
            format!("--service-cluster-ip-range={cidr}/{bits}"),
            "--profiling=false".into(),
            "--v=1".into(),
        ];
        if options.allocate_pod_cidrs {
            let (pods, pod_bits) = crate::addresses::POD_CIDR;
            kcm_args.extend([
                "--allocate-node-cidrs=true".to_string(),
                format!("--cluster-cidr={pods}/{pod_bits}"),
                "--node-cidr-mask-size=24".into(),
            ]);
        }
        self.spawn(bin, "kube-controller-manager", &kcm_args)?;
        self.version = client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_default();
        self.apply_run_identity(&client).await
    }

    fn spawn(
        &mut self,
        bin: &Path,
        component: &str,
        args: &[String],
    ) -> Result<(), ReferenceError> {
        let log = self.log_path(component);
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(bin.join(component));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir);
        self.supervisor.spawn(component, command)?;
        Ok(())
    }

    /// kube-apiserver in a private mount namespace whose `/etc/hosts` names `node_name` at
    /// 127.0.0.1: the real kubelet's Node says `Hostname: <node name>`, and kube-apiserver
    /// reaches its kubelet endpoint through a relay on the host's loopback (the kubelet itself
    /// listens inside the node's network namespace). The host's `/etc/hosts` is untouched.
    fn spawn_apiserver_resolving_node(
        &mut self,
        bin: &Path,
        node_name: &str,
        args: &[String],
    ) -> Result<(), ReferenceError> {
        let hosts = self.dir.join("hosts");
        write(
            &hosts,
            &format!("127.0.0.1 localhost {node_name}\n::1 localhost\n"),
        )?;
        let program = bin.join("kube-apiserver").display().to_string();
        let mut script = format!(
            "set -e\nmount --bind {} /etc/hosts\nexec {}",
            shell_quote(&hosts.display().to_string()),
            shell_quote(&program)
        );
        for a in args {
            script.push(' ');
            script.push_str(&shell_quote(a));
        }
        let mut command = Command::new("unshare");
        command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        self.spawn_command("kube-apiserver", command)?;
        Ok(())
    }

    /// Starts `command` as node component `component` under the supervisor (its own process
    /// group, killed with netassay, recorded in the `pids` file), logging to
    /// `<component>.log`, in the control plane's folder. Its pid.
    pub fn spawn_command(
        &mut self,
        component: &str,
        mut command: Command,
    ) -> Result<u32, ReferenceError> {
        let log = self.log_path(component);
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir);
        Ok(self.supervisor.spawn(component, command)?)
    }

    fn log_path(&self, component: &str) -> PathBuf {
        self.dir.join(format!("{component}.log"))
    }

    /// An error about `component`, with the end of its log.
    pub fn component_error(&self, component: &str, detail: String) -> ReferenceError {
        let log = self.log_path(component);
        ReferenceError::Component {
            component: component.to_string(),
            detail,
            log: log.display().to_string(),
            tail: log_tail(&log, 15),
        }
    }

    /// Starts a node component inside network namespace `netns` as `script` (run by `sh` in a
    /// private mount namespace of its own, so whatever it mounts is gone with it), logging to
    /// `<component>.log`, with `env` set.
    pub fn spawn_script_in_netns(
        &mut self,
        netns: &str,
        component: &str,
        script: &str,
        env: &[(String, String)],
    ) -> Result<(), ReferenceError> {
        let mut argv: Vec<String> = vec!["netns".into(), "exec".into(), netns.into(), "env".into()];
        argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        argv.extend(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ]
            .map(String::from),
        );
        let log = self.log_path(component);
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut command = Command::new("ip");
        command
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir);
        self.supervisor.spawn(component, command)?;
        Ok(())
    }

    /// The folder the upstream binaries are in (absolute).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Starts a node component from the bin folder inside network namespace `netns`
    /// (`ip netns exec`), logging to `<component>.log`, with `env` set. With `in_cluster`, it gets
    /// in-cluster credentials from that folder (see [`in_cluster_script`]).
    pub fn spawn_in_netns(
        &mut self,
        netns: &str,
        component: &str,
        args: &[String],
        in_cluster: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<(), ReferenceError> {
        let program = self.bin.join(component);
        let mut argv: Vec<String> = vec!["netns".into(), "exec".into(), netns.into()];
        if !env.is_empty() {
            argv.push("env".into());
            argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        match in_cluster {
            None => {
                argv.push(program.display().to_string());
                argv.extend(args.iter().cloned());
            }
            Some(credentials) => {
                let script = in_cluster_script(credentials, &program, args);
                argv.extend(
                    [
                        "unshare",
                        "--mount",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        &script,
                    ]
                    .map(String::from),
                );
            }
        }
        let log = self.log_path(component);
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut command = Command::new("ip");
        command
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir);
        self.supervisor.spawn(component, command)?;
        Ok(())
    }

    /// Writes `<component>/token`, `ca.crt` and `kubeconfig` (the API through the node's
    /// relay) for a node component; returns that folder.
    pub fn write_component_credentials(
        &self,
        component: &str,
        token: &str,
    ) -> Result<PathBuf, ReferenceError> {
        let dir = self.dir.join(component);
        std::fs::create_dir_all(&dir)?;
        let ca = std::fs::read_to_string(self.dir.join("ca.crt"))?;
        write(&dir.join("token"), token)?;
        write(&dir.join("ca.crt"), &ca)?;
        let server = format!("https://127.0.0.1:{}", NODE_API_PORT);
        write(
            &dir.join("kubeconfig"),
            &kubeconfig(&server, &ca, component, &format!("    token: {token}\n")),
        )?;
        Ok(dir)
    }

    /// Stops one component on purpose (SIGTERM, then SIGKILL after 5 s); it is not reported as
    /// exited afterwards.
    pub fn stop_component(&mut self, component: &str) -> Result<(), ReferenceError> {
        match self.supervisor.stop_one(component)? {
            true => Ok(()),
            false => Err(ReferenceError::Api(format!(
                "no component {component} to stop"
            ))),
        }
    }

    /// The first component that exited, with how.
    pub fn exited(&self) -> Option<(String, String)> {
        self.supervisor.exited()
    }

    /// A client with the admin identity (system:masters): the sandbox's own bootstrap and the
    /// node agent.
    pub async fn admin_client(&self) -> Result<kube::Client, ReferenceError> {
        client_for(&self.admin_kubeconfig).await
    }

    async fn wait_ready(&self, client: &kube::Client) -> Result<(), ReferenceError> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let mut last;
        loop {
            if let Some((component, how)) = self.exited() {
                return Err(self.component_error(&component, format!("exited ({how})")));
            }
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| ReferenceError::Api(e.to_string()))?;
            match client.request_text(request).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.component_error(
                    "kube-apiserver",
                    format!("was not ready within {READY_TIMEOUT:?} (last answer: {last})"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Applies manifests/rbac.yaml and writes a kubeconfig with a token of its ServiceAccount:
    /// netassay runs with exactly the rights it documents, as on a real cluster.
    async fn apply_run_identity(&self, client: &kube::Client) -> Result<(), ReferenceError> {
        for document in yaml_documents(RBAC_YAML) {
            let value: serde_json::Value = serde_saphyr::from_str(&document)
                .map_err(|e| ReferenceError::Api(format!("manifests/rbac.yaml: {e}")))?;
            if value.is_null() {
                continue;
            }
            create_object(client, value).await?;
        }
        let token = service_account_token(client, RUN_NAMESPACE, RUN_SERVICE_ACCOUNT).await?;
        let ca = std::fs::read_to_string(self.dir.join("ca.crt"))?;
        write(
            &self.run_kubeconfig,
            &kubeconfig(&self.url, &ca, "netassay", &format!("    token: {token}\n")),
        )?;
        Ok(())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes `node.kubeconfig`: the admin identity at `relay` (the API as seen from inside the
    /// node's network namespace), for node components started by hand while debugging.
    pub fn write_node_kubeconfig(&self, relay: SocketAddr) -> Result<(), ReferenceError> {
        let admin = std::fs::read_to_string(&self.admin_kubeconfig)?;
        let inside = admin.replace(&self.url, &format!("https://{relay}"));
        write(&self.dir.join("node.kubeconfig"), &inside)?;
        Ok(())
    }

    /// The least-privilege kubeconfig netassay runs with (the ServiceAccount of rbac.yaml).
    pub fn run_kubeconfig(&self) -> &Path {
        &self.run_kubeconfig
    }

    /// The cluster-admin kubeconfig, for people poking the sandbox with kubectl.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    pub fn kubelet_tls(&self) -> &KubeletTls {
        &self.kubelet_tls
    }

    /// kube-apiserver's `gitVersion`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops every component (SIGTERM, then SIGKILL after a grace period) and removes the folder.
    pub async fn stop(self) {
        let supervisor = self.supervisor;
        let _ = tokio::task::spawn_blocking(move || supervisor.stop()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_for(path: &Path) -> Result<kube::Client, ReferenceError> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| ReferenceError::Api(format!("{}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| ReferenceError::Api(format!("{}: {e}", path.display())))?;
    kube::Client::try_from(config).map_err(|e| ReferenceError::Api(e.to_string()))
}

/// The documents of a multi-document YAML text.
fn yaml_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else if let Some(last) = documents.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    documents
        .into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Creates one object given as JSON (core or RBAC kinds), tolerating AlreadyExists.
pub async fn create_object(
    client: &kube::Client,
    value: serde_json::Value,
) -> Result<(), ReferenceError> {
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &kind);
    let plural = match kind.as_str() {
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "Service" => "services",
        "Pod" => "pods",
        "CustomResourceDefinition" => "customresourcedefinitions",
        "NetworkPolicy" => "networkpolicies",
        "Ingress" => "ingresses",
        "HTTPRoute" => "httproutes",
        "Gateway" => "gateways",
        "DaemonSet" => "daemonsets",
        other => {
            return Err(ReferenceError::Api(format!(
                "no plural known for kind {other}"
            )))
        }
    };
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|e| ReferenceError::Api(format!("{kind}: {e}")))?;
    let name = object.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => return Ok(()),
            // A namespace's default ServiceAccount comes from kube-controller-manager a moment
            // after the namespace: the ServiceAccount admission plugin refuses pods until then.
            Err(kube::Error::Api(status))
                if netassay_core::objects::is_service_account_race(
                    status.code,
                    &status.message,
                ) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(ReferenceError::Api(format!("creating {kind} {name}: {e}"))),
        }
    }
}

/// An object of the sandbox's own (add-ons, preset objects) as the JSON a real API server
/// takes: with its apiVersion and kind.
pub fn object_json(object: &crate::object::Object) -> Result<serde_json::Value, String> {
    use crate::object::Object;
    let (value, api_version, kind) = match object {
        Object::Namespace(o) => (serde_json::to_value(o), "v1", "Namespace"),
        Object::Pod(o) => (serde_json::to_value(o), "v1", "Pod"),
        Object::Service(o) => (serde_json::to_value(o), "v1", "Service"),
        Object::NetworkPolicy(o) => (
            serde_json::to_value(o),
            "networking.k8s.io/v1",
            "NetworkPolicy",
        ),
        Object::Ingress(o) => (serde_json::to_value(o), "networking.k8s.io/v1", "Ingress"),
        Object::HttpRoute(o) => (
            serde_json::to_value(o),
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
        ),
        Object::Gateway(o) => (
            serde_json::to_value(o),
            "gateway.networking.k8s.io/v1",
            "Gateway",
        ),
    };
    let mut value = value.map_err(|e| format!("{}: {e}", object.describe()))?;
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    Ok(value)
}

/// The Gateway API kinds the sandbox uses (Gateway, HTTPRoute; GatewayClass for completeness),
/// as CustomResourceDefinitions of our own with open schemas: the upstream CRDs' validation is
/// not reproduced (the emulator validates the fields netassay relies on).
pub fn gateway_api_crds() -> Vec<serde_json::Value> {
    [
        ("gatewayclasses", "GatewayClass", "Cluster"),
        ("gateways", "Gateway", "Namespaced"),
        ("httproutes", "HTTPRoute", "Namespaced"),
    ]
    .iter()
    .map(|(plural, kind, scope)| {
        serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": format!("{plural}.gateway.networking.k8s.io"),
                // *.k8s.io groups need it; the value is the one upstream's CRDs carry.
                "annotations": {
                    "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466",
                },
            },
            "spec": {
                "group": "gateway.networking.k8s.io",
                "scope": scope,
                "names": {
                    "plural": plural,
                    "singular": kind.to_lowercase(),
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                },
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                    }},
                }],
            },
        })
    })
    .collect()
}

/// Creates the Gateway API CRDs and waits until both kinds are served.
pub async fn install_gateway_api(client: &kube::Client) -> Result<(), ReferenceError> {
    for crd in gateway_api_crds() {
        create_object(client, crd).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let routes: kube::Api<crate::gateway_api::HttpRoute> = kube::Api::all(client.clone());
        let gateways: kube::Api<crate::gateway_api::Gateway> = kube::Api::all(client.clone());
        let lp = kube::api::ListParams::default().limit(1);
        if routes.list(&lp).await.is_ok() && gateways.list(&lp).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ReferenceError::Api(
                "the Gateway API CRDs were not served within 30s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A token for a ServiceAccount, valid for a day (TokenRequest, as `kubectl create token`
/// does). The ServiceAccount was just created: it is there at once.
pub async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<String, ReferenceError> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = api
        .create_token_request(name, &Default::default(), &request)
        .await
        .map_err(|e| {
            ReferenceError::Api(format!(
                "a token for ServiceAccount {namespace}/{name}: {e}"
            ))
        })?;
    answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ReferenceError::Api("the TokenRequest came back without a token".into()))
}

/// Owns the component processes on one long-lived thread: `PR_SET_PDEATHSIG` is tied to the
/// thread that forks, so spawning from a pool thread that later exits would kill them early.
struct Supervisor {
    requests: mpsc::Sender<Request>,
    thread: Option<std::thread::JoinHandle<()>>,
    exited: std::sync::Arc<std::sync::Mutex<Option<(String, String)>>>,
}

enum Request {
    Spawn(String, Box<Command>, mpsc::Sender<std::io::Result<u32>>),
    /// Stops one component on purpose: it is not reported as exited.
    StopOne(String, mpsc::Sender<bool>),
    Stop(mpsc::Sender<()>),
}

impl Supervisor {
    fn start(pids_file: PathBuf) -> std::io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel::<Request>();
        let exited = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = exited.clone();
        let thread = std::thread::Builder::new()
            .name("reference-cluster".into())
            .spawn(move || supervise(rx, pids_file, seen))?;
        Ok(Supervisor {
            requests: tx,
            thread: Some(thread),
            exited,
        })
    }

    fn spawn(&self, component: &str, command: Command) -> std::io::Result<u32> {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::Spawn(component.to_string(), Box::new(command), tx))
            .map_err(|_| std::io::Error::other("the supervisor thread is gone"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("the supervisor thread is gone"))?
    }

    fn exited(&self) -> Option<(String, String)> {
        self.exited.lock().ok().and_then(|e| e.clone())
    }

    /// Stops one component by name; false when none runs under it.
    fn stop_one(&self, component: &str) -> std::io::Result<bool> {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::StopOne(component.to_string(), tx))
            .map_err(|_| std::io::Error::other("the supervisor thread is gone"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("the supervisor thread is gone"))
    }

    fn stop(mut self) {
        let (tx, rx) = mpsc::channel();
        if self.requests.send(Request::Stop(tx)).is_ok() {
            let _ = rx.recv();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(
    requests: mpsc::Receiver<Request>,
    pids_file: PathBuf,
    exited: std::sync::Arc<std::sync::Mutex<Option<(String, String)>>>,
) {
    let mut children: Vec<(String, Child)> = Vec::new();
    let record = |children: &[(String, Child)]| {
        let text: String = children
            .iter()
            .map(|(name, c)| {
                let start = crate::processes::process_start_time(c.id()).unwrap_or_default();
                format!("{} {start} {name}\n", c.id())
            })
            .collect();
        let _ = write(&pids_file, &text);
    };
    loop {
        match requests.recv_timeout(Duration::from_millis(100)) {
            Ok(Request::Spawn(name, mut command, reply)) => {
                // SAFETY: only async-signal-safe calls between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                command.process_group(0);
                match command.spawn() {
                    Ok(child) => {
                        let pid = child.id();
                        children.push((name, child));
                        record(&children);
                        let _ = reply.send(Ok(pid));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(std::io::Error::new(
                            e.kind(),
                            format!("starting {name}: {e}"),
                        )));
                    }
                }
            }
            Ok(Request::StopOne(name, reply)) => {
                let (mut mine, others): (Vec<_>, Vec<_>) =
                    children.drain(..).partition(|(n, _)| *n == name);
                children = others;
                let found = !mine.is_empty();
                terminate(&mut mine);
                record(&children);
                let _ = reply.send(found);
            }
            Ok(Request::Stop(reply)) => {
                terminate(&mut children);
                let _ = std::fs::remove_file(&pids_file);
                let _ = reply.send(());
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                for (name, child) in children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        if let Ok(mut slot) = exited.lock() {
                            if slot.is_none() {
                                *slot = Some((name.clone(), status.to_string()));
                            }
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                terminate(&mut children);
                let _ = std::fs::remove_file(&pids_file);
                return;
            }
        }
    }
}

/// SIGTERM to every component (newest first), SIGKILL to whatever still runs after 5 s.
fn terminate(children: &mut Vec<(String, Child)>) {
    for (_, child) in children.iter().rev() {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for (_, child) in children.iter_mut().rev() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    children.clear();
}

/// Where the relay listens inside the node's namespace.
pub const NODE_API_PORT: u16 = 6443;

/// The in-cluster credentials script: the ServiceAccount files at
/// /var/run/secrets/kubernetes.io/serviceaccount on a private tmpfs over /run, then exec.
pub fn in_cluster_script(credentials: &Path, program: &Path, args: &[String]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let dir = quote(&credentials.display().to_string());
    let mut script = format!(
        "set -e\ntoken=$(cat {dir}/token)\nca=$(cat {dir}/ca.crt)\n\
         mount -t tmpfs netassay-node-run /run\n\
         mkdir -p /run/secrets/kubernetes.io/serviceaccount\n\
         cd /run/secrets/kubernetes.io/serviceaccount\n\
         printf '%s' \"$token\" > token\nprintf '%s\\n' \"$ca\" > ca.crt\nprintf kube-system > namespace\n\
         cd /\nexport KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT={}\nexec {}",
        NODE_API_PORT,
        quote(&program.display().to_string())
    );
    for a in args {
        script.push(' ');
        script.push_str(&quote(a));
    }
    script.push('\n');
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_yaml_splits_into_its_objects() {
        let docs = yaml_documents(RBAC_YAML);
        let kinds: Vec<String> = docs
            .iter()
            .map(|d| {
                let v: serde_json::Value = serde_saphyr::from_str(d).unwrap();
                v["kind"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        assert!(kinds.contains(&"ServiceAccount".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"ClusterRole".to_string()), "{kinds:?}");
        assert!(kinds.iter().all(|k| !k.is_empty()), "{kinds:?}");
    }

    #[test]
    fn missing_binaries_name_the_build_script() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd"), "").unwrap();
        let err = check_binaries(dir.path(), &["kube-proxy"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(BUILD_SCRIPT), "{text}");
        assert!(
            text.contains("kube-apiserver, kube-controller-manager, kube-proxy"),
            "{text}"
        );
        assert!(!text.contains("etcd,"), "{text}");
    }

    #[test]
    fn kubeconfig_is_read_by_kube() {
        let text = kubeconfig("https://127.0.0.1:1", "ca", "netassay", "    token: abc\n");
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            parsed.current_context.as_deref(),
            Some("netassay-reference")
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
    }

    #[test]
    fn the_in_cluster_script_quotes_everything() {
        let s = crate::reference::in_cluster_script(
            Path::new("/run/x y"),
            Path::new("/bin/knp"),
            &["--a=it's".to_string()],
        );
        assert!(s.contains("token=$(cat '/run/x y'/token)"), "{s}");
        assert!(s.contains("exec '/bin/knp' '--a=it'\\''s'"), "{s}");
        assert!(s.contains("KUBERNETES_SERVICE_PORT=6443"), "{s}");
    }
}
