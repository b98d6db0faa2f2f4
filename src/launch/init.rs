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
//! - the **parent** is the init: a child subreaper that blocks every signal and takes
//!   them with `sigtimedwait` (as tini does), reaps every zombie that reaches it
//!   (`waitpid(-1, WNOHANG)` until none is left), forwards every signal but SIGCHLD to
//!   the command (its process group with `--init-group`; see [`Job::on_signal`]),
//!   follows the command's stops (job control, [`Job::stopped`]) and, once the
//!   descendants the command left are gone (SIGTERM first, SIGKILL after the grace
//!   period or a second SIGTERM), ends as the command ended: with its exit code, or
//!   killed by the same signal (128+N as PID 1).
//!
//! The command leads a process group of its own, and gets the terminal, with
//! `--init-group` and as PID 1 (tini's `isolate_child`); otherwise it shares the init's.
//!
//! The fork comes **before** the token is read: the init never reads a token file,
//! and what it inherited of the caller's environment (a token passed as a variable) is
//! zeroed, in its copy and in its own environment block, right after the fork. It keeps
//! no inherited descriptor beyond 0–2 and stays non-dumpable.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getpgid, getpgrp, getpid, setpgid, tcgetpgrp, tcsetpgrp};

use crate::caller::CallerEnv;
use crate::cli::InitArgs;
use crate::error::{Error, Result};
use crate::layout::{INIT_GRACE_VAR, INIT_VAR, TOKEN_VAR};
use crate::report::Report;
use crate::scrub::is_scrubbed;
use crate::sys;
use crate::sys::proc::descendants;
pub(crate) use crate::sys::proc::proc_is_ours;

/// Between SIGTERM and SIGKILL for what the command leaves behind, unless
/// `--init-grace`/`CLAUDE_ISO_INIT_GRACE` say otherwise. Kubernetes' default
/// `terminationGracePeriodSeconds` is 30 and `docker stop` waits 10: the command's own
/// shutdown plus this must fit in the runtime's period, or the runtime's SIGKILL comes
/// first.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How long the init waits for processes to vanish after SIGKILL before it gives up on
/// them (a process it may not signal, one stuck in the kernel).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often the SIGKILL round looks again.
const KILL_POLL: Duration = Duration::from_millis(20);

