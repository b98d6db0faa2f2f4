//! `--init`: claude-iso stays behind as a minimal init for the command, in tini's mould.
//!
//! Because claude-iso `execve`s, the command (claude, i.e. node) would be PID 1 of a
//! container: node reaps none of the orphans its tools leave (they pile up as zombies),
//! and the kernel drops a signal sent to PID 1 that has no handler, so `docker stop` and
//! pod termination wait for SIGKILL. With the init, claude-iso forks first:
//!
//! - the **child** goes on with the launch exactly as without the init (token, home,
//!   seed, environment, `execve`), so every 125/126/127 is still decided and printed in
//!   one place, by the child, and the init only passes its exit status on;
//! - the **parent** is the init: a child subreaper that blocks the forwarded signals
//!   and takes them with `sigtimedwait` (as tini does), reaps every zombie that reaches
//!   it (`waitpid(-1, WNOHANG)` until none is left), forwards SIGTERM, SIGINT, SIGHUP,
//!   SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to the command (its process group with
//!   `--init-group`), and exits with the command's status (128+N for a death by signal
//!   N) once the descendants the command left are gone: SIGTERM first, SIGKILL after the
//!   grace period.
//!
//! The fork comes **before** the token is read: the init never reads a token file,
//! and what it inherited of the caller's environment (a token passed as a variable) is
//! zeroed, in its copy and in its own environment block, right after the fork. It keeps
//! no inherited descriptor beyond 0–2 and stays non-dumpable.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getpgid, getpgrp, getpid, setpgid, tcgetpgrp, tcsetpgrp};

use crate::caller::CallerEnv;
use crate::cli::InitArgs;
use crate::error::{Error, Result};
use crate::layout::{INIT_GRACE_VAR, INIT_VAR, TOKEN_VAR};
use crate::report::Report;
use crate::scrub::is_scrubbed;
use crate::sys;

/// Between SIGTERM and SIGKILL for what the command leaves behind, unless
/// `--init-grace`/`CLAUDE_ISO_INIT_GRACE` say otherwise. Kubernetes' default
/// `terminationGracePeriodSeconds` is 30 and `docker stop` waits 10: the command's own
/// shutdown plus this must fit in the runtime's period, or the runtime's SIGKILL comes
/// first.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The signals the init passes on to the command (tini forwards everything; these are
/// the ones a runtime, a terminal or an operator sends to stop or poke a service).
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// How long the init waits for processes to vanish after SIGKILL before it gives up on
/// them (a process it may not signal, one stuck in the kernel).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often the SIGKILL round looks again.
const KILL_POLL: Duration = Duration::from_millis(20);

/// Why the init is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `--init` or `--init-group`.
    Option,
    /// `CLAUDE_ISO_INIT=1`.
    VariableOn,
    /// claude-iso is PID 1 (of a container, of a PID namespace).
    Pid1,
    /// `--no-init`.
    NoInitOption,
    /// `CLAUDE_ISO_INIT=0`.
    VariableOff,
    /// Not PID 1 and nothing asked for it.
    NotPid1,
}

impl Reason {
    /// As the user wrote it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Option => "--init",
            Reason::VariableOn => "CLAUDE_ISO_INIT=1",
            Reason::Pid1 => "claude-iso is PID 1",
            Reason::NoInitOption => "--no-init",
            Reason::VariableOff => "CLAUDE_ISO_INIT=0",
            Reason::NotPid1 => "not PID 1",
        }
    }
}

/// Whether the launcher runs as an init, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub on: bool,
    pub reason: Reason,
    /// Signals go to the command's process group (`--init-group`).
    pub group: bool,
    pub grace: Duration,
}

