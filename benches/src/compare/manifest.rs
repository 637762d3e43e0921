//! The peers manifest (`benches/peers/peers.toml`): which servers to compare and how to start
//! them.
//!
//! Owns: parsing the manifest ([`Manifest::parse`]), checking each server's `requires`
//! ([`ServerSpec::missing`]) and expanding its command line ([`ServerSpec::command`]).
//! Contract: every `[[server]]` needs `name`, `workload` (`"echo"` or `"http"`) and a
//! non-empty `cmd`; `requires` and `version` are optional, other keys of an entry are
//! ignored (notes for humans). A name may appear once per workload (`ringwork` serves both
//! echo and http: two entries); the pair must be unique. In `cmd`, `{port}` and `{cores}` are
//! replaced. Relative paths are relative to the repository root (the servers run there);
//! paths that start with `target/release/` are looked up in the binary directory instead
//! ([`Paths::bin_dir`]: `--bin-dir`, else `$CARGO_TARGET_DIR/release`, else
//! `target/release`). A missing `requires` path makes the server `missing: <path>`, reported
//! and skipped by the runner, never dropped silently.
//! Does not: start processes (see `server.rs`).
//!
//! ```toml
//! [[server]]
//! name = "ringwork"
//! workload = "http"            # "echo" or "http"
//! cmd = ["target/release/ringwork", "serve", "hello", "--listen", "tcp:127.0.0.1:{port}", "--cores", "{cores}"]
//! requires = ["target/release/ringwork"]
//! version = ["git", "rev-parse", "--short", "HEAD"]   # optional: first line is reported
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the baseline server: ratios are `ringwork / peer`.
pub const BASELINE: &str = "ringwork";

/// What a server speaks, i.e. which workloads it takes part in.
#[derive(Clone, Copy, Debug, Deserialize, Eq, Hash, Ord, PartialEq, PartialOrd, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP echo: every byte comes back.
    Echo,
    /// HTTP/1.1 "Hello, World!" on every path.
    Http,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Echo => "echo",
            Self::Http => "http",
        })
    }
}

/// One `[[server]]` entry.
#[derive(Clone, Debug, Deserialize, Eq, PartialEq, Serialize)]
pub struct ServerSpec {
    /// Unique name, as shown in the tables.
    pub name: String,
    /// The workloads it serves.
    pub workload: Protocol,
    /// Program and arguments, with `{port}` and `{cores}` placeholders.
    pub cmd: Vec<String>,
    /// Files that must exist for the server to run.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Optional command printing the server's version on its first line.
    #[serde(default)]
    pub version: Vec<String>,
}

/// A parsed manifest.
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The servers, in file order (the order of each round).
    #[serde(rename = "server", default)]
    pub servers: Vec<ServerSpec>,
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not valid TOML or not the expected shape.
    #[error("invalid manifest: {0}")]
    Toml(#[from] toml::de::Error),
    /// Two entries share a name and a workload.
    #[error("server name {0:?} appears twice for the same workload")]
    DuplicateName(String),
    /// An entry has an empty `cmd`.
    #[error("server {0:?} has an empty cmd")]
    EmptyCommand(String),
    /// No entry at all.
    #[error("the manifest lists no server")]
    Empty,
}

impl Manifest {
    /// Parses and validates manifest text.
    ///
    /// # Errors
    /// [`ManifestError`] for bad TOML, a duplicate name and workload, an empty `cmd` or no
    /// server.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Self = toml::from_str(text)?;
        if manifest.servers.is_empty() {
            return Err(ManifestError::Empty);
        }
        for (i, s) in manifest.servers.iter().enumerate() {
            if s.cmd.is_empty() {
                return Err(ManifestError::EmptyCommand(s.name.clone()));
            }
            if manifest.servers[..i]
                .iter()
                .any(|t| t.name == s.name && t.workload == s.workload)
            {
                return Err(ManifestError::DuplicateName(s.name.clone()));
            }
        }
        Ok(manifest)
    }
}

/// Where relative paths of the manifest point.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The repository root: servers run there and relative paths start there.
    pub repo: PathBuf,
    /// Replaces the `target/release` prefix of paths.
    pub bin_dir: PathBuf,
}

