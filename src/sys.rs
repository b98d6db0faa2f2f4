//! Every `unsafe` call of claude-iso lives here, each in a small function with a
//! `// SAFETY:` comment. The rest of the crate forbids `unsafe`.
//!
//! claude-iso is single-threaded from start to `execve` (no thread is ever spawned on the
//! launch path), which is what makes `fork` and the signal-disposition changes sound.

#![allow(unsafe_code)]

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
pub fn default_sigpipe() {
    // SAFETY: single-threaded at this point, and SIG_DFL installs no Rust handler that
    // could observe inconsistent state.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Ignores SIGPIPE again, as Rust's runtime had it: called when `execve` failed, so the
/// one line we then print to a stderr nobody reads fails with `EPIPE` instead of killing
/// us (the exit status must stay 126/127).
pub fn ignore_sigpipe() {
    // SAFETY: single-threaded at this point, and SIG_IGN installs no Rust handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// `fork(2)`.
///
/// # Errors
/// As `fork(2)` (`EAGAIN`, `ENOMEM`).
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: claude-iso is single-threaded whenever it forks (no thread is spawned on
    // the launch path), so the child cannot inherit a lock held by another thread; the
    // child only runs code that the parent would run too before `execve` or `_exit`.
    unsafe { nix::unistd::fork() }
}

/// No core file, and no same-user ptrace or `/proc/<pid>/mem` read of this process: the
/// token is in its memory. Reset by the kernel at `execve` for the command (which is
/// dumpable as usual), so it protects claude-iso only. Failure is ignored: on a kernel
/// without `prctl` there is nothing better to do.
pub fn set_non_dumpable() {
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Sets the disposition of `sig` to `SIG_DFL` and returns the previous one, for a child
/// to put back ([`restore_disposition`]). The init needs `SIGCHLD` at its default: an
/// inherited `SIG_IGN` would make the kernel reap the command behind its back and lose
/// its exit status.
///
/// # Errors
/// As `sigaction(2)` (`EINVAL` for `SIGKILL`/`SIGSTOP`).
pub fn default_disposition(sig: Signal) -> nix::Result<SigAction> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: single-threaded at this point, and SIG_DFL installs no handler code.
    unsafe { nix::sys::signal::sigaction(sig, &dfl) }
}

/// Puts back a disposition returned by [`default_disposition`] (in the child, before it
/// goes on to `execve`, so the command inherits what claude-iso inherited).
pub fn restore_disposition(sig: Signal, old: &SigAction) {
    // SAFETY: single-threaded; `old` is what `sigaction` reported for this signal in this
    // process image. claude-iso installs no signal handlers, so it is SIG_DFL or SIG_IGN
    // (handlers do not survive the `execve` that started us): no handler code can run.
    let _ = unsafe { nix::sys::signal::sigaction(sig, old) };
}

/// A signal taken off the pending set by [`wait_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    pub signal: Signal,
    /// `si_code`: who sent it (`SI_USER` for `kill(2)`, `SI_KERNEL` for the terminal
    /// driver, `CLD_*` for `SIGCHLD`).
    pub code: i32,
}

/// `sigtimedwait(2)`: takes one signal of `set` (which must be blocked) off the pending
/// set, waiting at most `timeout` (`None`: until one comes). `Ok(None)` when the time ran
/// out.
///
/// # Errors
/// `EINTR` when a signal outside `set` interrupted the wait.
pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> nix::Result<Option<Caught>> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
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
    Ok(Some(Caught {
        signal: Signal::try_from(rc)?,
        code: info.si_code,
    }))
}

// The C runtime's environment block (glibc and musl both export it).
unsafe extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrites with NUL bytes, in this process's own environment block, the value of
/// every variable named in `names` (`NAME=secret` becomes `NAME=` followed by NULs, in
/// place: the memory `/proc/<pid>/environ` shows). For the init after the fork: the
/// command got its copy, the init needs none.
pub fn wipe_environ_values(names: &[&[u8]]) {
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
pub fn close_from(first: RawFd) {
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
pub fn detach_stdio() {
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
pub fn close_all_but(keep: RawFd) {
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

/// `_exit(2)`: ends a forked helper without running the parent's exit handlers or
/// flushing buffers it inherited (which the parent flushes itself).
pub fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and never returns; skipping atexit handlers and
    // stdio flushing is the point (they belong to the parent).
    unsafe { nix::libc::_exit(status) }
}
