//! Secrets at rest: every secret column (cluster PKI, bootstrap tokens,
//! cloud credentials) holds a sealed value, never plain text.
//!
//! A value is sealed with XChaCha20-Poly1305 under a 256-bit key that lives
//! in a key file next to (never inside) the database: `state.key` beside
//! `state.db` by default, or wherever `VKUBE_STATE_KEY` points (e.g. a
//! mounted secret). A copy of the database alone reveals nothing. The
//! associated data binds each value to its row (`cluster/<name>` and the
//! secret's name), so a sealed value copied into another row does not open.
//!
//! Sealed text: `sealed:v1:<key id>:<base64 of nonce ‖ ciphertext>`; the
//! key id (8 hex digits of the key's SHA-256) tells which key sealed it.
//!
//! Rotation (`vkube state rotate-key`) writes the new key to
//! `<key file>.next` first, re-seals every row in one transaction, then
//! renames the new key over the old one. A crash in between leaves both
//! files; both keys open values, and the next rotation resumes with the
//! pending key, so no value is ever unreadable.
//!
//! Several processes (or PostgreSQL replicas sharing the key file) may
//! write while one rotates, so a writer reads the key files afresh for
//! every value it seals, inside its write transaction, and seals with the
//! pending key once one exists: a value sealed after the rotation's
//! re-sealing never carries the key about to be replaced. The re-sealing
//! transaction excludes writers in flight (SQLite's single writer; an
//! advisory lock on PostgreSQL), so it re-seals what they wrote. Opening
//! uses the keys read last and reads the files again for an unknown key.
//!
//! The in-memory store ([`MemoryStore::new`](crate::MemoryStore::new)) has
//! no file to keep a key beside, so its [`Sealer::in_memory`] keeps the
//! keys in memory with the state: values are still sealed, bound to their
//! row and re-sealed by rotation, only nothing is read from or written to
//! disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Associated-data scope of a cluster's secrets.
pub(crate) fn cluster_scope(cluster: &str) -> String {
    format!("cluster/{cluster}")
}

/// Associated-data scope of named cloud credentials.
pub(crate) const CREDENTIALS_SCOPE: &str = "credentials";

/// Environment variable naming the key file.
pub const STATE_KEY_ENV: &str = "VKUBE_STATE_KEY";
const PREFIX: &str = "sealed:v1:";
const HEADER: &str = "vkube state key v1";
const NONCE_LEN: usize = 24;

/// The key file for the state at `state`: `VKUBE_STATE_KEY` when set and
/// non-empty, else the state path with extension `key`.
pub fn key_path_for(state: &Path) -> PathBuf {
    std::env::var_os(STATE_KEY_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state.with_extension("key"))
}

/// One 256-bit key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn from_bytes(bytes: &[u8; 32]) -> Key {
        let digest = Sha256::digest(bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Key {
            id,
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    fn generate() -> Result<(Key, [u8; 32])> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| Error::Sealing {
            problem: format!("no randomness for a new key: {e}"),
        })?;
        Ok((Key::from_bytes(&bytes), bytes))
    }
}

/// Seals and opens secret values with the keys of one key file (or, for
/// the in-memory store, keys held only in memory).
pub(crate) struct Sealer {
    /// The key file; empty for keys held in memory.
    path: PathBuf,
    source: KeySource,
    /// Loaded on first use: commands that touch no secret never create a key.
    keys: Mutex<Option<KeyRing>>,
}

/// Where a [`Sealer`]'s keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    /// The key file (and a rotation's `<key file>.next`), read afresh
    /// before sealing since other processes may rotate it.
    File,
    /// Only in this process's memory, generated on first use.
    Memory,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("path", &self.path)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct KeyRing {
    /// The key of the key file.
    current: Key,
    /// A rotation's pending key (`<key file>.next`), if one is under way
    /// or was interrupted.
    next: Option<Key>,
}

impl KeyRing {
    /// The key new values are sealed with: the pending one, if any.
    fn sealing(&self) -> &Key {
        self.next.as_ref().unwrap_or(&self.current)
    }

    fn find(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(self.next.as_ref())
            .find(|key| key.id == id)
    }
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// The key file.
    pub key_file: PathBuf,
    /// Id of the key replaced.
    pub old_key: String,
    /// Id of the key now in use.
    pub new_key: String,
    /// Values re-sealed.
    pub resealed: usize,
}

impl Sealer {
    pub(crate) fn new(path: PathBuf) -> Sealer {
        Sealer {
            path,
            source: KeySource::File,
            keys: Mutex::new(None),
        }
    }

