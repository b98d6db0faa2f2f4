//! Every `unsafe` call of claude-iso lives here, each in a small function with a
//! `// SAFETY:` comment. The rest of the crate forbids `unsafe`.
//!
//! claude-iso is single-threaded from start to `execve` (no thread is ever spawned on the
//! launch path), which is what makes `fork` and the signal-disposition changes sound.

#![allow(unsafe_code)]

pub(crate) mod fsutil;
pub(crate) mod proc;
pub(crate) mod time;

use std::os::fd::RawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, signal};
use nix::unistd::ForkResult;

/// Rust's runtime starts with SIGPIPE ignored (so our own writes to a closed pipe fail
/// instead of killing us), and an ignored signal stays ignored across `execve`: the
/// command, and every pipeline it runs, would not die of a broken pipe as it does when
/// run directly. Restores the default; called just before the exec.
pub(crate) fn default_sigpipe() {
    // SAFETY: single-threaded at this point, and SIG_DFL installs no Rust handler that
    // could observe inconsistent state.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Ignores SIGPIPE again, as Rust's runtime had it: called when `execve` failed, so the
/// one line we then print to a stderr nobody reads fails with `EPIPE` instead of killing
/// us (the exit status must stay 126/127).
pub(crate) fn ignore_sigpipe() {
    // SAFETY: single-threaded at this point, and SIG_IGN installs no Rust handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// `fork(2)`.
///
/// # Errors
/// As `fork(2)` (`EAGAIN`, `ENOMEM`).
pub(crate) fn fork() -> nix::Result<ForkResult> {
    // SAFETY: claude-iso is single-threaded whenever it forks (no thread is spawned on
    // the launch path), so the child cannot inherit a lock held by another thread; the
    // child only runs code that the parent would run too before `execve` or `_exit`.
    unsafe { nix::unistd::fork() }
}

/// No core file, and no same-user ptrace or `/proc/<pid>/mem` read of this process: the
/// token is in its memory. Reset by the kernel at `execve` for the command (which is
/// dumpable as usual), so it protects claude-iso only. Failure is ignored: on a kernel
/// without `prctl` there is nothing better to do.
pub(crate) fn set_non_dumpable() {
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Sets the disposition of `sig` to `SIG_DFL` and returns the previous one, for a child
/// to put back ([`restore_disposition`]). The init needs `SIGCHLD` at its default: an
/// inherited `SIG_IGN` would make the kernel reap the command behind its back and lose
/// its exit status.
///
/// # Errors
/// As `sigaction(2)` (`EINVAL` for `SIGKILL`/`SIGSTOP`).
pub(crate) fn default_disposition(sig: Signal) -> nix::Result<SigAction> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: single-threaded at this point, and SIG_DFL installs no handler code.
    unsafe { nix::sys::signal::sigaction(sig, &dfl) }
}

/// Puts back a disposition returned by [`default_disposition`] (in the child, before it
/// goes on to `execve`, so the command inherits what claude-iso inherited).
pub(crate) fn restore_disposition(sig: Signal, old: &SigAction) {
    // SAFETY: single-threaded; `old` is what `sigaction` reported for this signal in this
    // process image. claude-iso installs no signal handlers, so it is SIG_DFL or SIG_IGN
    // (handlers do not survive the `execve` that started us): no handler code can run.
    let _ = unsafe { nix::sys::signal::sigaction(sig, old) };
}

/// A signal taken off the pending set by [`wait_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caught {
    /// The signal's number: a raw one, since nix's `Signal` has no real-time signals.
    pub signo: i32,
    /// `si_code`: who sent it (`SI_USER` for `kill(2)`, `SI_KERNEL` for the terminal
    /// driver, `CLD_*` for `SIGCHLD`).
    pub code: i32,
    /// `si_pid`: the sender, for a signal sent with `kill(2)`, `sigqueue(3)` or
    /// `tgkill(2)` (`SI_USER`, `SI_QUEUE`, `SI_TKILL`); 0 otherwise.
    pub sender: i32,
}

/// `sigtimedwait(2)`: takes one signal of `set` (which must be blocked) off the pending
/// set, waiting at most `timeout` (`None`: until one comes). `Ok(None)` when the time ran
/// out.
///
/// # Errors
/// `EINTR` when a signal outside `set` interrupted the wait.
pub(crate) fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> nix::Result<Option<Caught>> {
    let ts = timeout.map(|d| libc::timespec {
        // Capped at 68 years, which fits any time_t.
        tv_sec: d
            .as_secs()
            .min(i32::MAX as u64)
            .try_into()
            .unwrap_or_default(),
        tv_nsec: d.subsec_nanos().into(),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `set` is a valid sigset_t, `info` points to writable storage for one
    // siginfo_t, and `ts_ptr` is null or points to a timespec that outlives the call.
    let rc = unsafe { libc::sigtimedwait(set.as_ref(), info.as_mut_ptr(), ts_ptr) };
    if rc < 0 {
        return match Errno::last() {
            Errno::EAGAIN => Ok(None),
            e => Err(e),
        };
    }
    // SAFETY: zero-initialised, and filled in by the kernel on success.
    let info = unsafe { info.assume_init() };
    let sender = if matches!(
        info.si_code,
        libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL
    ) {
        // SAFETY: for these codes the kernel filled in the `kill` layout, whose first
        // field is `si_pid`.
        unsafe { info.si_pid() }
    } else {
        0
    };
    Ok(Some(Caught {
        signo: rc,
        code: info.si_code,
        sender,
    }))
}

/// `kill(2)` with a raw signal number (nix's `Signal` has no real-time signals). A
/// negative `pid` names a process group.
///
/// # Errors
/// As `kill(2)` (`ESRCH`: no such process or group; `EPERM`).
pub(crate) fn send_signal(pid: i32, signo: i32) -> nix::Result<()> {
    // SAFETY: kill takes no pointers.
    let rc = unsafe { libc::kill(pid, signo) };
    Errno::result(rc).map(drop)
}

/// How a child changed, from `waitpid(2)`'s raw status (nix's decoding fails, after the
/// child was reaped, on a death by a real-time signal, and its status would be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Stopped by this signal (`WUNTRACED`).
    Stopped(i32),
    /// Continued (`WCONTINUED`).
    Continued,
}

/// `waitpid(2)` on any child, without blocking, reporting stops and continues too.
/// `Ok(None)`: children are left, none has changed.
///
/// # Errors
/// As `waitpid(2)` (`ECHILD`: no child left; `EINTR`).
pub(crate) fn wait_child() -> nix::Result<Option<(i32, ChildState)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable int for the call's duration.
    let pid = unsafe {
        libc::waitpid(
            -1,
            &raw mut status,
            libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED,
        )
    };
    let pid = Errno::result(pid)?;
    if pid == 0 {
        return Ok(None);
    }
    let state = if libc::WIFEXITED(status) {
        ChildState::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ChildState::Signaled(libc::WTERMSIG(status))
    } else if libc::WIFSTOPPED(status) {
        ChildState::Stopped(libc::WSTOPSIG(status))
    } else {
        ChildState::Continued
    };
    Ok(Some((pid, state)))
}

/// A signal set holding `signo` alone.
fn one_signal(signo: i32) -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is writable storage for one sigset_t, initialised by sigemptyset
    // before sigaddset reads it (an invalid `signo` makes sigaddset fail, harmlessly).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), signo);
        set.assume_init()
    }
}

