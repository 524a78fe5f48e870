//! The on-disk cache of compiled components, so that a restarted service
//! does not compile its agents again.
//!
//! **Layout.** One file per (component, engine) pair in the cache directory:
//! `<sha256 of the component bytes>-<engine fingerprint>.cwasm`. The
//! fingerprint hashes this crate's version and wasmtime's
//! `Engine::precompile_compatibility_hash` (wasmtime's version, target and
//! every setting that changes generated code), so an upgrade or a config
//! change misses instead of loading incompatible code. A file holds
//!
//! ```text
//!  "SYCWASM1" | sha256(component bytes) | sha256(artifact) | artifact
//!     8 B            32 B                      32 B          Component::serialize
//! ```
//!
//! **Safety invariant.** Loading an artifact runs `Component::deserialize`,
//! which is `unsafe`: wasmtime trusts the machine code in it. The cache
//! directory must therefore belong to the service (same owner, not writable
//! by anyone who may not run native code as the service). Within that
//! invariant the checksums turn accidental damage (a truncated write, a disk
//! error, a file from another build) into a miss: the entry is removed and
//! the component compiled again, never loaded and never a crash.
//!
//! **Atomicity.** Entries are written to a unique temporary name and renamed
//! into place, so readers see a whole file or none. Concurrent writers of
//! one entry race harmlessly (same content).
//!
//! **Bounds.** One entry per distinct component a service ever loaded with
//! one engine build; nothing is evicted automatically (an operator may delete
//! the directory at any time; `none` in the config turns the cache off).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::wasm::error::WasmError;

const MAGIC: &[u8; 8] = b"SYCWASM1";
const HEADER: usize = 8 + 32 + 32;

static DIR: RwLock<Option<PathBuf>> = RwLock::new(None);
static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);
static REJECTED: AtomicU64 = AtomicU64::new(0);
static TEMP: AtomicU64 = AtomicU64::new(0);

/// Counters of the on-disk cache since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCacheStats {
    /// Components loaded from the disk instead of compiled.
    pub hits: u64,
    /// Lookups that found no entry (the component was compiled).
    pub misses: u64,
    /// Entries written.
    pub writes: u64,
    /// Entries found damaged or incompatible, removed and recompiled.
    pub rejected: u64,
}

/// Turns the on-disk cache on (`Some(dir)`, created if missing) or off.
/// Applies to components compiled after the call.
///
/// # Safety of the directory
/// Compiled code is loaded from `dir` without being verified as WASM again:
/// `dir` must be the service's own (see the module docs).
///
/// ```
/// let dir = std::env::temp_dir().join("switchyard-doc-cache");
/// switchyard_runtime::wasm::set_disk_cache(Some(dir.clone())).unwrap();
/// assert_eq!(switchyard_runtime::wasm::disk_cache(), Some(dir));
/// switchyard_runtime::wasm::set_disk_cache(None).unwrap();
/// ```
pub fn set_disk_cache(dir: Option<PathBuf>) -> Result<(), WasmError> {
    if let Some(d) = &dir {
        std::fs::create_dir_all(d).map_err(|e| WasmError::Cache {
            path: d.display().to_string(),
            detail: format!("{e}; choose a writable directory or set it to none"),
        })?;
    }
    *DIR.write().unwrap_or_else(|p| p.into_inner()) = dir;
    Ok(())
}

/// The cache directory, if the cache is on.
pub fn disk_cache() -> Option<PathBuf> {
    DIR.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The counters since the process started.
pub fn disk_cache_stats() -> DiskCacheStats {
    DiskCacheStats {
        hits: HITS.load(Ordering::Relaxed),
        misses: MISSES.load(Ordering::Relaxed),
        writes: WRITES.load(Ordering::Relaxed),
        rejected: REJECTED.load(Ordering::Relaxed),
    }
}

/// FNV-1a as a `Hasher`: stable across builds, unlike `DefaultHasher`.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn fingerprint(engine: &Engine) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A lookup key: where the entry lives and what it must contain.
pub(crate) struct Entry {
    path: PathBuf,
    source_digest: [u8; 32],
}

/// The entry for `bytes`, when the cache is on.
pub(crate) fn entry(engine: &Engine, bytes: &[u8]) -> Option<Entry> {
    let dir = disk_cache()?;
    let source_digest: [u8; 32] = Sha256::digest(bytes).into();
    let name = format!("{}-{:016x}.cwasm", hex(&source_digest), fingerprint(engine));
    Some(Entry {
        path: dir.join(name),
        source_digest,
    })
}

fn reject(path: &Path, why: &str) {
    REJECTED.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        file = %path.display(),
        why,
        "compiled-component cache entry rejected; recompiling"
    );
    if let Err(e) = std::fs::remove_file(path) {
        tracing::debug!(file = %path.display(), error = %e, "cannot remove the rejected entry");
    }
}

/// The cached compilation, or `None` (a miss, or an entry rejected and
/// removed).
pub(crate) fn load(engine: &Engine, entry: &Entry) -> Option<Component> {
    let data = match std::fs::read(&entry.path) {
        Ok(d) => d,
        Err(_) => {
            MISSES.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    if data.len() < HEADER || &data[..8] != MAGIC {
        reject(&entry.path, "bad header");
        return None;
    }
    if data[8..40] != entry.source_digest {
        reject(&entry.path, "entry of another component");
        return None;
    }
    let artifact = &data[HEADER..];
    if Sha256::digest(artifact)[..] != data[40..72] {
        reject(&entry.path, "checksum mismatch (damaged file)");
        return None;
    }
    // SAFETY: the artifact was produced by `Component::serialize` of an
    // engine with the same fingerprint and is byte-for-byte what was written
    // (checksum above); the directory is the service's own (module docs).
    // wasmtime still checks its version and engine settings and refuses
    // anything incompatible, which is a miss here.
    match unsafe { Component::deserialize(engine, artifact) } {
        Ok(c) => {
            HITS.fetch_add(1, Ordering::Relaxed);
            Some(c)
        }
        Err(e) => {
            reject(&entry.path, &format!("{e:#}"));
            None
        }
    }
}

/// Stores a compilation; failures are logged, never fatal (the cache is an
/// optimisation).
pub(crate) fn store(entry: &Entry, component: &Component) {
    let artifact = match component.serialize() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot serialize a compiled component; not cached");
            return;
        }
    };
    let mut data = Vec::with_capacity(HEADER + artifact.len());
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&entry.source_digest);
    data.extend_from_slice(&Sha256::digest(&artifact));
    data.extend_from_slice(&artifact);
    let n = TEMP.fetch_add(1, Ordering::Relaxed);
    let temp = entry
        .path
        .with_extension(format!("tmp.{}.{n}", std::process::id()));
    let written = std::fs::write(&temp, &data).and_then(|()| std::fs::rename(&temp, &entry.path));
    match written {
        Ok(()) => {
            WRITES.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!(file = %entry.path.display(), error = %e, "cannot write the compiled-component cache entry");
        }
    }
}
