//! twistd's habits: `--pidfile FILE` and `--user`/`--group` (privileges dropped once every
//! core has bound its listeners).
//!
//! Owns: [`Pidfile`] (refuses to start while a live process holds the file, removes it on
//! exit if it still names this process) and [`PrivilegeDrop`] (the gate every core's start
//! passes: the last core to arrive drops the privileges of the whole process, then all go
//! on; none serves a request before).
//! Contract: privileges are dropped in the order that cannot be undone: supplementary
//! groups, then the group, then the user (setgroups, setgid, setuid; glibc applies each to
//! every thread of the process). Files opened before the drop (listeners, log files) stay
//! open; reopening a log file on SIGUSR1 afterwards needs the new user's rights.
//! Does not: fork into the background or chroot (run it under systemd; see
//! `contrib/ringwork.service`).

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use nix::unistd::{Gid, Group, Pid, Uid, User};

/// How long a core waits at the privilege gate for the others (a core whose I/O driver
/// could not start never arrives).
const GATE_TIMEOUT: Duration = Duration::from_secs(60);

/// A pidfile held by this process: removed on drop if it still names this process.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    pid: u32,
}

impl Pidfile {
    /// Writes this process's id to `path`. A file naming a live process is refused (unless
    /// it is `predecessor`, the server this one takes over from); one naming a process that
    /// is gone (or holding no pid) is replaced.
    ///
    /// # Errors
    /// A live process holds the file, or the file cannot be written.
    pub fn acquire(path: &Path, predecessor: Option<u32>) -> Result<Pidfile, String> {
        let pid = std::process::id();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut file) => {
                    file.write_all(format!("{pid}\n").as_bytes())
                        .map_err(|e| format!("--pidfile {}: {e}", path.display()))?;
                    return Ok(Pidfile {
                        path: path.to_owned(),
                        pid,
                    });
                }
                Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    if let Ok(holder) = text.trim().parse::<i32>()
                        && holder > 0
                        && i64::from(holder) != i64::from(pid)
                        && predecessor.is_none_or(|p| i64::from(p) != i64::from(holder))
                        && alive(holder)
                    {
                        return Err(format!(
                            "--pidfile {}: process {holder} is running and holds it (stop it \
                             first, or remove the file if that process is not ringwork)",
                            path.display()
                        ));
                    }
                    match text.trim().parse::<u32>() {
                        Ok(holder) if Some(holder) == predecessor => tracing::info!(
                            "--pidfile {}: taking it over from process {holder}",
                            path.display()
                        ),
                        _ => tracing::info!(
                            "--pidfile {}: replacing a stale pidfile",
                            path.display()
                        ),
                    }
                    std::fs::remove_file(path)
                        .map_err(|e| format!("--pidfile {}: {e}", path.display()))?;
                }
                Err(error) => return Err(format!("--pidfile {}: {error}", path.display())),
            }
        }
        Err(format!(
            "--pidfile {}: another process created it while this one started",
            path.display()
        ))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|text| text.trim() == self.pid.to_string());
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(
                "cannot remove the pidfile {}: {error} (after --uid, that user needs write \
                 access to its directory)",
                self.path.display()
            );
        }
    }
}

/// Whether process `pid` exists (signal 0; a process of another user counts).
fn alive(pid: i32) -> bool {
    match nix::sys::signal::kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno == nix::errno::Errno::EPERM,
    }
}

/// The user and group to become (`--user`, `--group`), resolved at start.
#[derive(Clone, Debug)]
pub struct Privileges {
    user: Option<(String, Uid)>,
    group: Option<(String, Gid)>,
}