/// Why the init is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
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
    pub(crate) fn describe(self) -> &'static str {
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
pub(crate) struct Decision {
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
pub(crate) fn decide(args: &InitArgs, env: &CallerEnv, pid1: bool) -> Result<Decision> {
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
    pub(crate) fn describe(&self) -> String {
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
pub(crate) fn is_pid1() -> bool {
    getpid().as_raw() == 1
}

/// The signal mask claude-iso started with, when [`hold_signals_if_pid1`] blocked the
/// signals first thing.
static STARTED_WITH: std::sync::OnceLock<SigSet> = std::sync::OnceLock::new();

/// As PID 1, blocks every signal first thing, as tini does: the kernel
/// drops a signal sent to PID 1 that has no handler, so a `docker stop` arriving while
/// claude-iso still reads its options would be lost. Blocked, it stays pending until the
/// init's wait loop forwards it (or, with `--no-init`, until the mask is restored just
/// before `execve`, see [`release_held_signals`]).
pub(crate) fn hold_signals_if_pid1() {
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
pub(crate) fn release_held_signals() {
    if let Some(old) = STARTED_WITH.get() {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
    }
}

/// Which side of the fork returned from [`start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The child: go on with the launch.
    Command,
    /// The init, after the command and what it left have ended: exit with this status.
    Init(i32),
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Forks. The child returns [`Side::Command`] at once, with the signal mask and
/// dispositions it had before (so the command inherits what claude-iso inherited). The
/// parent zeroes `env` (and its environment block's secrets), closes every inherited
/// descriptor above 2, supervises the command and returns [`Side::Init`] with its status;
/// when the command was killed by a signal and claude-iso is not PID 1, the init dies of
/// that signal instead of returning (see [`finish`]).
///
/// # Errors
/// The signal mask cannot be set or `fork` fails (125, before anything ran).
pub(crate) fn start(decision: &Decision, env: &mut CallerEnv, report: &Report) -> Result<Side> {
    let fail = |what: &str, e: Errno| Error::Init(format!("{what}: {}", e.desc()));
    let pid1 = is_pid1();
    // The command leads a process group of its own with --init-group, and as PID 1 (as
    // under tini: an interactive shell as the command then finds the terminal's
    // foreground group to be its own; dash exits 2, "Cannot set tty process group",
    // when it is the init's, which it cannot name from inside the PID namespace).
    let own_group = decision.group || pid1;
    // The command's own group gets the terminal (stdin, when it is our controlling
    // terminal) whenever the init has it to hand: now if we are in the foreground, and
    // later when continued there (a job started with `&`, then `fg`).
    let fg = own_group
        .then(|| tcgetpgrp(std::io::stdin().as_fd()).ok())
        .flatten();
    let terminal = fg.is_some();
    let hand_now = fg == Some(getpgrp());
    // Orphans of the command come to us, not to PID 1 (moot when we are PID 1). Not
    // inherited by the child; set before the fork so no orphan can slip past.
    if !pid1 {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| fail("PR_SET_CHILD_SUBREAPER", e))?;
    }
    let (old_mask, old_chld) = block_signals()?;
    match sys::fork() {
        Err(e) => {
            sys::restore_disposition(Signal::SIGCHLD, &old_chld);
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            Err(fail("cannot fork", e))
        }
        Ok(ForkResult::Child) => {
            if own_group {
                // Both sides call setpgid, as shells do, so neither can act before it.
                let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
                if hand_now {
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
            if own_group {
                let _ = setpgid(child, child);
            }
            forget_secrets(env);
            sys::close_from(3);
            let job = Job {
                child,
                signal_group: decision.group,
                own_group,
                terminal,
                stop_requests: Cell::new(0),
            };
            let ending = supervise(&job, report);
            job.take_terminal();
            clean_up(decision.grace, job.stop_requests.get(), report);
            Ok(Side::Init(finish(ending, pid1)))
        }
    }
}

/// Blocks every signal and sets SIGCHLD to its default, for the fork; returns what the
/// command must start with (the mask and SIGCHLD's disposition to restore).
fn block_signals() -> Result<(SigSet, nix::sys::signal::SigAction)> {
    let fail = |what: &str, e: Errno| Error::Init(format!("{what}: {}", e.desc()));
    // Every signal is blocked before the fork, so none is lost (or kills the init)
    // before the wait loop runs; SIGTTOU and SIGTTIN blocked also let the init hand the
    // terminal over and back, and write to it, from a background group.
    let mut old_mask = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&SigSet::all()),
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
    Ok((old_mask, old_chld))
}

/// The init's exit status for how the command ended. A command killed by signal N makes
/// the init die of N too (not PID 1): a shell then sees what it would have seen without
/// the init (bash and dash end a loop whose command died of SIGINT, while an exit status
/// of 130 reads as a command that caught it and went on). As PID 1, whose death by its
/// own signal the kernel does not allow, 128+N.
fn finish(ending: Ending, pid1: bool) -> i32 {
    match ending {
        Ending::Exited(code) => code,
        Ending::Signaled(signo) => {
            if !pid1 {
                sys::die_of_signal(signo);
            }
            128 + signo
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

/// The signals claude-iso blocks first thing as PID 1: all of them.
fn blocked_set() -> SigSet {
    SigSet::all()
}

/// Signals the terminal driver (or a hangup) sends to a whole foreground process group
/// (`si_code` `SI_KERNEL`): when the command shares the init's group, it got its own
/// copy.
const TERMINAL_SIGNALS: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGWINCH,
    Signal::SIGHUP,
    Signal::SIGCONT,
];

/// The command as the init sees it.
struct Job {
    child: Pid,
    /// Signals go to its process group (`--init-group`).
    signal_group: bool,
    /// It leads a process group of its own (`--init-group`, or the init is PID 1).
    own_group: bool,
    /// The command leads its own group and stdin is the init's controlling terminal:
    /// the init hands it to the command's group whenever it has it in the foreground.
    terminal: bool,
    /// How many SIGTERM and SIGINT the init was sent while the command ran (see
    /// [`clean_up`]).
    stop_requests: Cell<u32>,
}

impl Job {
    /// Passes a signal on to the command (or its process group). Every signal is, as
    /// tini does (it leaves out only SIGCHLD, the synchronous fault signals and SIGTTIN/
    /// SIGTTOU; here those sent with `kill` are passed on too), except:
    /// - SIGCHLD (the wait loop reaps instead);
    /// - a signal the init sent itself (SIGPIPE from writing a warning to a closed
    ///   stderr: the kernel sends it in the writer's name);
    /// - the terminal's copy of SIGINT, SIGQUIT, SIGTSTP, … when the command shares the
    ///   init's process group: the driver sent the whole group one each, and a second
    ///   copy would make claude read one Ctrl-C as two.
    ///
    /// SIGCONT goes to the command's whole group when it leads one (a stopped job is
    /// continued as a whole, as a shell's `fg` does), after the terminal is handed back.
    fn on_signal(&self, caught: sys::Caught) {
        if caught.signo == libc::SIGCHLD {
            return;
        }
        if caught.sender == getpid().as_raw() {
            return;
        }
        let shares_group =
            !self.own_group && getpgid(Some(self.child)).is_ok_and(|pg| pg == getpgrp());
        if shares_group
            && caught.code == libc::SI_KERNEL
            && TERMINAL_SIGNALS.iter().any(|s| *s as i32 == caught.signo)
        {
            return;
        }
        // (Not the terminal's copies above: claude takes two Ctrl-C to quit.)
        if [libc::SIGTERM, libc::SIGINT].contains(&caught.signo) {
            self.stop_requests
                .set(self.stop_requests.get().saturating_add(1));
        }
        if caught.signo == libc::SIGCONT && self.own_group {
            self.give_terminal();
            if sys::send_signal(-self.child.as_raw(), libc::SIGCONT).is_ok() {
                return;
            }
        }
        self.forward(caught.signo);
    }

    fn forward(&self, signo: i32) {
        // The command is not reaped yet (this runs only before), so its PID, and the
        // process group it leads, cannot have been reused.
        if self.signal_group && sys::send_signal(-self.child.as_raw(), signo).is_ok() {
            return;
        }
        let _ = sys::send_signal(self.child.as_raw(), signo);
    }

    /// The command stopped (Ctrl-Z, SIGTSTP/SIGTTIN/SIGTTOU, SIGSTOP): the init takes the
    /// terminal back and stops too, with the same signal (SIGTSTP for a SIGSTOP, which
    /// the kernel would not discard where nobody can continue the init), so that the
    /// shell that started it sees the job stop and gets its terminal back (with
    /// `--init-group`, Ctrl-Z stops only the command's group). A SIGCONT for the init
    /// (`fg`, `bg`) then continues the command ([`Job::on_signal`]). Where the kernel does not stop the init (PID 1, or a
    /// group nobody could continue), a command stopped by SIGTSTP is continued at once,
    /// as the kernel discards SIGTSTP for such a group; other stops stay until a SIGCONT.
    fn stopped(&self, signo: i32) {
        self.take_terminal();
        let own = if [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signo) {
            signo
        } else {
            libc::SIGTSTP
        };
        if !sys::stop_self(own) && signo == libc::SIGTSTP {
            self.give_terminal();
            let target = if self.own_group {
                -self.child.as_raw()
            } else {
                self.child.as_raw()
            };
            let _ = sys::send_signal(target, libc::SIGCONT);
        }
    }

    /// Takes the terminal back from the command's group, if it has it.
    fn take_terminal(&self) {
        let stdin = std::io::stdin();
        if self.terminal && tcgetpgrp(stdin.as_fd()).is_ok_and(|fg| fg == self.child) {
            let _ = tcsetpgrp(stdin.as_fd(), getpgrp());
        }
    }

    /// Hands the terminal to the command's group, if the init has it now (continued in
    /// the foreground: `fg`, not `bg`).
    fn give_terminal(&self) {
        let stdin = std::io::stdin();
        if self.terminal && tcgetpgrp(stdin.as_fd()).is_ok_and(|fg| fg == getpgrp()) {
            let _ = tcsetpgrp(stdin.as_fd(), self.child);
        }
    }
}

/// Waits for the command, reaping every zombie, forwarding signals and following its
/// stops on the way. Returns how it ended.
fn supervise(job: &Job, report: &Report) -> Ending {
    let all = SigSet::all();
    loop {
        let reaped = reap(Some(job.child));
        if let Some(ending) = reaped.command {
            return ending;
        }
        if let Some(signo) = reaped.command_stopped {
            job.stopped(signo);
        }
        match sys::wait_signal(&all, None) {
            Ok(Some(caught)) => job.on_signal(caught),
            // EINTR: a stop or continue of the init itself.
            Ok(None) | Err(Errno::EINTR) => {}
            Err(e) => {
                // Cannot happen with a valid set; do not spin: block in waitpid instead.
                report.warn(format!("init: sigtimedwait: {}", e.desc()));
                if let Ok(WaitStatus::Exited(pid, code)) = waitpid(job.child, None) {
                    if pid == job.child {
                        return Ending::Exited(code);
                    }
                }
            }
        }
    }
}

/// What one reaping round found.
struct Reaped {
    /// How the command ended, when it was reaped in this round.
    command: Option<Ending>,
    /// The signal that stopped the command, when it stopped in this round (and was not
    /// continued again in it).
    command_stopped: Option<i32>,
    /// Whether any child is left (running, or a zombie not yet seen).
    children_left: bool,
}

/// Reaps every child that has exited (`waitpid(-1, WNOHANG)` until nothing is left).
fn reap(command: Option<Pid>) -> Reaped {
    let mut reaped = Reaped {
        command: None,
        command_stopped: None,
        children_left: true,
    };
    loop {
        match sys::wait_child() {
            Ok(None) => return reaped,
            Ok(Some((pid, state))) if Some(Pid::from_raw(pid)) == command => match state {
                sys::ChildState::Exited(code) => reaped.command = Some(Ending::Exited(code)),
                sys::ChildState::Signaled(signo) => {
                    reaped.command = Some(Ending::Signaled(signo));
                }
                sys::ChildState::Stopped(signo) => reaped.command_stopped = Some(signo),
                sys::ChildState::Continued => reaped.command_stopped = None,
            },
            Ok(Some(_)) | Err(Errno::EINTR) => {}
            // ECHILD: no child at all.
            Err(_) => {
                reaped.children_left = false;
                return reaped;
            }
        }
    }
}

/// Signals that cut the grace period short: a second SIGTERM (or Ctrl-C) once the
/// command is gone asks for the leftovers to go now, as `docker stop` twice or a
/// second Ctrl-C does for a service.
fn hurry_set() -> SigSet {
    let mut set = sigchld();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Takes, without waiting, the SIGTERM and SIGINT already pending when the command
/// ended, and counts them: they were sent while it ran (or as it died), so only a second
/// one hurries the clean-up. The terminal's copies (Ctrl-C) count for nothing: the
/// command got its own (claude quits on a second Ctrl-C).
fn take_pending_stop_requests() -> u32 {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    let mut n: u32 = 0;
    while let Ok(Some(c)) = sys::wait_signal(&set, Some(Duration::ZERO)) {
        if c.sender != getpid().as_raw() && c.code != libc::SI_KERNEL {
            n = n.saturating_add(1);
        }
    }
    n
}

/// Waits until a signal of [`hurry_set`] comes or `timeout` passes. `true`: hurry (a
/// SIGTERM or SIGINT from someone else than the init itself).
fn wait_or_hurry(timeout: Duration) -> bool {
    matches!(
        sys::wait_signal(&hurry_set(), Some(timeout)),
        Ok(Some(c)) if c.signo != libc::SIGCHLD && c.sender != getpid().as_raw()
    )
}

/// After the command exited: SIGTERM (and SIGCONT, so a stopped one can act on it, as
/// systemd does) to every descendant left, SIGKILL to those still there after `grace`, or
/// at once on a second SIGTERM or SIGINT: one arriving during the grace, or the second
/// of those the init got since the command started (`stop_requests` while it ran, plus
/// those pending as it ended: a second one may come before the command is reaped).
/// Reaps all along. Returns when none is left (or, after SIGKILL, when the rest cannot be
/// killed: a process we may not signal).
fn clean_up(grace: Duration, stop_requests: u32, report: &Report) {
    if !reap(None).children_left {
        return;
    }
    let grace = if stop_requests.saturating_add(take_pending_stop_requests()) >= 2 {
        Duration::ZERO
    } else {
        grace
    };
    let me = getpid();
    if !proc_is_ours() {
        // Without our /proc we cannot tell descendants from strangers. As PID 1 every
        // other process of the namespace is one; otherwise leave them to the next init.
        if is_pid1() {
            let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            let _ = kill(Pid::from_raw(-1), Signal::SIGCONT);
            wait_gone(Instant::now() + grace, true);
            let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
            wait_gone(Instant::now() + KILL_WAIT, false);
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
                let _ = kill(pid, Signal::SIGCONT);
            }
        }
        if !reap(None).children_left {
            return;
        }
        let now = Instant::now();
        if now >= deadline || wait_or_hurry(deadline - now) {
            break;
        }
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

/// Reaps until no child is left or `deadline` passes (or, when `hurry`, a second
/// SIGTERM or SIGINT comes).
fn wait_gone(deadline: Instant, hurry: bool) {
    while reap(None).children_left {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let timeout = (deadline - now).min(KILL_POLL);
        if hurry {
            if wait_or_hurry(timeout) {
                return;
            }
        } else {
            let _ = sys::wait_signal(&sigchld(), Some(timeout));
        }
    }
}

fn sigchld() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set
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
