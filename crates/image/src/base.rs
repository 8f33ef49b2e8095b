//! The base images a final stage may start from, rendered here rather than pulled.
//!
//! - `scratch`: nothing (Kubernetes' pause image).
//! - `gcr.io/distroless/static-debian12:nonroot`: what of it matters to netassay, written by us:
//!   `/etc/passwd` and `/etc/group` with `root`, `nobody` and `nonroot` (65532), the CA
//!   certificates (the build machine's Debian bundle) at `/etc/ssl/certs/ca-certificates.crt`,
//!   `/etc/nsswitch.conf`, a writable `/tmp` (1777), `/home/nonroot` (65532, 0700) as the working
//!   directory, `/root`, and its config: user 65532, `PATH` and `SSL_CERT_FILE`. Left out:
//!   tzdata, netbase's `/etc/services` and the Debian package records, which netassay reads none
//!   of (it keeps time in UTC and names no service).

use crate::oci::RunConfig;
use crate::tar::Entry;

/// The distroless base the Dockerfile names by default.
pub const DISTROLESS_STATIC_NONROOT: &str = "gcr.io/distroless/static-debian12:nonroot";
/// Where the CA bundle lives, in the image and on a Debian build machine.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const NONROOT: u32 = 65532;

/// A base image: its config and its one layer (none for `scratch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub config: RunConfig,
    pub layer: Option<(String, Vec<Entry>)>,
}

/// The base images this writer can render.
pub const KNOWN: [&str; 2] = ["scratch", DISTROLESS_STATIC_NONROOT];

/// Whether `reference` names a base this writer renders, and whether it needs the CA bundle.
pub fn needs_ca_bundle(reference: &str) -> bool {
    reference == DISTROLESS_STATIC_NONROOT
}

/// The base `reference` names; `ca_bundle` is the CA certificates for a base that has them.
/// `None` for a base this writer does not know.
pub fn render(reference: &str, ca_bundle: &[u8]) -> Option<Base> {
    match reference {
        "scratch" => Some(Base {
            config: RunConfig::default(),
            layer: None,
        }),
        DISTROLESS_STATIC_NONROOT => Some(distroless_static_nonroot(ca_bundle)),
        _ => None,
    }
}

fn distroless_static_nonroot(ca_bundle: &[u8]) -> Base {
    let passwd = "root:x:0:0:root:/root:/sbin/nologin\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
                  nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
    let group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n";
    let nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
                    networks: files\nprotocols: files\nservices: files\n";
    let entries = vec![
        Entry::dir("etc", 0o755, 0, 0),
        Entry::file("etc/group", 0o644, group.as_bytes().to_vec()),
        Entry::file("etc/nsswitch.conf", 0o644, nsswitch.as_bytes().to_vec()),
        Entry::file("etc/passwd", 0o644, passwd.as_bytes().to_vec()),
        Entry::dir("etc/ssl", 0o755, 0, 0),
        Entry::dir("etc/ssl/certs", 0o755, 0, 0),
        Entry::file(CA_BUNDLE.trim_start_matches('/'), 0o644, ca_bundle.to_vec()),
        Entry::dir("home", 0o755, 0, 0),
        Entry::dir("home/nonroot", 0o700, NONROOT, NONROOT),
        Entry::dir("root", 0o700, 0, 0),
        Entry::dir("tmp", 0o1777, 0, 0),
    ];
    Base {
        config: RunConfig {
            user: Some(NONROOT.to_string()),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                format!("SSL_CERT_FILE={CA_BUNDLE}"),
            ],
            working_dir: Some("/home/nonroot".into()),
            ..RunConfig::default()
        },
        layer: Some((
            format!(
                "{DISTROLESS_STATIC_NONROOT}, rendered by netassay-image: passwd, group, \
                 nsswitch.conf, CA certificates, /tmp, /home/nonroot, /root"
            ),
            entries,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::Kind;

    #[test]
    fn distroless_brings_the_nonroot_user_a_writable_tmp_and_the_ca_bundle() {
        let base = render(DISTROLESS_STATIC_NONROOT, b"PEM").unwrap();
        let (_, entries) = base.layer.unwrap();
        let find = |p: &str| entries.iter().find(|e| e.path == p).unwrap();
        assert_eq!(find("tmp").mode, 0o1777);
        assert_eq!(
            find("etc/ssl/certs/ca-certificates.crt").kind,
            Kind::File(b"PEM".to_vec())
        );
        let Kind::File(passwd) = &find("etc/passwd").kind else {
            panic!("passwd is a file")
        };
        let passwd = String::from_utf8(passwd.clone()).unwrap();
        assert!(passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")));
        assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")));
        let home = find("home/nonroot");
        assert_eq!((home.uid, home.gid, home.mode), (65532, 65532, 0o700));
        assert_eq!(base.config.user.as_deref(), Some("65532"));
        assert_eq!(base.config.env_var("SSL_CERT_FILE"), Some(CA_BUNDLE));
        // Parents come before their children.
        for (i, e) in entries.iter().enumerate() {
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                assert!(entries[..i].iter().any(|p| p.path == parent), "{}", e.path);
            }
        }
    }

    #[test]
    fn scratch_is_empty_and_others_are_unknown() {
        assert_eq!(render("scratch", b"").unwrap().layer, None);
        assert!(render("debian:12", b"").is_none());
        assert!(needs_ca_bundle(DISTROLESS_STATIC_NONROOT) && !needs_ca_bundle("scratch"));
    }
}
