//! OCI image layout archives (image-spec v1): writing one image, and reading it back.
//!
//! The archive is a tar of the layout: `oci-layout`, `index.json` and `blobs/sha256/<hex>` for
//! the manifest, the config and each layer. Layers are plain tars
//! (`application/vnd.oci.image.layer.v1.tar`), so a layer's digest is also its diff ID. The
//! index names the image twice, as `ctr images import` (containerd's own annotation, the whole
//! reference) and OCI tools (`org.opencontainers.image.ref.name`, the tag) read it.
//!
//! Everything is deterministic: the same image gives the same bytes, and so the same digests.

use crate::tar::{self, Entry, Kind, TarError};
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// containerd's name for an image in an index (`ctr images import` tags the image with it).
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The time every image and layer entry carries: the epoch, so that builds are reproducible.
pub const CREATED: &str = "1970-01-01T00:00:00Z";

#[derive(Debug, Error)]
pub enum OciError {
    #[error(transparent)]
    Tar(#[from] TarError),
    #[error("{what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("the archive has no {0}")]
    Missing(String),
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{0:?} is not an image reference NAME:TAG")]
    Reference(String),
}

fn invalid(what: impl Into<String>, why: impl Into<String>) -> OciError {
    OciError::Invalid {
        what: what.into(),
        why: why.into(),
    }
}

/// The runtime part of an image config (`config` in the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl RunConfig {
    /// The value of the environment variable `name`.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub created: String,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// The OCI image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub config: RunConfig,
    pub rootfs: RootFs,
    pub history: Vec<History>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// One layer, as the `created_by` of its history entry and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub created_by: String,
    pub entries: Vec<Entry>,
}

/// An image to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `NAME:TAG`, e.g. `netassay.local/netassay:0.1.0`.
    pub reference: String,
    pub architecture: String,
    pub config: RunConfig,
    pub layers: Vec<Layer>,
    /// History entries that add no layer, each placed after the layer count it follows.
    pub empty_history: Vec<(usize, String)>,
}

/// The OCI architecture name of the machine this runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn sha256(bytes: &[u8]) -> String {
    let d = digest(&SHA256, bytes);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, OciError> {
    serde_json::to_vec(value).map_err(|source| OciError::Json {
        what: what.to_string(),
        source,
    })
}

/// The tag of `NAME:TAG` (the part after the last `:` that follows the last `/`).
pub fn tag_of(reference: &str) -> Result<&str, OciError> {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() && !tag.is_empty() => Ok(tag),
        _ => Err(OciError::Reference(reference.to_string())),
    }
}

