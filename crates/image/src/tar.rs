//! A minimal ustar writer and reader: enough for image layers and OCI archives.
//!
//! The writer is deterministic: the entries are written in the order given, every header
//! carries the same modification time, no user or group names, and no extended headers (a
//! path that does not fit ustar's 100 + 155 bytes is an error rather than a PAX record). The
//! reader reads what the writer writes (plain files, directories, symlinks and hard links) and
//! refuses anything else, so a test that reads an archive back sees exactly what is in it.

use thiserror::Error;

const BLOCK: usize = 512;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TarError {
    #[error(
        "{path}: the path does not fit a ustar header (100 bytes, or 155 + 100 split at a '/')"
    )]
    PathTooLong { path: String },
    #[error("{path}: the link target does not fit a ustar header (100 bytes)")]
    LinkTooLong { path: String },
    #[error("{path}: {field} {value} does not fit its ustar field")]
    FieldTooLarge {
        path: String,
        field: &'static str,
        value: u64,
    },
    #[error("the archive ends inside an entry's header or data (at byte {offset})")]
    Truncated { offset: usize },
    #[error("the header at byte {offset} has a bad checksum")]
    Checksum { offset: usize },
    #[error("the header at byte {offset} has a malformed {field} field")]
    Malformed { offset: usize, field: &'static str },
    #[error("{path}: entry type {kind:?} is not supported")]
    UnsupportedType { path: String, kind: char },
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A hard link to an earlier entry (its path).
    Link(String),
}

/// One entry of an archive. Paths are relative (no leading `/`); a directory's path may end
/// with `/` (the writer adds it when missing, the reader strips it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: Kind,
}

impl Entry {
    pub fn dir(path: &str, mode: u32, uid: u32, gid: u32) -> Entry {
        Entry {
            path: path.trim_end_matches('/').to_string(),
            mode,
            uid,
            gid,
            kind: Kind::Dir,
        }
    }

    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry {
            path: path.to_string(),
            mode,
            uid: 0,
            gid: 0,
            kind: Kind::File(data),
        }
    }

    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.to_string(),
            mode: 0o777,
            uid: 0,
            gid: 0,
            kind: Kind::Symlink(target.to_string()),
        }
    }
}

/// Writes `value` as zero-padded octal filling `field` but its last byte (a NUL).
fn octal(field: &mut [u8], value: u64, path: &str, name: &'static str) -> Result<(), TarError> {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return Err(TarError::FieldTooLarge {
            path: path.to_string(),
            field: name,
            value,
        });
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// Splits `path` into ustar's (prefix, name).
fn split_path(path: &str) -> Result<(&str, &str), TarError> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let too_long = || TarError::PathTooLong {
        path: path.to_string(),
    };
    // The name is what follows the split '/', the prefix what precedes it.
    path.char_indices()
        .filter(|&(i, c)| c == '/' && i <= 155 && path.len() - i - 1 <= 100 && i > 0)
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(_, name)| !name.is_empty())
        .ok_or_else(too_long)
}

fn header(entry: &Entry, mtime: u64) -> Result<[u8; BLOCK], TarError> {
    let mut h = [0u8; BLOCK];
    let path = match entry.kind {
        Kind::Dir => format!("{}/", entry.path.trim_end_matches('/')),
        _ => entry.path.clone(),
    };
    let (prefix, name) = split_path(&path)?;
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    octal(
        &mut h[100..108],
        u64::from(entry.mode & 0o7777),
        &path,
        "mode",
    )?;
    octal(&mut h[108..116], u64::from(entry.uid), &path, "uid")?;
    octal(&mut h[116..124], u64::from(entry.gid), &path, "gid")?;
    let (size, flag, link) = match &entry.kind {
        Kind::Dir => (0, b'5', ""),
        Kind::File(data) => (data.len() as u64, b'0', ""),
        Kind::Symlink(target) => (0, b'2', target.as_str()),
        Kind::Link(target) => (0, b'1', target.as_str()),
    };
    octal(&mut h[124..136], size, &path, "size")?;
    octal(&mut h[136..148], mtime, &path, "mtime")?;
    h[156] = flag;
    if link.len() > 100 {
        return Err(TarError::LinkTooLong { path });
    }
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0, &path, "devmajor")?;
    octal(&mut h[337..345], 0, &path, "devminor")?;
    // The checksum is computed with its own field as spaces, then written as 6 digits, NUL, space.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum, &path, "checksum")?;
    h[155] = b' ';
    Ok(h)
}