impl Paths {
    /// Resolves one manifest path or argument: `target/release/x` becomes `bin_dir/x`,
    /// any other relative path that names an existing file, or contains a `/`, is joined to
    /// the repository root; everything else (flags, `nginx` on `PATH`) is kept.
    #[must_use]
    pub fn resolve(&self, arg: &str) -> String {
        if let Some(rest) = arg.strip_prefix("target/release/") {
            return self.bin_dir.join(rest).display().to_string();
        }
        let p = Path::new(arg);
        if p.is_relative() && !arg.starts_with('-') && arg.contains('/') && !arg.contains(':') {
            return self.repo.join(p).display().to_string();
        }
        arg.to_string()
    }
}

impl ServerSpec {
    /// The first `requires` path that does not exist, resolved, or `None` when all do.
    #[must_use]
    pub fn missing(&self, paths: &Paths) -> Option<String> {
        self.requires
            .iter()
            .map(|r| {
                let p = paths.resolve(r);
                if Path::new(&p).is_relative() {
                    paths.repo.join(&p).display().to_string()
                } else {
                    p
                }
            })
            .find(|p| !Path::new(p).exists())
    }

    /// The command line with `{port}` and `{cores}` filled in and paths resolved.
    #[must_use]
    pub fn command(&self, port: u16, cores: usize, paths: &Paths) -> Vec<String> {
        self.cmd
            .iter()
            .map(|a| {
                let a = a
                    .replace("{port}", &port.to_string())
                    .replace("{cores}", &cores.to_string());
                paths.resolve(&a)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[server]]
name = "ringwork"
workload = "http"
cmd = ["target/release/ringwork", "serve", "hello", "--listen", "tcp:127.0.0.1:{port}", "--cores", "{cores}"]
requires = ["target/release/ringwork"]

[[server]]
name = "nginx"
workload = "http"
cmd = ["benches/peers/nginx/run.sh", "{port}", "{cores}"]
requires = ["benches/peers/nginx/run.sh", "/nonexistent/nginx"]
version = ["nginx", "-v"]
"#;

    fn paths(dir: &Path) -> Paths {
        Paths {
            repo: dir.to_path_buf(),
            bin_dir: dir.join("bin"),
        }
    }

    #[test]
    fn parses_servers_in_order() {
        let m = Manifest::parse(TWO).unwrap();
        assert_eq!(m.servers.len(), 2);
        assert_eq!(m.servers[0].name, "ringwork");
        assert_eq!(m.servers[0].workload, Protocol::Http);
        assert!(m.servers[0].version.is_empty());
        assert_eq!(m.servers[1].version, ["nginx", "-v"]);
    }

    #[test]
    fn command_fills_placeholders_and_resolves_paths() {
        let m = Manifest::parse(TWO).unwrap();
        let p = paths(Path::new("/repo"));
        assert_eq!(
            m.servers[0].command(8080, 2, &p),
            [
                "/repo/bin/ringwork",
                "serve",
                "hello",
                "--listen",
                "tcp:127.0.0.1:8080",
                "--cores",
                "2"
            ]
        );
        assert_eq!(
            m.servers[1].command(9, 1, &p),
            ["/repo/benches/peers/nginx/run.sh", "9", "1"]
        );
    }

    #[test]
    fn missing_requires_names_the_first_absent_path() {
        let dir = std::env::temp_dir().join(format!("compare-manifest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/ringwork"), "").unwrap();
        let m = Manifest::parse(TWO).unwrap();
        let p = paths(&dir);
        assert_eq!(m.servers[0].missing(&p), None);
        let missing = m.servers[1].missing(&p).unwrap();
        assert!(missing.ends_with("benches/peers/nginx/run.sh"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(matches!(Manifest::parse(""), Err(ManifestError::Empty)));
        let dup = "[[server]]\nname='a'\nworkload='echo'\ncmd=['x']\n[[server]]\nname='a'\nworkload='http'\ncmd=['y']\n";
        assert!(Manifest::parse(dup).is_ok(), "one name, two workloads");
        let dup = dup.replace("'http'", "'echo'");
        assert!(matches!(
            Manifest::parse(&dup),
            Err(ManifestError::DuplicateName(_))
        ));
        let empty = "[[server]]\nname='a'\nworkload='echo'\ncmd=[]\n";
        assert!(matches!(
            Manifest::parse(empty),
            Err(ManifestError::EmptyCommand(_))
        ));
        let bad_kind = "[[server]]\nname='a'\nworkload='udp'\ncmd=['x']\n";
        assert!(matches!(
            Manifest::parse(bad_kind),
            Err(ManifestError::Toml(_))
        ));
    }
}