/// The archive of `image` (bytes of a tar in OCI image layout).
pub fn write_archive(image: &Image) -> Result<Vec<u8>, OciError> {
    let tag = tag_of(&image.reference)?;
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_descs = Vec::new();
    let mut history = Vec::new();
    let empty = |n: usize, history: &mut Vec<History>| {
        for (_, by) in image.empty_history.iter().filter(|(after, _)| *after == n) {
            history.push(History {
                created: CREATED.into(),
                created_by: by.clone(),
                empty_layer: true,
            });
        }
    };
    empty(0, &mut history);
    for (n, layer) in image.layers.iter().enumerate() {
        let bytes = tar::write(&layer.entries, 0)?;
        let digest = sha256(&bytes);
        layer_descs.push(Descriptor {
            media_type: LAYER.into(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        });
        history.push(History {
            created: CREATED.into(),
            created_by: layer.created_by.clone(),
            empty_layer: false,
        });
        empty(n + 1, &mut history);
        blobs.push((digest, bytes));
    }
    let config = ImageConfig {
        created: CREATED.into(),
        architecture: image.architecture.clone(),
        os: "linux".into(),
        config: image.config.clone(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layer_descs.iter().map(|d| d.digest.clone()).collect(),
        },
        history,
    };
    let config_bytes = json("the image config", &config)?;
    let config_desc = Descriptor {
        media_type: CONFIG.into(),
        digest: sha256(&config_bytes),
        size: config_bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    blobs.push((config_desc.digest.clone(), config_bytes));
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST.into(),
        config: config_desc,
        layers: layer_descs,
    };
    let manifest_bytes = json("the manifest", &manifest)?;
    let index = Index {
        schema_version: 2,
        media_type: INDEX.into(),
        manifests: vec![Descriptor {
            media_type: MANIFEST.into(),
            digest: sha256(&manifest_bytes),
            size: manifest_bytes.len() as u64,
            platform: Some(Platform {
                architecture: image.architecture.clone(),
                os: "linux".into(),
            }),
            annotations: BTreeMap::from([
                (CONTAINERD_NAME.to_string(), image.reference.clone()),
                (REF_NAME.to_string(), tag.to_string()),
            ]),
        }],
    };
    blobs.push((sha256(&manifest_bytes), manifest_bytes));

    let mut entries = vec![
        Entry::file(
            "oci-layout",
            0o644,
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        Entry::file("index.json", 0o644, json("the index", &index)?),
        Entry::dir("blobs", 0o755, 0, 0),
        Entry::dir("blobs/sha256", 0o755, 0, 0),
    ];
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);
    for (digest, bytes) in blobs {
        let hex = digest.trim_start_matches("sha256:");
        entries.push(Entry::file(&format!("blobs/sha256/{hex}"), 0o644, bytes));
    }
    Ok(tar::write(&entries, 0)?)
}

/// An image read back from an archive.
#[derive(Debug, Clone)]
pub struct Archive {
    pub index: Index,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// Each layer's entries, in order.
    pub layers: Vec<Vec<Entry>>,
}

impl Archive {
    /// The names the index gives the image (containerd's, then the OCI ref name).
    pub fn names(&self) -> Vec<&str> {
        self.index
            .manifests
            .iter()
            .flat_map(|m| {
                [CONTAINERD_NAME, REF_NAME]
                    .into_iter()
                    .filter_map(|k| m.annotations.get(k).map(String::as_str))
            })
            .collect()
    }

    /// The image's file system: every path with the entry of the last layer that has it.
    pub fn filesystem(&self) -> BTreeMap<String, Entry> {
        let mut fs = BTreeMap::new();
        for entry in self.layers.iter().flatten() {
            fs.insert(format!("/{}", entry.path), entry.clone());
        }
        fs
    }
}

fn parse<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|source| OciError::Json {
        what: what.to_string(),
        source,
    })
}