/// Decides from the options, `CLAUDE_ISO_INIT`/`CLAUDE_ISO_INIT_GRACE` and whether we
/// are PID 1. Options beat the variables; the variables beat the automatic choice.
///
/// # Errors
/// A variable with a value other than the documented ones (125).
pub fn decide(args: &InitArgs, env: &CallerEnv, pid1: bool) -> Result<Decision> {
    let variable = match env.get(INIT_VAR).map(OsStr::as_encoded_bytes) {
        None | Some(b"") => None,
        Some(b"1") => Some(true),
        Some(b"0") => Some(false),
        Some(_) => {
            return Err(Error::Usage(format!(
                "{INIT_VAR} must be 1 (init on), 0 (off) or empty (automatic: on as PID 1); unset it or fix its value"
            )));
        }
    };
    let (on, reason) = if args.init || args.init_group {
        (true, Reason::Option)
    } else if args.no_init {
        (false, Reason::NoInitOption)
    } else if let Some(on) = variable {
        (
            on,
            if on {
                Reason::VariableOn
            } else {
                Reason::VariableOff
            },
        )
    } else if pid1 {
        (true, Reason::Pid1)
    } else {
        (false, Reason::NotPid1)
    };
    let grace = match args.init_grace {
        Some(s) => Duration::from_secs(u64::from(s)),
        None => match env.get(INIT_GRACE_VAR).filter(|v| !v.is_empty()) {
            None => DEFAULT_GRACE,
            Some(v) => v
                .to_str()
                .and_then(|v| v.parse::<u32>().ok())
                .map(|s| Duration::from_secs(u64::from(s)))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{INIT_GRACE_VAR} must be a whole number of seconds (like Kubernetes' terminationGracePeriodSeconds); fix or unset it"
                    ))
                })?,
        },
    };
    Ok(Decision {
        on,
        reason,
        group: args.init_group,
        grace,
    })
}

impl Decision {
    /// One line for the dry-run plan and `doctor`.
    #[must_use]
    pub fn describe(&self) -> String {
        if !self.on {
            return format!("off ({})", self.reason.describe());
        }
        format!(
            "on ({}): claude-iso forks, reaps orphans and forwards signals to the command{}; {} s from SIGTERM to SIGKILL for what it leaves behind",
            self.reason.describe(),
            if self.group { "'s process group" } else { "" },
            self.grace.as_secs()
        )
    }
}

/// Whether this process is PID 1 (of the machine, a container or a PID namespace).
#[must_use]
pub fn is_pid1() -> bool {
    getpid().as_raw() == 1
}

/// The signal mask claude-iso started with, when [`hold_signals_if_pid1`] blocked the
/// forwarded signals first thing.
static STARTED_WITH: std::sync::OnceLock<SigSet> = std::sync::OnceLock::new();

/// As PID 1, blocks the signals the init forwards first thing, as tini does: the kernel
/// drops a signal sent to PID 1 that has no handler, so a `docker stop` arriving while
/// claude-iso still reads its options would be lost. Blocked, it stays pending until the
/// init's wait loop forwards it (or, with `--no-init`, until the mask is restored just
/// before `execve`, see [`release_held_signals`]).
pub fn hold_signals_if_pid1() {
    if !is_pid1() {
        return;
    }
    let mut old = SigSet::empty();
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked_set()), Some(&mut old)).is_ok() {
        let _ = STARTED_WITH.set(old);
    }
}

/// Restores the signal mask [`hold_signals_if_pid1`] changed (before an `execve` without
/// the init).
pub fn release_held_signals() {
    if let Some(old) = STARTED_WITH.get() {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
    }
}

/// Which side of the fork returned from [`start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The child: go on with the launch.
    Command,
    /// The init, after the command and what it left have ended: exit with this status.
    Init(i32),
}

