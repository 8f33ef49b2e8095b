//! From a Dockerfile's final stage to an image: the base rendered (`base`), one layer per `COPY`
//! or `ADD` with the files read from the build context or from a folder standing for a build
//! stage, and the config merged as Docker merges it.

use crate::base::{self, Base};
use crate::dockerfile::{Copy, FinalStage};
use crate::oci::{Image, Layer, RunConfig};
use crate::tar::{Entry, Kind};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AssembleError {
    #[error("base image {base:?} is not one this writer renders (it knows {known})")]
    UnknownBase { base: String, known: String },
    #[error("line {line}: COPY --from={stage} needs the stage's output: pass --stage {stage}=DIR")]
    NoStage { line: usize, stage: String },
    #[error("line {line}: a local COPY or ADD needs the build context: pass --context DIR")]
    NoContext { line: usize },
    #[error("line {line}: {path:?}: {why}")]
    Source {
        line: usize,
        path: String,
        why: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the files of the final stage come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The build context (for a COPY or ADD without `--from`).
    pub context: Option<PathBuf>,
    /// A folder per build stage, standing for that stage's root file system.
    pub stages: BTreeMap<String, PathBuf>,
    /// The CA certificates, for a base that carries them.
    pub ca_bundle: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AssembleError + '_ {
    move |source| AssembleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The image the final stage describes.
pub fn assemble(
    stage: &FinalStage,
    sources: &Sources,
    reference: &str,
    architecture: &str,
) -> Result<Image, AssembleError> {
    let Some(Base {
        mut config,
        layer: base_layer,
    }) = base::render(&stage.base, &sources.ca_bundle)
    else {
        return Err(AssembleError::UnknownBase {
            base: stage.base.clone(),
            known: base::KNOWN.join(", "),
        });
    };
    merge(&mut config, stage);
    let mut layers = Vec::new();
    if let Some((created_by, entries)) = base_layer {
        layers.push(Layer {
            created_by,
            entries,
        });
    }
    let mut empty_history = Vec::new();
    let mut copies = stage.copies.iter();
    for (text, empty) in &stage.history {
        if text.starts_with("FROM ") || text.starts_with("ARG ") {
            continue;
        }
        if *empty {
            empty_history.push((layers.len(), text.clone()));
        } else if let Some(copy) = copies.next() {
            layers.push(Layer {
                created_by: copy.text.clone(),
                entries: copy_layer(copy, sources, stage.workdir.as_deref())?,
            });
        }
    }
    Ok(Image {
        reference: reference.to_string(),
        architecture: architecture.to_string(),
        config,
        layers,
        empty_history,
    })
}

/// The stage's settings over the base's, as Docker applies them.
fn merge(config: &mut RunConfig, stage: &FinalStage) {
    for (name, value) in &stage.env {
        let setting = format!("{name}={value}");
        match config
            .env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|(n, _)| n) == Some(name.as_str()))
        {
            Some(kv) => *kv = setting,
            None => config.env.push(setting),
        }
    }
    if let Some(user) = &stage.user {
        config.user = Some(user.clone());
    }
    if let Some(dir) = &stage.workdir {
        config.working_dir = Some(dir.clone());
    }
    if stage.entrypoint.is_some() {
        // A new entrypoint drops the base's command; the stage's own CMD (if any) stays.
        config.entrypoint = stage.entrypoint.clone();
        config.cmd = stage.cmd.clone();
    } else if stage.cmd.is_some() {
        config.cmd = stage.cmd.clone();
    }
    config
        .labels
        .extend(stage.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// A relative path inside an image or a root, refusing `..` and other escapes.
fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The entries of one COPY or ADD: its files with the parents of its destination.
fn copy_layer(
    copy: &Copy,
    sources: &Sources,
    workdir: Option<&str>,
) -> Result<Vec<Entry>, AssembleError> {
    let line = copy.line;
    let root = match &copy.from {
        Some(stage) => sources
            .stages
            .get(stage)
            .ok_or_else(|| AssembleError::NoStage {
                line,
                stage: stage.clone(),
            })?,
        None => sources
            .context
            .as_ref()
            .ok_or(AssembleError::NoContext { line })?,
    };
    let bad = |path: &str, why: &str| AssembleError::Source {
        line,
        path: path.to_string(),
        why: why.to_string(),
    };
    let dest_abs = if copy.dest.starts_with('/') {
        copy.dest.clone()
    } else {
        format!("{}/{}", workdir.unwrap_or("/"), copy.dest)
    };
    let dest = clean(&dest_abs).ok_or_else(|| bad(&copy.dest, "leaves the image's root"))?;
    let into_dir = copy.dest.ends_with('/') || copy.sources.len() > 1;
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    for source in &copy.sources {
        if source.contains(['*', '?', '[']) {
            return Err(bad(source, "wildcards are not supported"));
        }
        let rel = clean(source).ok_or_else(|| bad(source, "leaves its root"))?;
        let path = root.join(&rel);
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            // A folder's contents go into the destination folder.
            add_tree(&path, &dest, copy, &mut out)?;
        } else {
            let name = Path::new(&rel)
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| bad(source, "names no file"))?;
            let target = if into_dir {
                join(&dest, name)
            } else {
                dest.clone()
            };
            if target.is_empty() {
                return Err(bad(&copy.dest, "a file cannot replace the image's root"));
            }
            let data = std::fs::read(&path).map_err(io(&path))?;
            out.insert(
                target.clone(),
                entry(&target, &meta, Kind::File(data), copy),
            );
        }
    }
    // Every parent of what was added, root-owned 0755 as a builder creates them.
    let paths: Vec<String> = out.keys().cloned().collect();
    for path in paths {
        let mut parent = path.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            out.entry(p.to_string())
                .or_insert_with(|| Entry::dir(p, 0o755, 0, 0));
            parent = p;
        }
    }
    Ok(out.into_values().collect())
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn entry(path: &str, meta: &std::fs::Metadata, kind: Kind, copy: &Copy) -> Entry {
    let (uid, gid) = copy.chown.unwrap_or((0, 0));
    let mode = copy.chmod.unwrap_or(meta.permissions().mode() & 0o7777);
    Entry {
        path: path.to_string(),
        mode,
        uid,
        gid,
        kind,
    }
}