    /// A sealer whose keys never leave memory: generated on first use,
    /// rotated in place; its [`path`](Self::path) is empty.
    pub(crate) fn in_memory() -> Sealer {
        Sealer {
            path: PathBuf::new(),
            source: KeySource::Memory,
            keys: Mutex::new(None),
        }
    }

    /// A sealer as a restarted process would have it: for a key file, one
    /// that reads the same file afresh; for keys in memory, a copy of them
    /// (so values sealed so far still open).
    pub(crate) fn duplicate(&self) -> Sealer {
        let keys = match self.source {
            KeySource::File => None,
            KeySource::Memory => self.cached(),
        };
        Sealer {
            path: self.path.clone(),
            source: self.source,
            keys: Mutex::new(keys),
        }
    }

    /// Whether the keys live only in memory ([`in_memory`](Self::in_memory)).
    pub(crate) fn is_in_memory(&self) -> bool {
        self.source == KeySource::Memory
    }

    fn cached(&self) -> Option<KeyRing> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn next_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".next");
        PathBuf::from(name)
    }

    /// The keys read last, or read now when `fresh` or never read.
    fn ring(&self, fresh: bool) -> Result<KeyRing> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // Keys in memory have no other copy that could have changed.
        let fresh = fresh && self.source == KeySource::File;
        if let Some(ring) = keys.as_ref().filter(|_| !fresh) {
            return Ok(ring.clone());
        }
        if self.source == KeySource::Memory {
            let ring = KeyRing {
                current: Key::generate()?.0,
                next: None,
            };
            *keys = Some(ring.clone());
            return Ok(ring);
        }
        // The pending key first: if it is gone, the rename that removed it
        // happened before the key file is read, so that read sees the new key.
        let next = read_key(&self.next_path())?;
        let current = match read_key(&self.path)? {
            Some(key) => key,
            None => create_key(&self.path)?,
        };
        let ring = KeyRing { current, next };
        *keys = Some(ring.clone());
        Ok(ring)
    }

    /// `plain` sealed for the row named by `scope` and `name`. Reads the
    /// key files first (another process may have rotated the key): call it
    /// inside the write transaction that stores the value.
    pub(crate) fn seal(&self, scope: &str, name: &str, plain: &str) -> Result<String> {
        seal_with(self.ring(true)?.sealing(), scope, name, plain)
    }

    /// The plain text of `stored`. Values written before sealing existed
    /// (no prefix) are returned as they are; the store re-seals them.
    pub(crate) fn open(&self, scope: &str, name: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let unreadable = |problem: String| Error::Sealing {
            problem: format!("secret `{name}` of {scope}: {problem}"),
        };
        let (id, data) = rest
            .split_once(':')
            .ok_or_else(|| unreadable("malformed sealed value".into()))?;
        let cached = self.ring(false)?;
        let ring = match cached.find(id) {
            Some(_) => cached,
            // Rotated by another process since we read the key files?
            None => self.ring(true)?,
        };
        let key = ring.find(id).ok_or_else(|| {
            unreadable(match self.source {
                KeySource::File => format!(
                    "sealed with key `{id}`, but the key file `{}` holds key `{}`; \
                     point VKUBE_STATE_KEY at the key file this state was written with",
                    self.path.display(),
                    ring.current.id
                ),
                KeySource::Memory => format!(
                    "sealed with key `{id}`, but this in-memory state holds key `{}` \
                     (a value sealed by another store)",
                    ring.current.id
                ),
            })
        })?;
        let bytes = STANDARD
            .decode(data)
            .map_err(|e| unreadable(format!("malformed sealed value: {e}")))?;
        if bytes.len() < NONCE_LEN {
            return Err(unreadable("malformed sealed value".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(scope, name);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                unreadable("does not open (tampered with, or moved from another row)".into())
            })?;
        String::from_utf8(plain).map_err(|_| unreadable("not UTF-8 once opened".into()))
    }

    /// Whether `stored` is sealed with the current key.
    #[cfg(test)]
    pub(crate) fn is_current(&self, stored: &str) -> Result<bool> {
        let id = self.ring(false)?.current.id;
        Ok(stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(found, _)| found == id))
    }

    /// Rotation, step 1: the pending key (a new one, or the one an
    /// interrupted rotation left) written to `<key>.next`. Returns a
    /// closure-free handle the store re-seals rows with.
    pub(crate) fn begin_rotation(&self) -> Result<PendingKey> {
        let ring = self.ring(true)?;
        let key = match ring.next {
            Some(next) => next,
            None => {
                let (key, bytes) = Key::generate()?;
                if self.source == KeySource::File {
                    write_key_file(&self.next_path(), &bytes, true)?;
                }
                key
            }
        };
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        *keys = Some(KeyRing {
            current: ring.current.clone(),
            next: Some(key.clone()),
        });
        Ok(PendingKey {
            key,
            old_id: ring.current.id,
        })
    }

    /// Rotation, step 3 (after the rows were re-sealed and committed): the
    /// pending key replaces the old key file.
    pub(crate) fn finish_rotation(
        &self,
        pending: &PendingKey,
        resealed: usize,
    ) -> Result<Rotation> {
        if self.source == KeySource::File {
            std::fs::rename(self.next_path(), &self.path).map_err(|source| Error::KeyFile {
                path: self.path.clone(),
                source,
            })?;
        }
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        *keys = Some(KeyRing {
            current: pending.key.clone(),
            next: None,
        });
        Ok(Rotation {
            key_file: self.path.clone(),
            old_key: pending.old_id.clone(),
            new_key: pending.key.id.clone(),
            resealed,
        })
    }
}