/// The archive of `entries`, in their order, every header with modification time `mtime`.
pub fn write(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, TarError> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend_from_slice(&header(entry, mtime)?);
        if let Kind::File(data) = &entry.kind {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
    }
    // Two zero blocks end the archive.
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

fn field_str(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

fn parse_octal(bytes: &[u8], offset: usize, field: &'static str) -> Result<u64, TarError> {
    let text = std::str::from_utf8(field_str(bytes))
        .map_err(|_| TarError::Malformed { offset, field })?
        .trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| TarError::Malformed { offset, field })
}

fn parse_string(bytes: &[u8], offset: usize, field: &'static str) -> Result<String, TarError> {
    String::from_utf8(field_str(bytes).to_vec()).map_err(|_| TarError::Malformed { offset, field })
}

/// Reads every entry of an archive.
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, TarError> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let Some(h) = bytes.get(at..at + BLOCK) else {
            return Err(TarError::Truncated { offset: at });
        };
        if h.iter().all(|&b| b == 0) {
            return Ok(entries);
        }
        let stored = parse_octal(&h[148..156], at, "checksum")?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored != sum {
            return Err(TarError::Checksum { offset: at });
        }
        let name = parse_string(&h[..100], at, "name")?;
        let prefix = parse_string(&h[345..500], at, "prefix")?;
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let mode = parse_octal(&h[100..108], at, "mode")?;
        let uid = parse_octal(&h[108..116], at, "uid")?;
        let gid = parse_octal(&h[116..124], at, "gid")?;
        let size = usize::try_from(parse_octal(&h[124..136], at, "size")?).map_err(|_| {
            TarError::Malformed {
                offset: at,
                field: "size",
            }
        })?;
        let link = parse_string(&h[157..257], at, "linkname")?;
        let data_at = at + BLOCK;
        let kind = match h[156] {
            b'0' | 0 => {
                let Some(data) = bytes.get(data_at..data_at + size) else {
                    return Err(TarError::Truncated { offset: data_at });
                };
                Kind::File(data.to_vec())
            }
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink(link),
            b'1' => Kind::Link(link),
            other => {
                return Err(TarError::UnsupportedType {
                    path,
                    kind: char::from(other),
                })
            }
        };
        let narrow =
            |v: u64, field| u32::try_from(v).map_err(|_| TarError::Malformed { offset: at, field });
        entries.push(Entry {
            path: path.trim_end_matches('/').to_string(),
            mode: narrow(mode, "mode")?,
            uid: narrow(uid, "uid")?,
            gid: narrow(gid, "gid")?,
            kind,
        });
        at = data_at + size.div_ceil(BLOCK) * BLOCK;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written() {
        let long_dir = "a".repeat(120);
        let entries = vec![
            Entry::dir("etc", 0o755, 0, 0),
            Entry::file(
                "etc/passwd",
                0o644,
                b"root:x:0:0::/root:/sbin/nologin\n".to_vec(),
            ),
            Entry::dir("tmp", 0o1777, 0, 0),
            Entry::dir("home/nonroot", 0o700, 65532, 65532),
            Entry::symlink("bin", "usr/bin"),
            Entry::file(&format!("{long_dir}/file"), 0o755, vec![7; 1025]),
            Entry::file("empty", 0o600, Vec::new()),
        ];
        let bytes = write(&entries, 0).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(read(&bytes).unwrap(), entries);
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let entries = vec![Entry::file("a", 0o644, b"x".to_vec())];
        assert_eq!(write(&entries, 5).unwrap(), write(&entries, 5).unwrap());
        assert_ne!(write(&entries, 5).unwrap(), write(&entries, 6).unwrap());
    }

    #[test]
    fn headers_follow_ustar() {
        let bytes = write(&[Entry::dir("usr/local", 0o755, 0, 0)], 0).unwrap();
        assert_eq!(&bytes[..10], b"usr/local/");
        assert_eq!(&bytes[100..108], b"0000755\0");
        assert_eq!(bytes[156], b'5');
        assert_eq!(&bytes[257..265], b"ustar\x0000");
        // Header plus two end blocks.
        assert_eq!(bytes.len(), 3 * BLOCK);
    }

    #[test]
    fn what_does_not_fit_is_an_error() {
        let path = "b".repeat(101);
        assert_eq!(
            write(&[Entry::file(&path, 0o644, vec![])], 0),
            Err(TarError::PathTooLong { path: path.clone() })
        );
        let target = "c".repeat(101);
        assert!(matches!(
            write(&[Entry::symlink("l", &target)], 0),
            Err(TarError::LinkTooLong { .. })
        ));
        assert!(matches!(
            write(
                &[Entry {
                    uid: u32::MAX,
                    ..Entry::dir("d", 0o755, 0, 0)
                }],
                0
            ),
            Err(TarError::FieldTooLarge { field: "uid", .. })
        ));
    }

    #[test]
    fn damaged_archives_are_refused() {
        let mut bytes = write(&[Entry::file("a", 0o644, vec![1; 600])], 0).unwrap();
        assert_eq!(
            read(&bytes[..700]),
            Err(TarError::Truncated { offset: 512 })
        );
        assert_eq!(read(&bytes[..100]), Err(TarError::Truncated { offset: 0 }));
        bytes[0] = b'z';
        assert_eq!(read(&bytes), Err(TarError::Checksum { offset: 0 }));
    }
}