/// Reads an archive that holds one image, checking every digest and size on the way.
pub fn read_archive(bytes: &[u8]) -> Result<Archive, OciError> {
    let files: BTreeMap<String, Vec<u8>> = tar::read(bytes)?
        .into_iter()
        .filter_map(|e| match e.kind {
            Kind::File(data) => Some((e.path.trim_start_matches("./").to_string(), data)),
            _ => None,
        })
        .collect();
    let get = |name: &str| {
        files
            .get(name)
            .ok_or_else(|| OciError::Missing(name.to_string()))
    };
    let layout: serde_json::Value = parse("oci-layout", get("oci-layout")?)?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        return Err(invalid(
            "oci-layout",
            format!("version {}", layout["imageLayoutVersion"]),
        ));
    }
    let blob = |desc: &Descriptor| -> Result<&Vec<u8>, OciError> {
        let hex = desc
            .digest
            .strip_prefix("sha256:")
            .ok_or_else(|| invalid(&desc.digest, "not a sha256 digest"))?;
        let data = get(&format!("blobs/sha256/{hex}"))?;
        if sha256(data) != desc.digest {
            return Err(invalid(
                &desc.digest,
                "the blob's content has another digest",
            ));
        }
        if data.len() as u64 != desc.size {
            return Err(invalid(
                &desc.digest,
                format!("{} bytes, the descriptor says {}", data.len(), desc.size),
            ));
        }
        Ok(data)
    };
    let index: Index = parse("index.json", get("index.json")?)?;
    let [manifest_desc] = index.manifests.as_slice() else {
        return Err(invalid(
            "index.json",
            format!("{} manifests, one expected", index.manifests.len()),
        ));
    };
    if manifest_desc.media_type != MANIFEST {
        return Err(invalid(
            "index.json",
            format!("manifest type {}", manifest_desc.media_type),
        ));
    }
    let manifest: Manifest = parse("the manifest", blob(manifest_desc)?)?;
    let config: ImageConfig = parse("the image config", blob(&manifest.config)?)?;
    let mut layers = Vec::new();
    for (n, desc) in manifest.layers.iter().enumerate() {
        if desc.media_type != LAYER {
            return Err(invalid(
                format!("layer {n}"),
                format!("type {} (only plain tar layers are read)", desc.media_type),
            ));
        }
        if config.rootfs.diff_ids.get(n) != Some(&desc.digest) {
            return Err(invalid(
                format!("layer {n}"),
                "its diff ID in the config differs",
            ));
        }
        layers.push(tar::read(blob(desc)?)?);
    }
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(invalid("the image config", "more diff IDs than layers"));
    }
    Ok(Archive {
        index: index.clone(),
        manifest,
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image {
            reference: "netassay.local/netassay:0.1.0".into(),
            architecture: "amd64".into(),
            config: RunConfig {
                user: Some("65532:65532".into()),
                env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
                entrypoint: Some(vec!["netassay".into()]),
                cmd: Some(vec!["--help".into()]),
                working_dir: None,
                labels: BTreeMap::from([("a".into(), "b".into())]),
            },
            layers: vec![
                Layer {
                    created_by: "base".into(),
                    entries: vec![Entry::dir("tmp", 0o1777, 0, 0)],
                },
                Layer {
                    created_by: "COPY".into(),
                    entries: vec![
                        Entry::dir("usr", 0o755, 0, 0),
                        Entry::file("usr/netassay", 0o755, b"\x7fELF".to_vec()),
                    ],
                },
            ],
            empty_history: vec![(2, "USER 65532:65532".into())],
        }
    }

    #[test]
    fn an_image_reads_back_as_written() {
        let bytes = write_archive(&image()).unwrap();
        let archive = read_archive(&bytes).unwrap();
        assert_eq!(archive.config.config, image().config);
        assert_eq!(archive.config.architecture, "amd64");
        assert_eq!(archive.names(), ["netassay.local/netassay:0.1.0", "0.1.0"]);
        assert_eq!(archive.layers.len(), 2);
        let fs = archive.filesystem();
        assert_eq!(fs["/tmp"].mode, 0o1777);
        assert_eq!(fs["/usr/netassay"].kind, Kind::File(b"\x7fELF".to_vec()));
        let history: Vec<(&str, bool)> = archive
            .config
            .history
            .iter()
            .map(|h| (h.created_by.as_str(), h.empty_layer))
            .collect();
        assert_eq!(
            history,
            [("base", false), ("COPY", false), ("USER 65532:65532", true)]
        );
        assert_eq!(
            archive.config.config.env_var("PATH"),
            Some("/usr/local/bin:/usr/bin:/bin")
        );
        assert_eq!(archive.config.config.env_var("PAT"), None);
    }

    #[test]
    fn writing_is_deterministic() {
        assert_eq!(
            write_archive(&image()).unwrap(),
            write_archive(&image()).unwrap()
        );
        let mut other = image();
        other.config.cmd = None;
        assert_ne!(
            write_archive(&image()).unwrap(),
            write_archive(&other).unwrap()
        );
    }

    #[test]
    fn the_config_uses_the_oci_field_names() {
        let bytes = write_archive(&image()).unwrap();
        let archive = read_archive(&bytes).unwrap();
        let config = serde_json::to_value(&archive.config).unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "netassay");
        assert_eq!(config["config"]["Cmd"][0], "--help");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["os"], "linux");
    }

    #[test]
    fn a_tampered_archive_is_refused() {
        let bytes = write_archive(&image()).unwrap();
        let entries = tar::read(&bytes).unwrap();
        let change = |f: &dyn Fn(&mut Vec<Entry>)| {
            let mut e = entries.clone();
            f(&mut e);
            read_archive(&tar::write(&e, 0).unwrap())
        };
        // A blob whose content no longer matches its name.
        let err = change(&|e| {
            let blob = e
                .iter_mut()
                .rfind(|x| x.path.starts_with("blobs/sha256/"))
                .unwrap();
            if let Kind::File(data) = &mut blob.kind {
                data.push(b' ');
            }
        });
        assert!(matches!(err, Err(OciError::Invalid { .. })), "{err:?}");
        let err = change(&|e| e.retain(|x| x.path != "index.json"));
        assert!(matches!(err, Err(OciError::Missing(name)) if name == "index.json"));
    }

    #[test]
    fn references_need_a_tag() {
        assert_eq!(tag_of("registry.k8s.io/pause:3.10.2").unwrap(), "3.10.2");
        assert_eq!(tag_of("localhost:5000/x:1").unwrap(), "1");
        assert!(tag_of("localhost:5000/x").is_err());
        assert!(tag_of("x:").is_err());
    }
}
