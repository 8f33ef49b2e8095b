//! The image built without a registry (`scripts/image/build.sh`, CI runs it before `cargo test`)
//! against the `Dockerfile`, which stays the users' build: the same user, entrypoint, command,
//! PATH, labels and files, and what the distroless base brings that netassay needs.
//!
//! Reads `target/image/netassay.oci.tar` and `target/image/pause.oci.tar` at the repository
//! root (or under `NETASSAY_IMAGE_DIR`). Without them each test says so and passes, unless `CI`
//! is set. No registry, container engine or network is needed.

use netassay_image::dockerfile::{Dockerfile, FinalStage};
use netassay_image::oci::{read_archive, Archive};
use netassay_image::tar::{Entry, Kind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn image_dir() -> PathBuf {
    std::env::var_os("NETASSAY_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/image"))
}

/// The archive `name` under the image folder, read and checked; `None` (outside CI) when the
/// script has not built it.
fn archive_or_skip(test: &str, name: &str) -> Option<Archive> {
    let path = image_dir().join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let why = format!(
                "{}: {e} (build it with scripts/image/build.sh)",
                path.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{test}: in CI: {why}");
            eprintln!("{test}: skipped: {why}");
            return None;
        }
    };
    Some(read_archive(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn dockerfile() -> FinalStage {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
    let text = std::fs::read_to_string(path).expect("the Dockerfile");
    Dockerfile::parse(&text)
        .and_then(|d| d.final_stage(&BTreeMap::new()))
        .expect("the Dockerfile's final stage")
}

fn file<'a>(fs: &'a BTreeMap<String, Entry>, path: &str) -> &'a [u8] {
    match fs.get(path).map(|e| &e.kind) {
        Some(Kind::File(data)) => data,
        other => panic!("{path}: not a file in the image: {other:?}"),
    }
}

/// Whether an ELF executable asks for a program interpreter (a dynamic loader): the images
/// have none.
fn needs_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[at..at + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    // PT_INTERP is program header type 3.
    (0..phnum).any(|i| elf[phoff + i * phentsize..][..4] == 3u32.to_le_bytes())
}

/// Every file and folder a layer entry implies (its own path and its parents).
fn with_parents(paths: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for path in paths {
        let mut p = path.as_str();
        out.insert(p.to_string());
        while let Some((parent, _)) = p.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            out.insert(parent.to_string());
            p = parent;
        }
    }
    out
}

#[test]
fn the_script_and_the_dockerfile_give_the_same_user_entrypoint_cmd_path_and_labels() {
    let Some(image) = archive_or_skip("image_config", "netassay.oci.tar") else {
        return;
    };
    let stage = dockerfile();
    let config = &image.config.config;
    assert_eq!(config.user, stage.user, "USER");
    assert_eq!(config.user.as_deref(), Some("65532:65532"));
    assert_eq!(config.entrypoint, stage.entrypoint, "ENTRYPOINT");
    assert_eq!(config.cmd, stage.cmd, "CMD");
    let path = stage
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    assert_eq!(config.env_var("PATH"), path, "ENV PATH");
    for (name, value) in &stage.env {
        assert_eq!(config.env_var(name), Some(value.as_str()), "ENV {name}");
    }
    for (name, value) in &stage.labels {
        assert_eq!(config.labels.get(name), Some(value), "LABEL {name}");
    }
    // What distroless's nonroot variant sets and the Dockerfile keeps.
    assert_eq!(config.working_dir.as_deref(), Some("/home/nonroot"));
    assert_eq!(
        config.env_var("SSL_CERT_FILE"),
        Some("/etc/ssl/certs/ca-certificates.crt")
    );
    assert_eq!(image.config.os, "linux");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        image.names(),
        [
            format!("netassay.local/netassay:{version}"),
            version.to_string()
        ]
    );
}