/// Sets `signo` to its default action, returning the old one (for [`put_action_back`]).
fn default_action(signo: i32) -> libc::sigaction {
    // SAFETY: both pointers are to valid sigaction structs for the call's duration;
    // SIG_DFL installs no handler code. Single-threaded (the init).
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signo, &raw const dfl, &raw mut old);
        old
    }
}

fn put_action_back(signo: i32, old: &libc::sigaction) {
    // SAFETY: `old` is what sigaction reported for this signal in this process image.
    unsafe { libc::sigaction(signo, old, std::ptr::null_mut()) };
}

/// Ends this process with the signal `signo`, as its default action does (so its
/// parent sees a death by that signal, as it would have seen the command's): the action
/// is reset to the default (Rust's runtime handles SIGSEGV and SIGBUS itself), the
/// signal sent and then unblocked. Returns only when that did not end the process (a
/// signal whose default action is not to terminate, or PID 1, which the kernel keeps
/// from dying of its own signals).
pub(crate) fn die_of_signal(signo: i32) {
    let _ = default_action(signo);
    let set = one_signal(signo);
    // SAFETY: kill takes no pointers; `set` is a valid sigset_t for the call.
    unsafe {
        libc::kill(libc::getpid(), signo);
        libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
    }
}

/// Stops this process with the stop signal `signo` (SIGTSTP, SIGTTIN or SIGTTOU; it is
/// blocked in the init), the way the command stopped, and returns once it is continued.
/// Returns `false` when the kernel did not stop it: it discards these signals for a
/// process group that nobody could continue (an orphaned group, POSIX), and for PID 1.
/// A stop is told from that by the SIGCONT left pending (blocked) by the continue: the
/// stop signal itself removes any SIGCONT pending before it (`prepare_signal` in the
/// kernel), so one found after came with the continue.
pub(crate) fn stop_self(signo: i32) -> bool {
    let old = default_action(signo);
    let set = one_signal(signo);
    // SAFETY: kill takes no pointers; `set` is a valid sigset_t for each call. The stop
    // happens when the unblocked signal is delivered, on return from the first
    // sigprocmask; the second runs once continued.
    unsafe {
        libc::kill(libc::getpid(), signo);
        libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
        libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
    }
    put_action_back(signo, &old);
    let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `pending` is writable storage for one sigset_t, filled by sigpending
    // before sigismember reads it.
    unsafe {
        libc::sigpending(pending.as_mut_ptr()) == 0
            && libc::sigismember(pending.as_ptr(), libc::SIGCONT) == 1
    }
}

