//! `netassay-image`: writes the OCI archive a Dockerfile's final stage describes, and shows
//! what an archive holds. `scripts/image/build.sh` is its user.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use netassay_image::assemble::{assemble, Sources};
use netassay_image::base;
use netassay_image::dockerfile::Dockerfile;
use netassay_image::oci::{self, read_archive, write_archive};
use netassay_image::tar::Kind;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Build an OCI image archive from a Dockerfile's final stage, without an engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the image the final stage of DOCKERFILE describes as an OCI archive.
    Build {
        #[arg(long)]
        dockerfile: PathBuf,
        /// The image reference, NAME:TAG (the name `ctr images import` gives it).
        #[arg(long)]
        tag: String,
        /// The archive to write (written beside it first, then renamed).
        #[arg(long)]
        out: PathBuf,
        /// The build context, for COPY and ADD without --from.
        #[arg(long)]
        context: Option<PathBuf>,
        /// NAME=DIR: a folder standing for build stage NAME's root (COPY --from=NAME).
        #[arg(long = "stage", value_name = "NAME=DIR")]
        stages: Vec<String>,
        /// NAME=VALUE, as `docker build --build-arg`.
        #[arg(long = "build-arg", value_name = "NAME=VALUE")]
        build_args: Vec<String>,
        /// The CA certificates for a base that carries them.
        #[arg(long, default_value = base::CA_BUNDLE)]
        ca_bundle: PathBuf,
        /// The image's architecture [default: this machine's].
        #[arg(long)]
        arch: Option<String>,
    },
    /// Show an archive's names, config and files (checking every digest).
    Inspect { archive: PathBuf },
}

fn pairs(values: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{what} {v:?}: expected NAME=VALUE"),
        })
        .collect()
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Build {
            dockerfile,
            tag,
            out,
            context,
            stages,
            build_args,
            ca_bundle,
            arch,
        } => {
            let text = std::fs::read_to_string(&dockerfile)
                .with_context(|| format!("reading {}", dockerfile.display()))?;
            let build_args = pairs(&build_args, "--build-arg")?;
            let stage = Dockerfile::parse(&text)
                .and_then(|d| d.final_stage(&build_args))
                .with_context(|| dockerfile.display().to_string())?;
            let ca_bundle = if base::needs_ca_bundle(&stage.base) {
                std::fs::read(&ca_bundle).with_context(|| {
                    format!(
                        "{} needs the CA certificates: reading {} (Debian: apt-get install ca-certificates)",
                        stage.base,
                        ca_bundle.display()
                    )
                })?
            } else {
                Vec::new()
            };
            let sources = Sources {
                context,
                stages: pairs(&stages, "--stage")?
                    .into_iter()
                    .map(|(k, v)| (k, PathBuf::from(v)))
                    .collect(),
                ca_bundle,
            };
            let arch = arch.unwrap_or_else(|| oci::host_architecture().to_string());
            let image = assemble(&stage, &sources, &tag, &arch)
                .with_context(|| dockerfile.display().to_string())?;
            let bytes = write_archive(&image)?;
            let archive = read_archive(&bytes).context("reading back what was written")?;
            let mut tmp = out.clone().into_os_string();
            tmp.push(".tmp");
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {tmp:?}"))?;
            std::fs::rename(&tmp, &out)
                .with_context(|| format!("renaming to {}", out.display()))?;
            println!(
                "{}: {tag} ({} bytes; manifest {}; {} layers from {} on {})",
                out.display(),
                bytes.len(),
                archive.index.manifests[0].digest,
                archive.layers.len(),
                dockerfile.display(),
                stage.base
            );
        }
        Command::Inspect { archive } => {
            let bytes = std::fs::read(&archive)
                .with_context(|| format!("reading {}", archive.display()))?;
            let image = read_archive(&bytes).with_context(|| archive.display().to_string())?;
            println!("names: {}", image.names().join(" "));
            println!("manifest: {}", image.index.manifests[0].digest);
            println!(
                "config: {}",
                serde_json::to_string_pretty(&image.config.config)?
            );
            for (path, entry) in image.filesystem() {
                let (kind, extra) = match &entry.kind {
                    Kind::Dir => ('d', String::new()),
                    Kind::File(data) => ('-', format!(" ({} bytes)", data.len())),
                    Kind::Symlink(t) => ('l', format!(" -> {t}")),
                    Kind::Link(t) => ('h', format!(" => {t}")),
                };
                println!(
                    "{kind}{:04o} {}:{} {path}{extra}",
                    entry.mode, entry.uid, entry.gid
                );
            }
        }
    }
    Ok(())
}
