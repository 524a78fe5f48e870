//! Authoring WASM agents: scaffold a guest crate, build it to a component,
//! check a component against the agent world. The `switchyard agent`
//! commands are thin wrappers around these functions.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::wasm::error::WasmError;
use crate::wasm::kind::{WORLD, WasmAgentKind};
use crate::wasm::limits::WasmLimits;

/// The Rust target guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why an authoring step failed.
#[derive(Debug, Error)]
pub enum AuthoringError {
    /// The agent name cannot be a crate name.
    #[error(
        "{0:?} is not a usable agent name; use lowercase letters, digits, - and _, starting with a letter"
    )]
    BadName(String),
    /// The target directory exists already.
    #[error("{0} exists already; pick another name or directory")]
    Exists(String),
    /// Writing the scaffold failed.
    #[error("cannot write {path}: {detail}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        detail: String,
    },
    /// The crate has no readable Cargo.toml with a package name.
    #[error(
        "{0} has no Cargo.toml with a [package] name; pass the directory of a guest crate (see `switchyard agent new`)"
    )]
    NotACrate(String),
    /// The wasm32-wasip2 standard library is not installed.
    #[error(
        "the {TARGET} target is not installed for this toolchain; run `rustup target add {TARGET}`"
    )]
    TargetMissing,
    /// cargo could not be run or failed.
    #[error("cargo build of {path} failed{detail}")]
    Build {
        /// The crate.
        path: String,
        /// What cargo said.
        detail: String,
    },
    /// The built component is refused.
    #[error(transparent)]
    Load(#[from] WasmError),
}

/// Whether `name` can be a guest crate (and agent) name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// Scaffolds a guest crate named `name` under `parent`, depending on the SDK
/// at `sdk`. Returns the crate directory.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("sy-doc-{}", std::process::id()));
/// let krate = switchyard_runtime::wasm::authoring::new_agent(&dir, "greeter", "/path/to/agents/sdk").unwrap();
/// assert!(krate.join("src/lib.rs").exists());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn new_agent(
    parent: &Path,
    name: &str,
    sdk: impl AsRef<Path>,
) -> Result<PathBuf, AuthoringError> {
    if !valid_name(name) {
        return Err(AuthoringError::BadName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(AuthoringError::Exists(dir.display().to_string()));
    }
    let sdk = sdk.as_ref().display().to_string().replace('\\', "/");
    let ty: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nswitchyard-sdk = {{ path = \"{sdk}\" }}\n\n\
         [profile.release]\npanic = \"abort\"\nopt-level = \"s\"\nstrip = \"debuginfo\"\n\n\
         # A workspace of its own: build with `switchyard agent build .`\n[workspace]\n"
    );
    let lib = format!(
        "//! {name}: a Switchyard WASM agent. Answers asks with the payload.\n\n\
         use switchyard_sdk::{{Agent, Envelope, Error, Kind, host}};\n\n\
         struct {ty};\n\n\
         impl Agent for {ty} {{\n    fn init(_config: &str) -> Result<Self, Error> {{\n        Ok({ty})\n    }}\n\n    \
         fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {{\n        if msg.kind == Kind::Ask {{\n            \
         host::reply(msg, &msg.payload)?;\n        }}\n        Ok(())\n    }}\n}}\n\n\
         switchyard_sdk::export_agent!({ty});\n"
    );
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| AuthoringError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    };
    std::fs::create_dir_all(dir.join("src")).map_err(|e| AuthoringError::Write {
        path: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    write(dir.join("Cargo.toml"), &manifest)?;
    write(dir.join("src/lib.rs"), &lib)?;
    write(dir.join(".gitignore"), "/target\n")?;
    Ok(dir)
}

/// The package name in `dir/Cargo.toml`.
fn package_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(rest) = line.strip_prefix("name") {
            let value = rest
                .trim_start()
                .strip_prefix('=')?
                .trim()
                .trim_matches('"');
            return Some(value.to_owned());
        }
    }
    None
}

/// Whether the active toolchain has the wasm32-wasip2 standard library.
pub fn target_installed() -> bool {
    let Ok(out) = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    out.status.success()
        && std::fs::read_dir(&dir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        })
}

/// Builds the guest crate at `dir` for wasm32-wasip2 (release) into
/// `target_dir` (default: `dir/target`) and returns the component's path.
pub fn build(dir: &Path, target_dir: Option<&Path>) -> Result<PathBuf, AuthoringError> {
    let name =
        package_name(dir).ok_or_else(|| AuthoringError::NotACrate(dir.display().to_string()))?;
    if !target_installed() {
        return Err(AuthoringError::TargetMissing);
    }
    let target_dir = target_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("target"));
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .output()
        .map_err(|e| AuthoringError::Build {
            path: dir.display().to_string(),
            detail: format!(": cannot run cargo: {e}"),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let detail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(AuthoringError::Build {
            path: dir.display().to_string(),
            detail: format!(":\n{detail}"),
        });
    }
    let wasm = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.exists() {
        return Err(AuthoringError::Build {
            path: dir.display().to_string(),
            detail: format!(
                ": no component at {}; is the crate a cdylib?",
                wasm.display()
            ),
        });
    }
    Ok(wasm)
}

/// What `check` found in a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The world it implements.
    pub world: &'static str,
    /// Its exports.
    pub exports: Vec<String>,
    /// Its imports; those other than the `host` interface are stubs that trap.
    pub imports: Vec<String>,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "implements {}", self.world)?;
        writeln!(f, "exports:")?;
        for e in &self.exports {
            writeln!(f, "  {e}")?;
        }
        writeln!(f, "imports:")?;
        for i in &self.imports {
            let note = if i.starts_with("switchyard:agent/") {
                ""
            } else {
                "  (not granted: traps if called)"
            };
            writeln!(f, "  {i}{note}")?;
        }
        Ok(())
    }
}

/// Validates the component at `path` against the agent world, running its
/// `init` with `config` in a throwaway instance, and lists its exports.
pub fn check(path: &Path, config: &str) -> Result<CheckReport, WasmError> {
    let kind = WasmAgentKind::load(path, WasmLimits::default().config(config))?;
    Ok(CheckReport {
        world: WORLD,
        exports: kind.exports(),
        imports: kind.imports(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffolds_a_crate_and_refuses_bad_names_and_overwrites() {
        let parent = std::env::temp_dir().join(format!("sy-authoring-{}", std::process::id()));
        let dir = new_agent(&parent, "my-agent", "/sdk").unwrap();
        assert_eq!(package_name(&dir).as_deref(), Some("my-agent"));
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("export_agent!(MyAgent)"), "{lib}");
        assert!(matches!(
            new_agent(&parent, "my-agent", "/sdk"),
            Err(AuthoringError::Exists(_))
        ));
        assert!(matches!(
            new_agent(&parent, "Bad Name", "/sdk"),
            Err(AuthoringError::BadName(_))
        ));
        assert!(matches!(
            build(&parent, None),
            Err(AuthoringError::NotACrate(_))
        ));
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