/// The key a rotation re-seals with.
pub(crate) struct PendingKey {
    key: Key,
    old_id: String,
}

impl PendingKey {
    pub(crate) fn seal(&self, scope: &str, name: &str, plain: &str) -> Result<String> {
        seal_with(&self.key, scope, name, plain)
    }
}

fn associated_data(scope: &str, name: &str) -> Vec<u8> {
    format!("vkube\0{scope}\0{name}").into_bytes()
}

fn seal_with(key: &Key, scope: &str, name: &str, plain: &str) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|e| Error::Sealing {
        problem: format!("no randomness for a nonce: {e}"),
    })?;
    let aad = associated_data(scope, name);
    let ciphertext = key
        .cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: &aad,
            },
        )
        .map_err(|_| Error::Sealing {
            problem: "encryption failed".into(),
        })?;
    let mut data = nonce.to_vec();
    data.extend_from_slice(&ciphertext);
    Ok(format!("{PREFIX}{}:{}", key.id, STANDARD.encode(data)))
}

fn read_key(path: &Path) -> Result<Option<Key>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::KeyFile {
                path: path.to_owned(),
                source,
            })
        }
    };
    let bad = || Error::Sealing {
        problem: format!(
            "key file `{}` is not a vkube state key (`{HEADER}` and 32 base64 bytes)",
            path.display()
        ),
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(bad());
    }
    let bytes = STANDARD
        .decode(lines.next().unwrap_or_default().trim())
        .map_err(|_| bad())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
    Ok(Some(Key::from_bytes(&bytes)))
}

/// A new key file; when another process created one first, that one wins.
fn create_key(path: &Path) -> Result<Key> {
    let (key, bytes) = Key::generate()?;
    match write_key_file(path, &bytes, false) {
        Ok(()) => Ok(key),
        Err(Error::KeyFile { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            read_key(path)?.ok_or_else(|| Error::Sealing {
                problem: format!("key file `{}` vanished while opening it", path.display()),
            })
        }
        Err(e) => Err(e),
    }
}

/// Writes a key file with mode 0600 (never wider, whatever the umask),
/// synced to disk before it is used. The file appears whole or not at all:
/// it is written under a temporary name beside `path`, then linked into
/// place (a new key: fails with `AlreadyExists` when another process was
/// first) or renamed over it (`replace`), so a reader never sees half a key.
fn write_key_file(path: &Path, bytes: &[u8; 32], replace: bool) -> Result<()> {
    let io = |source| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}-{}", std::process::id(), unique_suffix()));
    let temporary = PathBuf::from(name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        writeln!(file, "{HEADER}\n{}", STANDARD.encode(bytes))?;
        file.sync_all()?;
        if replace {
            std::fs::rename(&temporary, path)
        } else {
            std::fs::hard_link(&temporary, path)
        }
    })();
    let _ = std::fs::remove_file(&temporary);
    written.map_err(io)
}