/// Forks. The child returns [`Side::Command`] at once, with the signal mask and
/// dispositions it had before (so the command inherits what claude-iso inherited). The
/// parent zeroes `env` (and its environment block's secrets), closes every inherited
/// descriptor above 2, supervises the command and returns [`Side::Init`] with its status.
///
/// # Errors
/// The signal mask cannot be set or `fork` fails (125, before anything ran).
pub fn start(decision: &Decision, env: &mut CallerEnv, report: &Report) -> Result<Side> {
    let fail = |what: &str, e: Errno| Error::Init(format!("{what}: {}", e.desc()));
    // Hand the terminal to the command's own group only if it is ours to hand.
    let terminal =
        decision.group && tcgetpgrp(std::io::stdin().as_fd()).is_ok_and(|fg| fg == getpgrp());
    // Orphans of the command come to us, not to PID 1 (moot when we are PID 1). Not
    // inherited by the child; set before the fork so no orphan can slip past.
    if !is_pid1() {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| fail("PR_SET_CHILD_SUBREAPER", e))?;
    }
    // Blocked before the fork, so no signal is lost before the wait loop runs; SIGTTOU
    // and SIGTTIN too, so handing the terminal over and back cannot stop either side.
    let mut old_mask = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&blocked_set()),
        Some(&mut old_mask),
    )
    .map_err(|e| fail("cannot block signals", e))?;
    // What the command must start with: the mask claude-iso was started with, even
    // when the signals were already held since then.
    if let Some(started_with) = STARTED_WITH.get() {
        old_mask = *started_with;
    }
    let old_chld = match sys::default_disposition(Signal::SIGCHLD) {
        Ok(old) => old,
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            return Err(fail("cannot reset SIGCHLD", e));
        }
    };
    match sys::fork() {
        Err(e) => {
            sys::restore_disposition(Signal::SIGCHLD, &old_chld);
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            Err(fail("cannot fork", e))
        }
        Ok(ForkResult::Child) => {
            if decision.group {
                // Both sides call setpgid, as shells do, so neither can act before it.
                let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
                if terminal {
                    // SIGTTOU is still blocked here, so a background group may do this.
                    let _ = tcsetpgrp(std::io::stdin().as_fd(), getpid());
                }
            }
            sys::restore_disposition(Signal::SIGCHLD, &old_chld);
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None)
                .map_err(|e| fail("cannot restore the signal mask", e))?;
            Ok(Side::Command)
        }
        Ok(ForkResult::Parent { child }) => {
            if decision.group {
                let _ = setpgid(child, child);
            }
            forget_secrets(env);
            sys::close_from(3);
            let status = supervise(child, decision, report);
            if terminal && tcgetpgrp(std::io::stdin().as_fd()).is_ok_and(|fg| fg == child) {
                let _ = tcsetpgrp(std::io::stdin().as_fd(), getpgrp());
            }
            clean_up(decision.grace, report);
            Ok(Side::Init(status))
        }
    }
}

/// The init keeps no copy of a secret the caller passed in its environment: the values
/// of the token's variable and of every variable claude-iso scrubs are zeroed in its
/// environment block (what `/proc/<pid>/environ` shows), and its parsed copy is wiped.
fn forget_secrets(env: &mut CallerEnv) {
    let names: Vec<&[u8]> = env
        .vars()
        .iter()
        .filter(|(k, _)| k == TOKEN_VAR || is_scrubbed(k))
        .map(|(k, _)| k.as_encoded_bytes())
        .collect();
    sys::wipe_environ_values(&names);
    env.wipe();
}

fn blocked_set() -> SigSet {
    let mut set = wait_set();
    set.add(Signal::SIGTTIN);
    set.add(Signal::SIGTTOU);
    set
}

fn wait_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Waits for the command, reaping every zombie and forwarding signals on the way.
/// Returns its status: its exit code, or 128+N after a death by signal N.
fn supervise(child: Pid, decision: &Decision, report: &Report) -> i32 {
    let set = wait_set();
    loop {
        if let Reaped {
            command: Some(status),
            ..
        } = reap(Some(child))
        {
            return status;
        }
        match sys::wait_signal(&set, None) {
            Ok(Some(caught)) if caught.signal != Signal::SIGCHLD => {
                forward(child, decision.group, caught);
            }
            // SIGCHLD: reaped at the top of the loop. EINTR: a stop or continue.
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                // Cannot happen with a valid set; do not spin: block in waitpid instead.
                report.warn(format!("init: sigtimedwait: {}", e.desc()));
                if let Ok(WaitStatus::Exited(pid, code)) = waitpid(child, None) {
                    if pid == child {
                        return code;
                    }
                }
            }
        }
    }
}