impl Privileges {
    /// Resolves `user` (a name or a numeric id) and `group` (default: the user's primary
    /// group). `None` when neither is given.
    ///
    /// # Errors
    /// An unknown user or group.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Privileges>, String> {
        let user = match user {
            None => None,
            Some(name) => Some(lookup_user(name)?),
        };
        let group = match (group, &user) {
            (Some(name), _) => Some(lookup_group(name)?),
            (None, Some(user)) => Some((user.name.clone(), user.gid)),
            (None, None) => None,
        };
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        Ok(Some(Privileges {
            user: user.map(|u| (u.name, u.uid)),
            group,
        }))
    }

    /// Drops to these privileges for the whole process.
    fn apply(&self) -> Result<String, String> {
        if let Some((name, gid)) = &self.group {
            // Only root may set the supplementary groups; a process that is not root keeps
            // none it could abuse beyond its own.
            if Uid::effective().is_root() {
                nix::unistd::setgroups(&[*gid])
                    .map_err(|e| format!("setgroups([{gid}]) for --gid {name}: {e}"))?;
            }
            nix::unistd::setgid(*gid)
                .map_err(|e| format!("setgid({gid}) for --gid {name}: {e}"))?;
        }
        if let Some((name, uid)) = &self.user {
            nix::unistd::setuid(*uid)
                .map_err(|e| format!("setuid({uid}) for --uid {name}: {e}"))?;
        }
        Ok(format!(
            "dropped privileges: uid {} gid {}{}{}",
            Uid::current(),
            Gid::current(),
            self.user
                .as_ref()
                .map_or_else(String::new, |(name, _)| format!(" (user {name})")),
            self.group
                .as_ref()
                .map_or_else(String::new, |(name, _)| format!(" (group {name})"))
        ))
    }
}

fn lookup_user(name: &str) -> Result<User, String> {
    let found = match name.parse::<u32>() {
        Ok(id) => User::from_uid(Uid::from_raw(id)),
        Err(_) => User::from_name(name),
    };
    found
        .map_err(|e| format!("--uid {name}: {e}"))?
        .ok_or_else(|| format!("--uid {name}: no such user"))
}

fn lookup_group(name: &str) -> Result<(String, Gid), String> {
    let found = match name.parse::<u32>() {
        Ok(id) => Group::from_gid(Gid::from_raw(id)),
        Err(_) => Group::from_name(name),
    };
    let group = found
        .map_err(|e| format!("--gid {name}: {e}"))?
        .ok_or_else(|| format!("--gid {name}: no such group"))?;
    Ok((group.name, group.gid))
}

/// The gate every core passes after binding its listeners and before serving: the last
/// to arrive drops the privileges, then every core goes on with the outcome.
#[derive(Debug)]
pub struct PrivilegeDrop {
    privileges: Privileges,
    cores: usize,
    state: Mutex<Gate>,
    opened: Condvar,
}

#[derive(Debug, Default)]
struct Gate {
    arrived: usize,
    outcome: Option<Result<(), String>>,
}

impl PrivilegeDrop {
    /// A gate for `cores` cores.
    pub fn new(privileges: Privileges, cores: usize) -> Self {
        Self {
            privileges,
            cores,
            state: Mutex::default(),
            opened: Condvar::new(),
        }
    }

    /// Called once by each core (also one whose listeners failed): waits for the others,
    /// and returns whether the privileges were dropped.
    ///
    /// # Errors
    /// Dropping failed, or another core did not arrive within a minute.
    pub fn arrive(&self) -> Result<(), String> {
        let mut gate = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        gate.arrived += 1;
        if gate.arrived == self.cores {
            let outcome = self.privileges.apply().map(|message| {
                tracing::info!("{message}");
            });
            gate.outcome = Some(outcome.clone());
            self.opened.notify_all();
            return outcome;
        }
        let (gate, _) = self
            .opened
            .wait_timeout_while(gate, GATE_TIMEOUT, |g| g.outcome.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        gate.outcome
            .clone()
            .unwrap_or_else(|| Err("not every core started: privileges not dropped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_refuses_a_live_holder_and_replaces_a_stale_one() {
        let dir = std::env::temp_dir().join(format!("ringwork-pidfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ringwork.pid");
        // Held by a live process (pid 1 always exists).
        std::fs::write(&path, "1\n").expect("write");
        let error = Pidfile::acquire(&path, None).expect_err("pid 1 is alive");
        assert!(error.contains("process 1 is running"), "{error}");
        // Unless it is the server this one takes over from.
        let held = Pidfile::acquire(&path, Some(1)).expect("the predecessor's file is ours");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id())
        );
        drop(held);
        // Garbage, or a pid that cannot exist: replaced.
        std::fs::write(&path, "not a pid\n").expect("write");
        let held = Pidfile::acquire(&path, None).expect("a stale file is replaced");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", std::process::id())
        );
        drop(held);
        assert!(!path.exists(), "removed on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_users_and_groups_are_errors() {
        let error = Privileges::resolve(Some("no-such-user-ringwork"), None).expect_err("unknown");
        assert!(error.contains("no such user"), "{error}");
        let error = Privileges::resolve(None, Some("no-such-group-ringwork")).expect_err("unknown");
        assert!(error.contains("no such group"), "{error}");
        assert!(Privileges::resolve(None, None).expect("nothing").is_none());
    }
}
