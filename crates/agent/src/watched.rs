//! A small line-oriented table file (zone, routes) that an infrastructure agent answers from,
//! re-read whenever it changes.
//!
//! Each lookup stats the file; a changed modification time, size or inode (the sandbox may
//! rename a new file over the old one) triggers a re-read. File systems stamp modification
//! times from a coarse clock, so two writes of the same size a few milliseconds apart can
//! carry the same stamp: while the file was read within [`RACY_WINDOW`] of its stamp, its
//! content is compared on every lookup too (the "racy" check git uses for its index).
//!
//! A line that does not parse is skipped with a warning on stderr naming `file:line`; an
//! unreadable file keeps the last table that was read, with one warning per distinct error.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

/// How long after its modification stamp a file's content is still compared on lookup.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A line of a table file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineWarning {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The content of a table file, parsed.
pub trait LineTable: Send + Sync + Sized + 'static {
    /// What the file is, for messages (`zone file`, `routes file`).
    const KIND: &'static str;
    /// Parses the whole text; bad lines are reported, not fatal.
    fn parse(text: &str) -> (Self, Vec<LineWarning>);
    /// A short summary for the reload message (`12 names`).
    fn summary(&self) -> String;
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Whether a read at `read_at` could have missed a later write with the same stamp.
    fn racy(&self, read_at: SystemTime) -> bool {
        match self.modified {
            Some(m) => m
                .checked_add(RACY_WINDOW)
                .is_none_or(|settled| read_at < settled),
            None => true,
        }
    }
}

struct Loaded<T> {
    stamp: Stamp,
    read_at: SystemTime,
    digest: u64,
    table: Arc<T>,
    /// The last error said on stderr, so a persisting one is said once.
    last_error: Option<String>,
}

/// A table file and the table last read from it.
pub struct WatchedFile<T> {
    path: PathBuf,
    /// Prefix of every stderr line (`netassay agent dns`).
    speaker: &'static str,
    loaded: RwLock<Loaded<T>>,
    /// Held while re-reading, so concurrent lookups re-read once.
    reloading: Mutex<()>,
}

impl<T: LineTable> WatchedFile<T> {
    /// Reads the file for the first time; an unreadable file is an error here.
    pub fn open(path: &Path, speaker: &'static str) -> io::Result<WatchedFile<T>> {
        let stamp = Stamp::of(&std::fs::metadata(path)?);
        let read_at = SystemTime::now();
        let text = std::fs::read_to_string(path)?;
        let table = parse_and_warn::<T>(path, speaker, &text);
        Ok(WatchedFile {
            path: path.to_path_buf(),
            speaker,
            loaded: RwLock::new(Loaded {
                stamp,
                read_at,
                digest: digest(&text),
                table: Arc::new(table),
                last_error: None,
            }),
            reloading: Mutex::new(()),
        })
    }

    /// The table as of now: re-read first if the file changed since the last read.
    pub fn current(&self) -> Arc<T> {
        let stamp = std::fs::metadata(&self.path).map(|m| Stamp::of(&m));
        if let Ok(stamp) = &stamp {
            let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
            if loaded.stamp == *stamp && !stamp.racy(loaded.read_at) {
                return loaded.table.clone();
            }
        }
        let _reloading = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.reload(stamp)
    }

    /// Re-reads the file (the caller holds `reloading`); keeps the old table on error.
    fn reload(&self, stamp: io::Result<Stamp>) -> Arc<T> {
        let read = stamp.and_then(|stamp| {
            let read_at = SystemTime::now();
            std::fs::read_to_string(&self.path).map(|text| (stamp, read_at, text))
        });
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        match read {
            Ok((stamp, read_at, text)) => {
                let digest = digest(&text);
                if digest != loaded.digest {
                    let table = parse_and_warn::<T>(&self.path, self.speaker, &text);
                    eprintln!(
                        "{}: re-read {} {}: {}",
                        self.speaker,
                        T::KIND,
                        self.path.display(),
                        table.summary()
                    );
                    loaded.table = Arc::new(table);
                    loaded.digest = digest;
                }
                loaded.stamp = stamp;
                loaded.read_at = read_at;
                loaded.last_error = None;
            }
            Err(e) => {
                let said = e.to_string();
                if loaded.last_error.as_deref() != Some(said.as_str()) {
                    eprintln!(
                        "{}: cannot read {} {}, still answering from the last one read: {said}",
                        self.speaker,
                        T::KIND,
                        self.path.display()
                    );
                    loaded.last_error = Some(said);
                }
            }
        }
        loaded.table.clone()
    }
}

fn parse_and_warn<T: LineTable>(path: &Path, speaker: &str, text: &str) -> T {
    let (table, warnings) = T::parse(text);
    for w in warnings {
        eprintln!(
            "{speaker}: {}:{}: {}; line skipped",
            path.display(),
            w.line,
            w.message
        );
    }
    table
}

fn digest(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// `1 name`, `2 names`: a count and its noun.
pub fn counted(n: usize, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {singular}s")
    }
}

/// The meaningful part of each line: comments (`#` to the end) and surrounding blanks
/// removed, blank lines left out; with 1-based line numbers.
pub fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let content = line.split('#').next().unwrap_or_default().trim();
        (!content.is_empty()).then_some((i + 1, content))
    })
}

/// Writes `text` to `path` atomically (a sibling file renamed over it).
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every content line, kept as is.
    struct Lines(Vec<String>);

    impl LineTable for Lines {
        const KIND: &'static str = "test file";
        fn parse(text: &str) -> (Self, Vec<LineWarning>) {
            let mut warnings = Vec::new();
            let mut lines = Vec::new();
            for (line, content) in content_lines(text) {
                if content == "bad" {
                    warnings.push(LineWarning {
                        line,
                        message: "bad".into(),
                    });
                } else {
                    lines.push(content.to_string());
                }
            }
            (Lines(lines), warnings)
        }
        fn summary(&self) -> String {
            format!("{} lines", self.0.len())
        }
    }

    #[test]
    fn content_lines_drop_comments_and_blanks_and_keep_numbers() {
        let text = "# head\n\n a b # tail\n#\nc\n";
        let got: Vec<_> = content_lines(text).collect();
        assert_eq!(got, vec![(3, "a b"), (5, "c")]);
    }

    #[test]
    fn a_same_size_rewrite_within_the_stamp_granularity_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "one\n").unwrap();
        let file = WatchedFile::<Lines>::open(&path, "test").unwrap();
        assert_eq!(file.current().0, ["one"]);
        // Same size, written at once: the stamp may well be identical.
        std::fs::write(&path, "two\n").unwrap();
        assert_eq!(file.current().0, ["two"]);
    }

    #[test]
    fn a_rename_over_the_file_is_seen_and_a_missing_file_keeps_the_last_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "one\nbad\n").unwrap();
        let file = WatchedFile::<Lines>::open(&path, "test").unwrap();
        assert_eq!(file.current().0, ["one"]);
        write_atomically(&path, "three\nfour\n").unwrap();
        assert_eq!(file.current().0, ["three", "four"]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.current().0, ["three", "four"]);
        std::fs::write(&path, "five\n").unwrap();
        assert_eq!(file.current().0, ["five"]);
    }

    #[test]
    fn opening_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(WatchedFile::<Lines>::open(&dir.path().join("absent"), "test").is_err());
    }
}