/// A per-process counter, so concurrent writers in one process never share
/// a temporary name.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(dir: &Path) -> Sealer {
        Sealer::new(dir.join("state.key"))
    }

    #[test]
    fn seals_opens_and_binds_to_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = sealer(dir.path());
        let sealed = sealer.seal("cluster/demo", "pki", "secret text").unwrap();
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("secret"));
        assert_eq!(
            sealer.open("cluster/demo", "pki", &sealed).unwrap(),
            "secret text"
        );
        let moved = sealer.open("cluster/other", "pki", &sealed).unwrap_err();
        assert!(moved.to_string().contains("does not open"), "{moved}");
        // Same plain text, fresh nonce.
        assert_ne!(
            sealer.seal("cluster/demo", "pki", "secret text").unwrap(),
            sealed
        );
        // Plain values of older state files pass through.
        assert_eq!(
            sealer.open("cluster/demo", "pki", "plain").unwrap(),
            "plain"
        );
    }

    #[test]
    fn key_file_is_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sealed = sealer(dir.path()).seal("s", "n", "v").unwrap();
        let mode = std::fs::metadata(dir.path().join("state.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(sealer(dir.path()).open("s", "n", &sealed).unwrap(), "v");
    }

    #[test]
    fn a_wrong_key_file_names_both_keys() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = sealer(dir.path()).seal("s", "n", "v").unwrap();
        let other = tempfile::tempdir().unwrap();
        let err = sealer(other.path()).open("s", "n", &sealed).unwrap_err();
        assert!(err.to_string().contains("VKUBE_STATE_KEY"), "{err}");
        std::fs::write(other.path().join("state.key"), "garbage").unwrap();
        let err = sealer(other.path()).seal("s", "n", "v").unwrap_err();
        assert!(
            err.to_string().contains("is not a vkube state key"),
            "{err}"
        );
    }

    /// Another process (or replica sharing the key file) rotating: values
    /// sealed meanwhile carry the pending key, so none is lost when it
    /// replaces the old one, and values under a key this process has not
    /// read yet still open.
    #[test]
    fn writers_during_another_process_rotation_use_the_pending_key() {
        let dir = tempfile::tempdir().unwrap();
        let rotator = sealer(dir.path());
        let writer = sealer(dir.path());
        let before = writer.seal("s", "a", "one").unwrap();
        let pending = rotator.begin_rotation().unwrap();
        let during = writer.seal("s", "b", "two").unwrap();
        assert!(
            during.contains(&format!(":{}:", pending.key.id)),
            "sealed with the pending key: {during}"
        );
        let resealed = pending.seal("s", "a", "one").unwrap();
        rotator.finish_rotation(&pending, 1).unwrap();
        // The old key is gone from disk; everything written is readable by
        // a fresh process and by the writer, which reloads for a new key.
        for opener in [&sealer(dir.path()), &writer] {
            assert_eq!(opener.open("s", "b", &during).unwrap(), "two");
            assert_eq!(opener.open("s", "a", &resealed).unwrap(), "one");
        }
        assert!(sealer(dir.path()).open("s", "a", &before).is_err());
    }

    #[test]
    fn keys_in_memory_seal_rotate_and_duplicate_without_files() {
        let sealer = Sealer::in_memory();
        assert_eq!(sealer.path(), Path::new(""));
        let sealed = sealer.seal("cluster/demo", "pki", "secret text").unwrap();
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("secret"));
        assert_eq!(
            sealer.open("cluster/demo", "pki", &sealed).unwrap(),
            "secret text"
        );
        assert!(sealer.open("cluster/other", "pki", &sealed).is_err());
        // A copy opens what the original sealed; another store does not.
        let copy = sealer.duplicate();
        assert_eq!(
            copy.open("cluster/demo", "pki", &sealed).unwrap(),
            "secret text"
        );
        let stranger = Sealer::in_memory().open("cluster/demo", "pki", &sealed);
        let error = stranger.unwrap_err().to_string();
        assert!(error.contains("in-memory state"), "{error}");
        // Rotation: the new key seals, the old one is gone.
        let pending = sealer.begin_rotation().unwrap();
        let resealed = pending.seal("cluster/demo", "pki", "secret text").unwrap();
        let rotation = sealer.finish_rotation(&pending, 1).unwrap();
        assert_ne!(rotation.old_key, rotation.new_key);
        assert_eq!(rotation.key_file, PathBuf::new());
        assert!(sealer.is_current(&resealed).unwrap() && !sealer.is_current(&sealed).unwrap());
        assert!(sealer.open("cluster/demo", "pki", &sealed).is_err());
    }

    #[test]
    fn interrupted_rotation_keeps_every_value_readable_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let first = sealer(dir.path());
        let old = first.seal("s", "a", "one").unwrap();
        let pending = first.begin_rotation().unwrap();
        let new = pending.seal("s", "b", "two").unwrap();
        // Crash here: a fresh process sees both key files.
        let again = sealer(dir.path());
        assert_eq!(again.open("s", "a", &old).unwrap(), "one");
        assert_eq!(again.open("s", "b", &new).unwrap(), "two");
        let resumed = again.begin_rotation().unwrap();
        assert_eq!(
            resumed.key.id, pending.key.id,
            "resumes with the pending key"
        );
        let rotation = again.finish_rotation(&resumed, 1).unwrap();
        assert_ne!(rotation.old_key, rotation.new_key);
        assert!(!again.next_path().exists());
        assert!(again.is_current(&new).unwrap() && !again.is_current(&old).unwrap());
    }
}