#[test]
fn the_script_and_the_dockerfile_give_the_same_files() {
    let Some(image) = archive_or_skip("image_files", "netassay.oci.tar") else {
        return;
    };
    let stage = dockerfile();
    let fs = image.filesystem();
    // The base's files plus each COPY destination, and nothing else.
    let copied: Vec<String> = stage.copies.iter().map(|c| c.dest.clone()).collect();
    assert_eq!(copied, ["/usr/local/bin/netassay"]);
    let base = netassay_image::base::render(&stage.base, b"")
        .and_then(|b| b.layer)
        .expect("the Dockerfile's base is one the writer renders");
    let want = with_parents(
        base.1
            .iter()
            .map(|e| format!("/{}", e.path))
            .chain(copied.iter().cloned()),
    );
    let got: BTreeSet<String> = fs.keys().cloned().collect();
    assert_eq!(got, want, "the image's files");

    // The binary: on PATH under the entrypoint's name, executable, static, this version.
    let entrypoint = &stage.entrypoint.as_ref().expect("an ENTRYPOINT")[0];
    let path = image.config.config.env_var("PATH").expect("PATH");
    let found = path
        .split(':')
        .map(|dir| format!("{dir}/{entrypoint}"))
        .find(|p| fs.contains_key(p))
        .unwrap_or_else(|| panic!("{entrypoint} is not on PATH={path}"));
    assert_eq!(found, "/usr/local/bin/netassay");
    let binary = &fs[&found];
    assert_eq!((binary.mode, binary.uid, binary.gid), (0o755, 0, 0));
    let elf = file(&fs, &found);
    assert!(
        !needs_interpreter(elf),
        "{found} needs a dynamic loader; the image has none"
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("netassay");
    std::fs::write(&exe, elf).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("netassay {}", env!("CARGO_PKG_VERSION"))
    );

    // USER 65532:65532 has its passwd and group entries, a home, and root has its own.
    let passwd = String::from_utf8(file(&fs, "/etc/passwd").to_vec()).unwrap();
    let group = String::from_utf8(file(&fs, "/etc/group").to_vec()).unwrap();
    let user = stage.user.as_deref().expect("a USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&uid))
        .unwrap_or_else(|| panic!("no passwd entry for {uid}"));
    assert_eq!(entry[0], "nonroot");
    assert_eq!(entry[3], gid);
    assert!(group
        .lines()
        .any(|l| l.split(':').nth(2) == Some(gid) && l.starts_with("nonroot:")));
    assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")));
    let home = &fs[entry[5]];
    assert_eq!(
        (home.uid.to_string(), home.kind.clone()),
        (uid.to_string(), Kind::Dir)
    );
    // A writable /tmp (the agent's ready file) and the CA certificates.
    let tmp = &fs["/tmp"];
    assert_eq!((tmp.mode, tmp.kind.clone()), (0o1777, Kind::Dir));
    let ca = file(&fs, "/etc/ssl/certs/ca-certificates.crt");
    assert!(ca.starts_with(b"-----BEGIN CERTIFICATE-----"));
}

#[test]
fn the_pause_image_is_upstreams() {
    let Some(image) = archive_or_skip("pause_image", "pause.oci.tar") else {
        return;
    };
    // build/pause/Dockerfile and Makefile of k8s.io/kubernetes v1.37.2 (scripts/image/build.sh
    // reads both from the module; these are their values).
    assert_eq!(image.names(), ["registry.k8s.io/pause:3.10.2", "3.10.2"]);
    let config = &image.config.config;
    assert_eq!(config.user.as_deref(), Some("65535:65535"));
    assert_eq!(config.entrypoint, Some(vec!["/pause".to_string()]));
    assert_eq!(config.cmd, None);
    let fs = image.filesystem();
    assert_eq!(fs.keys().collect::<Vec<_>>(), ["/pause"]);
    assert_eq!(fs["/pause"].mode, 0o755);
    assert!(!needs_interpreter(file(&fs, "/pause")));
}