/// Passes a signal on to the command (or its process group).
fn forward(child: Pid, group: bool, caught: sys::Caught) {
    // Ctrl-C, Ctrl-\ and a resize: the terminal driver (SI_KERNEL) already sent it to
    // its whole foreground process group, the command included when it shares ours.
    // A second copy would make claude read one Ctrl-C as two.
    if !group
        && caught.code == libc::SI_KERNEL
        && matches!(
            caught.signal,
            Signal::SIGINT | Signal::SIGQUIT | Signal::SIGWINCH
        )
        && getpgid(Some(child)).is_ok_and(|pg| pg == getpgrp())
    {
        return;
    }
    // The command is not reaped yet (this runs only before), so its PID, and the
    // process group it leads, cannot have been reused.
    if group && kill(Pid::from_raw(-child.as_raw()), caught.signal).is_ok() {
        return;
    }
    let _ = kill(child, caught.signal);
}

/// What one reaping round found.
struct Reaped {
    /// The command's status, when it was reaped in this round.
    command: Option<i32>,
    /// Whether any child is left (running, or a zombie not yet seen).
    children_left: bool,
}

/// Reaps every child that has exited (`waitpid(-1, WNOHANG)` until nothing is left).
fn reap(command: Option<Pid>) -> Reaped {
    let mut status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                return Reaped {
                    command: status,
                    children_left: true,
                };
            }
            Ok(WaitStatus::Exited(pid, code)) if Some(pid) == command => status = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if Some(pid) == command => {
                status = Some(128 + sig as i32);
            }
            Ok(_) | Err(Errno::EINTR) => {}
            // ECHILD: no child at all.
            Err(_) => {
                return Reaped {
                    command: status,
                    children_left: false,
                };
            }
        }
    }
}

/// After the command exited: SIGTERM to every descendant left, SIGKILL to those still
/// there after `grace`, reaping all along. Returns when none is left (or, after SIGKILL,
/// when the rest cannot be killed: a process we may not signal).
fn clean_up(grace: Duration, report: &Report) {
    if !reap(None).children_left {
        return;
    }
    let me = getpid();
    if !proc_is_ours() {
        // Without our /proc we cannot tell descendants from strangers. As PID 1 every
        // other process of the namespace is one; otherwise leave them to the next init.
        if is_pid1() {
            let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            wait_gone(Instant::now() + grace);
            let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            wait_gone(Instant::now() + KILL_WAIT);
        } else {
            report.warn(
                "init: /proc is not this PID namespace's, so the processes the command left cannot be found; they are left running",
            );
        }
        return;
    }
    let mut termed: HashSet<Pid> = HashSet::new();
    let deadline = Instant::now() + grace;
    loop {
        // Newcomers (forked after the first round) get their SIGTERM too, once each.
        for pid in descendants(me) {
            if termed.insert(pid) {
                let _ = kill(pid, Signal::SIGTERM);
            }
        }
        if !reap(None).children_left {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let _ = sys::wait_signal(&sigchld(), Some(deadline - now));
    }
    let give_up = Instant::now() + KILL_WAIT;
    loop {
        let left = descendants(me);
        for pid in &left {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        if !reap(None).children_left {
            return;
        }
        if Instant::now() >= give_up {
            report.warn(format!(
                "init: {} process(es) the command left survived SIGKILL for {} s; leaving them",
                left.len(),
                KILL_WAIT.as_secs()
            ));
            return;
        }
        let _ = sys::wait_signal(&sigchld(), Some(KILL_POLL));
    }
}

/// Reaps until no child is left or `deadline` passes.
fn wait_gone(deadline: Instant) {
    while reap(None).children_left {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let _ = sys::wait_signal(&sigchld(), Some((deadline - now).min(KILL_POLL)));
    }
}

fn sigchld() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set
}

/// Whether `/proc` shows this process's PID namespace (it does not after
/// `unshare --pid --fork` without `--mount-proc`).
#[must_use]
pub fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<i32>().ok())
        == Some(getpid().as_raw())
}