// The C runtime's environment block (glibc and musl both export it).
unsafe extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrites with NUL bytes, in this process's own environment block, the value of
/// every variable named in `names` (`NAME=secret` becomes `NAME=` followed by NULs, in
/// place: the memory `/proc/<pid>/environ` shows). For the init after the fork: the
/// command got its copy, the init needs none.
pub(crate) fn wipe_environ_values(names: &[&[u8]]) {
    // SAFETY: single-threaded, so nothing reads or changes the environment meanwhile;
    // `environ` is null or a null-terminated array of NUL-terminated strings owned by the
    // C runtime and writable (the initial block on our stack, or setenv's heap copies).
    // We write only bytes before each string's terminating NUL and never change the
    // array. Rust's std holds no reference into these strings (`vars_os` copies).
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let s = *entry;
            let bytes = std::slice::from_raw_parts_mut(s.cast::<u8>(), libc::strlen(s));
            if let Some(eq) = bytes.iter().position(|b| *b == b'=') {
                if names.contains(&&bytes[..eq]) {
                    bytes[eq + 1..].fill(0);
                }
            }
            entry = entry.add(1);
        }
    }
}

/// Closes every descriptor from `first` up (`close_range(2)`, or one by one from
/// `/proc/self/fd` on kernels before 5.9). Only for a process in which no live object
/// owns such a descriptor: the init right after the fork, which keeps nothing the
/// caller passed (a token pipe, a pipe whose reader waits for end-of-file).
pub(crate) fn close_from(first: RawFd) {
    let Ok(first_u) = libc::c_uint::try_from(first) else {
        return;
    };
    // SAFETY: close_range only closes descriptors; the caller owns none of them (above).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first_u, libc::c_uint::MAX, 0) };
    if rc == 0 {
        return;
    }
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd >= first)
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        // SAFETY: as above; the directory's own descriptor is already closed (EBADF).
        unsafe { libc::close(fd) };
    }
}