fn add_tree(
    dir: &Path,
    dest: &str,
    copy: &Copy,
    out: &mut BTreeMap<String, Entry>,
) -> Result<(), AssembleError> {
    if !dest.is_empty() {
        let meta = std::fs::metadata(dir).map_err(io(dir))?;
        out.insert(dest.to_string(), entry(dest, &meta, Kind::Dir, copy));
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    children.sort();
    for child in children {
        let Some(name) = child.file_name().and_then(|n| n.to_str()) else {
            return Err(AssembleError::Source {
                line: copy.line,
                path: child.display().to_string(),
                why: "is not UTF-8".into(),
            });
        };
        let target = join(dest, name);
        let meta = std::fs::symlink_metadata(&child).map_err(io(&child))?;
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&child).map_err(io(&child))?;
            let kind = Kind::Symlink(link.to_string_lossy().into_owned());
            out.insert(target.clone(), entry(&target, &meta, kind, copy));
        } else if meta.is_dir() {
            add_tree(&child, &target, copy, out)?;
        } else {
            let data = std::fs::read(&child).map_err(io(&child))?;
            out.insert(
                target.clone(),
                entry(&target, &meta, Kind::File(data), copy),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::Dockerfile;

    fn stage(text: &str) -> FinalStage {
        Dockerfile::parse(text)
            .unwrap()
            .final_stage(&BTreeMap::new())
            .unwrap()
    }

    fn write(path: &Path, data: &[u8], mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_repositorys_dockerfile_assembles_from_a_stage_folder() {
        let out = tempfile::tempdir().unwrap();
        write(&out.path().join("out/netassay"), b"\x7fELF", 0o755);
        let sources = Sources {
            context: None,
            stages: BTreeMap::from([("build".to_string(), out.path().to_path_buf())]),
            ca_bundle: b"PEM".to_vec(),
        };
        let stage = stage(include_str!("../../../Dockerfile"));
        let image = assemble(&stage, &sources, "netassay.local/netassay:0.1.0", "amd64").unwrap();
        assert_eq!(image.layers.len(), 2, "the base and the COPY");
        let copy: Vec<(&str, u32)> = image.layers[1]
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.mode))
            .collect();
        assert_eq!(
            copy,
            [
                ("usr", 0o755),
                ("usr/local", 0o755),
                ("usr/local/bin", 0o755),
                ("usr/local/bin/netassay", 0o755)
            ]
        );
        let c = &image.config;
        assert_eq!(c.user.as_deref(), Some("65532:65532"));
        // The Dockerfile's PATH replaced the base's in place; SSL_CERT_FILE stays.
        assert_eq!(
            c.env,
            [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
            ]
        );
        assert_eq!(c.entrypoint, Some(vec!["netassay".to_string()]));
        assert_eq!(c.cmd, Some(vec!["--help".to_string()]));
        assert_eq!(c.working_dir.as_deref(), Some("/home/nonroot"));
        assert_eq!(c.labels["org.opencontainers.image.title"], "netassay");
        let empty: Vec<&str> = image
            .empty_history
            .iter()
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(
            empty.len(),
            5,
            "ENV, USER, ENTRYPOINT, CMD, LABEL: {empty:?}"
        );
        assert!(image.empty_history.iter().all(|(after, _)| *after == 2));
    }

    #[test]
    fn copies_follow_docker_for_folders_chown_chmod_and_workdir() {
        let ctx = tempfile::tempdir().unwrap();
        write(&ctx.path().join("tree/a"), b"a", 0o600);
        write(&ctx.path().join("tree/sub/b"), b"b", 0o644);
        std::os::unix::fs::symlink("a", ctx.path().join("tree/link")).unwrap();
        write(&ctx.path().join("one"), b"1", 0o644);
        write(&ctx.path().join("two"), b"2", 0o600);
        let sources = Sources {
            context: Some(ctx.path().to_path_buf()),
            ..Sources::default()
        };
        let stage = stage(
            "FROM scratch\nWORKDIR /srv\nCOPY tree data/\nCOPY --chown=7:8 --chmod=0751 one two /bin/\n\
             COPY one rel\n",
        );
        let image = assemble(&stage, &sources, "x/y:1", "amd64").unwrap();
        let paths = |n: usize| -> Vec<(String, u32, u32)> {
            image.layers[n]
                .entries
                .iter()
                .map(|e| (e.path.clone(), e.mode, e.uid))
                .collect()
        };
        let first = paths(0);
        assert!(first.contains(&("srv/data/a".into(), 0o600, 0)));
        assert!(first.contains(&("srv/data/sub/b".into(), 0o644, 0)));
        assert!(first.iter().any(|(p, ..)| p == "srv/data/link"));
        assert!(first.iter().any(|(p, ..)| p == "srv"));
        let second: Vec<(String, u32, u32, u32)> = image.layers[1]
            .entries
            .iter()
            .map(|e| (e.path.clone(), e.mode, e.uid, e.gid))
            .collect();
        assert_eq!(
            second,
            [
                ("bin".into(), 0o755, 0, 0),
                ("bin/one".into(), 0o751, 7, 8),
                ("bin/two".into(), 0o751, 7, 8)
            ]
        );
        let missing = self::stage("FROM scratch\nCOPY nothere /x\n");
        assert!(matches!(
            assemble(&missing, &sources, "x/y:1", "amd64"),
            Err(AssembleError::Io { .. })
        ));
        assert_eq!(
            paths(2),
            [("srv".into(), 0o755, 0), ("srv/rel".into(), 0o644, 0)]
        );
    }

    #[test]
    fn what_cannot_be_assembled_is_an_error() {
        let sources = Sources::default();
        let unknown = stage("FROM debian:12\n");
        assert!(matches!(
            assemble(&unknown, &sources, "x/y:1", "amd64"),
            Err(AssembleError::UnknownBase { .. })
        ));
        let from = stage("FROM scratch\nCOPY --from=build /x /x\n");
        assert!(matches!(
            assemble(&from, &sources, "x/y:1", "amd64"),
            Err(AssembleError::NoStage { line: 2, .. })
        ));
        let local = stage("FROM scratch\nCOPY x /x\n");
        assert!(matches!(
            assemble(&local, &sources, "x/y:1", "amd64"),
            Err(AssembleError::NoContext { line: 2 })
        ));
        let ctx = Sources {
            context: Some(PathBuf::from("/nonexistent")),
            ..Sources::default()
        };
        for text in [
            "FROM scratch\nCOPY ../etc/passwd /x\n",
            "FROM scratch\nCOPY *.rs /x/\n",
        ] {
            assert!(
                matches!(
                    assemble(&stage(text), &ctx, "x/y:1", "amd64"),
                    Err(AssembleError::Source { line: 2, .. })
                ),
                "{text}"
            );
        }
    }
}