/// Every process below `root` in the process tree, parents before children, read from
/// `/proc/<pid>/stat`. A descendant that is not our child could exit and be reaped by
/// its own parent between this scan and our `kill`, and its PID be reused meanwhile; PIDs
/// are handed out in order, so that needs a full wrap of the PID space in that window.
fn descendants(root: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pairs: Vec<(i32, i32)> = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(ppid_from_stat)
        {
            pairs.push((pid, ppid));
        }
    }
    let mut out: Vec<Pid> = Vec::new();
    let mut frontier = vec![root.as_raw()];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &pairs {
            if ppid == parent && pid != root.as_raw() && !out.contains(&Pid::from_raw(pid)) {
                out.push(Pid::from_raw(pid));
                frontier.push(pid);
            }
        }
    }
    out
}

/// The parent PID from a `/proc/<pid>/stat` line: `pid (comm) state ppid …`, where comm
/// may hold spaces and parentheses, so the fields are counted after the last `)`.
fn ppid_from_stat(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CallerEnv {
        pairs.iter().copied().collect()
    }

    fn args() -> InitArgs {
        InitArgs::default()
    }

    #[test]
    fn ppid_is_read_after_the_last_parenthesis() {
        assert_eq!(ppid_from_stat("42 (sh) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_from_stat("42 (a) b) (c) R 9 1 1"), Some(9));
        assert_eq!(ppid_from_stat("42 (x y) Z 1 0"), Some(1));
        assert_eq!(ppid_from_stat("garbage"), None);
    }

    #[test]
    fn automatic_only_as_pid1() {
        let d = decide(&args(), &env(&[]), true).unwrap();
        assert_eq!(
            (d.on, d.reason, d.grace),
            (true, Reason::Pid1, DEFAULT_GRACE)
        );
        let d = decide(&args(), &env(&[]), false).unwrap();
        assert_eq!((d.on, d.reason), (false, Reason::NotPid1));
    }

    #[test]
    fn options_beat_the_variable_which_beats_pid1() {
        let no = InitArgs {
            no_init: true,
            ..args()
        };
        let on = env(&[(INIT_VAR, "1")]);
        let off = env(&[(INIT_VAR, "0")]);
        assert_eq!(decide(&no, &on, true).unwrap().reason, Reason::NoInitOption);
        assert!(!decide(&no, &on, true).unwrap().on);
        let d = decide(&args(), &off, true).unwrap();
        assert_eq!((d.on, d.reason), (false, Reason::VariableOff));
        let d = decide(&args(), &on, false).unwrap();
        assert_eq!((d.on, d.reason), (true, Reason::VariableOn));
        let group = InitArgs {
            init_group: true,
            ..args()
        };
        let d = decide(&group, &off, false).unwrap();
        assert_eq!((d.on, d.group, d.reason), (true, true, Reason::Option));
        // Empty counts as unset.
        let d = decide(&args(), &env(&[(INIT_VAR, "")]), true).unwrap();
        assert_eq!(d.reason, Reason::Pid1);
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_variable() {
        let e = decide(&args(), &env(&[(INIT_VAR, "yes")]), false).unwrap_err();
        assert!(e.to_string().starts_with(INIT_VAR), "{e}");
        assert_eq!(e.exit_code(), 125);
        for bad in ["-1", "1.5", "ten"] {
            let e = decide(&args(), &env(&[(INIT_GRACE_VAR, bad)]), true).unwrap_err();
            assert!(e.to_string().starts_with(INIT_GRACE_VAR), "{e}");
        }
    }

    #[test]
    fn grace_from_option_then_variable() {
        let grace = |a: InitArgs, e: &[(&str, &str)]| decide(&a, &env(e), true).unwrap().grace;
        assert_eq!(
            grace(args(), &[(INIT_GRACE_VAR, "25")]),
            Duration::from_secs(25)
        );
        let a = InitArgs {
            init_grace: Some(3),
            ..args()
        };
        assert_eq!(grace(a, &[(INIT_GRACE_VAR, "25")]), Duration::from_secs(3));
        assert_eq!(grace(args(), &[(INIT_GRACE_VAR, "0")]), Duration::ZERO);
    }
}