/// Points stdin, stdout and stderr at `/dev/null`: for the broker, which must neither
/// read the terminal nor write into claude's screen.
pub(crate) fn detach_stdio() {
    use std::os::fd::AsRawFd;
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which no Rust object owns (std's
        // stdio handles only refer to the numbers); `null` stays valid for the call.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

/// Closes every descriptor from 3 up except `keep`: for the broker right after the
/// fork, which keeps its listening socket and nothing the caller passed.
pub(crate) fn close_all_but(keep: RawFd) {
    if keep > 3 {
        if let (Ok(first), Ok(last)) = (libc::c_uint::try_from(3), libc::c_uint::try_from(keep - 1))
        {
            // SAFETY: only closes descriptors below `keep`, which the broker owns none of
            // (the listener is `keep`; nothing else was opened since the fork).
            let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
            if rc != 0 {
                for fd in 3..keep {
                    // SAFETY: as above, one at a time on kernels before 5.9.
                    unsafe { libc::close(fd) };
                }
            }
        }
    }
    close_from(keep.max(2) + 1);
}

/// The listening Unix socket systemd passed by socket activation: descriptor 3, when
/// `LISTEN_PID` names this process and `LISTEN_FDS` is at least 1, and only when it is
/// a listening stream socket of the Unix family.
#[must_use]
pub(crate) fn systemd_listener(
    listen_pid: Option<&std::ffi::OsStr>,
    listen_fds: Option<&std::ffi::OsStr>,
) -> Option<std::os::unix::net::UnixListener> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    let pid: u32 = listen_pid?.to_str()?.parse().ok()?;
    let fds: u32 = listen_fds?.to_str()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: descriptor 3 is only borrowed for the two checks below; if it is not open,
    // getsockopt fails with EBADF and nothing else happens.
    let fd = unsafe { BorrowedFd::borrow_raw(3) };
    let listening =
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::AcceptConn).unwrap_or(false);
    let unix = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(3).is_ok();
    if !(listening && unix) {
        return None;
    }
    // SAFETY: systemd passed descriptor 3 to this process (LISTEN_PID) for it to own, it
    // is an open listening Unix stream socket (checked above), and nothing else in this
    // process owns it.
    Some(unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) })
}

/// `renameat2(2)` with `RENAME_NOREPLACE`: renames `old` (in `old_dir`) to `new` (in
/// `new_dir`) unless `new` exists. By system call, so that it is there whatever the C
/// library (nix offers it for glibc only).
///
/// # Errors
/// `EEXIST` when `new` exists; `EINVAL` where the filesystem cannot do it; any error of
/// `rename(2)`.
pub(crate) fn rename_noreplace<P1, P2>(
    old_dir: &impl std::os::fd::AsFd,
    old: &P1,
    new_dir: &impl std::os::fd::AsFd,
    new: &P2,
) -> nix::Result<()>
where
    P1: ?Sized + nix::NixPath,
    P2: ?Sized + nix::NixPath,
{
    use std::os::fd::AsRawFd;
    let (from, to) = (old_dir.as_fd().as_raw_fd(), new_dir.as_fd().as_raw_fd());
    let rc = old.with_nix_path(|old| {
        new.with_nix_path(|new| {
            // SAFETY: both paths are NUL-terminated C strings alive for the call, and the
            // descriptors are open (borrowed from `AsFd`); renameat2 takes nothing else.
            unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    from,
                    old.as_ptr(),
                    to,
                    new.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            }
        })
    })??;
    Errno::result(rc).map(drop)
}

/// This process's effective capabilities (bit `n` is capability `n`), by `capget(2)`;
/// `None` when the call fails.
pub(crate) fn effective_capabilities() -> Option<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes the header it is given and two `Data` words for version 3,
    // both valid for writes for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    (rc == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// The holder's stack: it only ever runs the two system calls of [`hold`].
const HOLDER_STACK: usize = 16 * 1024;

/// What a user-namespace holder runs: wait, every signal blocked since its birth, until
/// it is killed; should the wait ever return (a seccomp filter refusing `ppoll`), exit.
/// It shares this process's memory (`CLONE_VM`) and its thread-local storage, so it
/// touches nothing but its own stack: raw system calls, `ppoll` with no descriptors and
/// no timeout (present on every architecture, unlike `pause`). Only a failing call would
/// write `errno`, once, before the holder exits.
extern "C" fn hold(_: *mut libc::c_void) -> libc::c_int {
    // SAFETY: ppoll with no descriptors, no timeout and no signal mask reads no memory;
    // exit takes an integer and does not return.
    unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            std::ptr::null_mut::<libc::pollfd>(),
            0,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<libc::sigset_t>(),
            0,
        );
        libc::syscall(libc::SYS_exit, 0);
    }
    0
}

/// Starts a process in a new user namespace (owned by this process's user, its parent
/// this process's namespace), which only waits to be killed: its id maps can then be
/// written from here (by a process of the parent namespace, so any ids this process has
/// may be mapped) and its namespace joined. It shares this process's memory instead of
/// copying it (`clone(CLONE_VM)`: no page tables copied, nothing torn down when it
/// goes). It is born with every signal blocked (none can run a handler in it), and
/// with no exit signal: the kernel never reaps it on its own (even with `SIGCHLD`
/// ignored), so its PID names it until it is reaped, and this process is sent no
/// `SIGCHLD` for it. The caller kills it (`SIGKILL`) and reaps it (`__WALL`) before
/// anything is executed.
///
/// # Errors
/// As `clone(2)` with `CLONE_NEWUSER` (`EPERM`, `ENOSPC`, `EUSERS`, `EINVAL`, `ENOMEM`).
pub(crate) fn spawn_userns_holder() -> nix::Result<nix::unistd::Pid> {
    // The stack stays allocated until this process executes or exits (the holder is
    // killed and reaped before either): leaked, 16 KiB once per launch.
    let stack: &'static mut [u8] = Box::leak(vec![0u8; HOLDER_STACK].into_boxed_slice());
    // Stacks grow down on every architecture Linux runs Rust on; 16-byte aligned.
    let top = stack.as_mut_ptr_range().end as usize & !15;
    // Every signal, by the system call itself: glibc's sigprocmask leaves out the two
    // it keeps for itself (32 and 33), which would then stay deliverable to the holder.
    let all: u64 = u64::MAX;
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask reads the set given and writes the old one, both u64s on
    // this stack (the kernel's sigset is 8 bytes), and takes nothing else.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const all,
            &raw mut old,
            std::mem::size_of::<u64>(),
        )
    })?;
    // SAFETY: `hold` runs on its own stack (leaked above, never reused) and touches
    // nothing of this process's memory (see `hold`). Without CLONE_THREAD or
    // CLONE_SETTLS it is another process; the flags ask for nothing else shared. Its
    // signal mask (all blocked) is set here around the call and put back after it.
    let pid = unsafe {
        libc::clone(
            hold,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_NEWUSER,
            std::ptr::null_mut(),
        )
    };
    // SAFETY: as above; the mask this process had is put back (it cannot fail with the
    // set it returned, and the holder must be returned, to be killed, whatever happens).
    let _ = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const old,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        )
    };
    Errno::result(pid).map(nix::unistd::Pid::from_raw)
}

/// `_exit(2)`: ends a forked helper without running the parent's exit handlers or
/// flushing buffers it inherited (which the parent flushes itself).
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and never returns; skipping atexit handlers and
    // stdio flushing is the point (they belong to the parent).
    unsafe { nix::libc::_exit(status) }
}
