//! The namespace mechanics: `unshare`, the id maps, the same work in place (unprivileged;
//! root, with its way back and the holder of the user namespace that locks the masks) or
//! in a forked helper and its hand-off (`setns`).

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

use super::MountOp;
use super::mount::{Shown, apply, stage};
use super::plan::Plan;
use super::refusal::{Refusal, Step};

/// Applies the plan and moves this process into the result. On error, this process is
/// as it was, unless the refusal is marked `in_place` (see the module's description).
///
/// # Errors
/// The step the kernel refused.
pub(crate) fn enter(plan: &Plan) -> Result<(), Refusal> {
    if nix::unistd::geteuid().is_root() {
        if let Some(back) = Back::hold() {
            return enter_in_place_as_root(plan, &back);
        }
    } else if in_place_is_safe() {
        return enter_in_place(plan);
    }
    let (result, child) = start(plan, true)?;
    if result.is_ok() {
        // Released before this process joined its namespaces, the helper exits (its
        // copy of our memory torn down) while the launch goes on: reaped before the
        // exec ([`reap_helpers`]).
        leave_unreaped(child);
    } else {
        let _ = nix::sys::wait::waitpid(child, None);
    }
    result
}

/// Whether an unprivileged launch may build the namespace in this very process, without
/// the forked helper (the helper's fork and hand-off are most of the mask's cost).
/// Everything that refuses a user namespace outright (the sysctl limit, seccomp,
/// `RestrictNamespaces=`) refuses `unshare` itself, which leaves this process as it was.
/// The one known refusal that comes *after* a successful `unshare` — Ubuntu's AppArmor
/// restriction, where the new namespace has no capabilities and the id maps cannot be
/// written — would leave this process in an unusable namespace: there, the helper is
/// used.
fn in_place_is_safe() -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        Ok(v) => v.trim() == "0",
        Err(_) => true,
    }
}

/// The helper's work done here (unprivileged only). A refusal at `unshare` leaves this
/// process unchanged; a refusal after it is marked `in_place`: the process is then
/// in a namespace it cannot leave, so the launch must stop (125) even under `auto`.
fn enter_in_place(plan: &Plan) -> Result<(), Refusal> {
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    // The id maps are written through /proc/self, whose files are root's while this
    // process is not dumpable: dumpable for those few writes only. (A same-user process
    // that could ptrace us in that window could read the token file anyway.)
    let _ = nix::sys::prctl::set_dumpable(true);
    let result = match nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        Err(e) => Err((Step::Unshare, e, false)),
        Ok(()) => build(plan, false, uid, gid, true).map_err(|(step, e)| (step, e, true)),
    };
    crate::sys::set_non_dumpable();
    result.map_err(|(step, errno, in_place)| refused(plan, step, errno, in_place))
}

/// The way back to where this process was, for root's launch in place: its mount
/// namespace, root directory and working directory, held open before `unshare`.
struct Back {
    mnt: OwnedFd,
    root: OwnedFd,
    cwd: OwnedFd,
}

impl Back {
    /// `None` when this process could not go back (it is not in the initial user
    /// namespace, which owns every mount namespace or their owners, or lacks
    /// `CAP_SYS_ADMIN` or `CAP_SYS_CHROOT`), or when any cannot be opened: the helper is
    /// used then.
    fn hold() -> Option<Back> {
        const CAP_SYS_CHROOT: u32 = 18;
        const CAP_SYS_ADMIN: u32 = 21;
        // The initial user namespace's inode number (PROC_USER_INIT_INO).
        const INITIAL_USER_NS: &str = "user:[4026531837]";
        let needed = (1u64 << CAP_SYS_ADMIN) | (1u64 << CAP_SYS_CHROOT);
        if crate::sys::effective_capabilities()? & needed != needed
            || std::fs::read_link("/proc/self/ns/user").ok()?.as_os_str() != INITIAL_USER_NS
        {
            return None;
        }
        let open = |path: &str, flags: OFlag| {
            nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()).ok()
        };
        Some(Back {
            mnt: open("/proc/self/ns/mnt", OFlag::O_RDONLY)?,
            root: open("/", OFlag::O_PATH | OFlag::O_DIRECTORY)?,
            cwd: open(".", OFlag::O_PATH | OFlag::O_DIRECTORY)?,
        })
    }

    /// Back into the mount namespace held, with the root and working directory this
    /// process had (`setns` moves both to the namespace's root). The root is changed
    /// back only where it differs (a process in a chroot; the kernel refuses it a new
    /// user namespace, so the lock fails there and brings it here): a service whose
    /// seccomp filter refuses `chroot` (and `mount`) gets back without it.
    fn restore(&self) -> nix::Result<()> {
        nix::sched::setns(&self.mnt, CloneFlags::CLONE_NEWNS)?;
        let now = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let (here, held) = (where_it_is(&now)?, where_it_is(&self.root)?);
        // A mount id unknown (a kernel before 3.15 has none in fdinfo): changed back.
        if here != held || here.2.is_none() {
            nix::unistd::fchdir(&self.root)?;
            nix::unistd::chroot(".")?;
        }
        nix::unistd::fchdir(&self.cwd)
    }
}

/// Which directory of which mount an open directory is: its device and inode, and its
/// mount's id (from `/proc/self/fdinfo`; the same directory bound elsewhere is another
/// mount), `None` when it cannot be read.
fn where_it_is(fd: &OwnedFd) -> nix::Result<(u64, u64, Option<String>)> {
    use std::os::fd::AsRawFd;
    let st = nix::sys::stat::fstat(fd)?;
    let mnt_id = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("mnt_id:"))
                .map(|v| v.trim().to_owned())
        });
    #[allow(clippy::useless_conversion)]
    Ok((u64::from(st.st_dev), u64::from(st.st_ino), mnt_id))
}

/// Root's launch in this very process, without the forked helper: a new mount namespace
/// with the masks, then a new user namespace (all ids mapped to themselves) whose own
/// mount namespace copies it, so that the masks are locked as the helper's nested
/// namespace locks them. The user namespace is made by a holder that shares this
/// process's memory (its ids must be mapped by a process outside it), killed once joined.
/// Root can go back to the mount namespace it came from: a refusal before the user
/// namespace is joined leaves this process as it was (its root and working directory
/// too); one after it (or a failed way back) is marked `in_place`, and stops the launch.
fn enter_in_place_as_root(plan: &Plan, back: &Back) -> Result<(), Refusal> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| refusal(Step::Unshare, e))?;
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let result = build(plan, false, uid, gid, false)
        .map_err(|(step, e)| (step, e, false))
        .and_then(|()| lock_in_place());
    result.map_err(|(step, errno, joined)| {
        refused(plan, step, errno, joined || back.restore().is_err())
    })
}

/// The lock of root's launch in place: the holder's user namespace mapped and joined,
/// then a mount namespace of its own. `true` with an error once the user namespace is
/// joined (there is no way back from it).
fn lock_in_place() -> std::result::Result<(), (Step, Errno, bool)> {
    let child = crate::sys::spawn_userns_holder().map_err(|e| (Step::Lock, e, false))?;
    let proc_dir = PathBuf::from(format!("/proc/{child}"));
    let result = (|| {
        for (file, step) in [("uid_map", Step::UidMap), ("gid_map", Step::GidMap)] {
            let own = std::fs::read_to_string(Path::new("/proc/self").join(file))
                .map_err(|e| (step, io_errno(&e), false))?;
            std::fs::write(proc_dir.join(file), identity_map(&own))
                .map_err(|e| (step, io_errno(&e), false))?;
        }
        let user = nix::fcntl::open(
            &proc_dir.join("ns/user"),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| (Step::Join, e, false))?;
        nix::sched::setns(&user, CloneFlags::CLONE_NEWUSER).map_err(|e| (Step::Join, e, false))?;
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| (Step::Lock, e, true))
    })();
    // Killed now, it is reaped before the exec ([`reap_helpers`]).
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    leave_unreaped(child);
    result
}

/// Whether the plan can be applied here: the same work in a forked helper, which this
/// process does not join (for `--dry-run` and `doctor`).
///
/// # Errors
/// The step the kernel refused.
pub(crate) fn probe(plan: &Plan) -> Result<(), Refusal> {
    run(&as_probed(plan), false)
}

/// The plan as a probe can try it before the launch makes anything: the read-only views
/// of shared copies that are not in the scratch home yet (the launch copies them in
/// after the probe) are left out; every other op is on a path that exists.
fn as_probed(plan: &Plan) -> Plan {
    let mut probed = plan.clone();
    probed.ops.retain(|op| {
        !matches!(op, super::MountOp::ReadOnly { .. })
            || std::fs::symlink_metadata(op.path()).is_ok()
    });
    probed
}

/// Whether the plan can be applied here, for a launch under `--mask on` before anything
/// changes: the whole plan (namespaces, id maps, every mount and view) tried in a forked
/// helper this process does not join, so a refusal of any step comes before the home is
/// made. Unlike [`probe`], the helper is not waited for here: released, it exits while
/// the launch goes on, and `enter_as` reaps it before anything is executed.
///
/// # Errors
/// The step the kernel refused.
pub(crate) fn probe_for_launch(plan: &Plan) -> Result<(), Refusal> {
    let (result, child) = start(&as_probed(plan), false)?;
    if result.is_ok() {
        // Released, it exits (its namespaces torn down) while the launch goes on: reaped
        // in `enter_as`, before anything is executed.
        leave_unreaped(child);
    } else {
        let _ = nix::sys::wait::waitpid(child, None);
    }
    result
}

/// Helpers released but not yet reaped: the probe's, and the one whose namespaces this
/// process joined.
static UNREAPED: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// Keeps a released helper to reap later (at once when the list cannot be had).
fn leave_unreaped(child: Pid) {
    match UNREAPED.lock() {
        Ok(mut unreaped) => unreaped.push(child),
        Err(_) => drop(nix::sys::wait::waitpid(
            child,
            Some(nix::sys::wait::WaitPidFlag::__WALL),
        )),
    }
}

/// Reaps the helpers released earlier (gone by now, or about to be): the command must
/// not inherit them as children. The launch calls it right before the exec.
pub(crate) fn reap_helpers() {
    let children = UNREAPED
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    for child in children {
        // __WALL: the user-namespace holder has no exit signal (a "clone" child).
        let _ = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::__WALL));
    }
}

/// The refusal of `step`, naming the path of the plan's op when a mount was refused.
fn refused(plan: &Plan, step: Step, errno: Errno, in_place: bool) -> Refusal {
    Refusal {
        step,
        errno,
        path: match step {
            Step::Mount(i) => plan.ops.get(i).map(|op| op.path().to_owned()),
            _ => None,
        },
        in_place,
    }
}

fn refusal(step: Step, errno: Errno) -> Refusal {
    Refusal {
        step,
        errno,
        path: None,
        in_place: false,
    }
}

/// A message from the helper: 0 = ready, else the step (1-based code), errno, index.
const MSG_LEN: usize = 12;

fn encode(r: std::result::Result<(), (Step, Errno)>) -> [u8; MSG_LEN] {
    let (code, errno, index): (u32, i32, u32) = match r {
        Ok(()) => (0, 0, 0),
        Err((step, e)) => {
            let (code, index) = match step {
                Step::Fork => (1, 0),
                Step::Unshare => (2, 0),
                Step::Setgroups => (3, 0),
                Step::UidMap => (4, 0),
                Step::GidMap => (5, 0),
                Step::Private => (6, 0),
                Step::Staging => (7, 0),
                Step::Mount(i) => (8, u32::try_from(i).unwrap_or(u32::MAX)),
                Step::Lock => (9, 0),
                Step::Join => (10, 0),
                Step::Helper => (11, 0),
                Step::Proc => (12, 0),
            };
            (code, e as i32, index)
        }
    };
    let mut out = [0u8; MSG_LEN];
    out[..4].copy_from_slice(&code.to_ne_bytes());
    out[4..8].copy_from_slice(&errno.to_ne_bytes());
    out[8..].copy_from_slice(&index.to_ne_bytes());
    out
}

fn decode(msg: &[u8; MSG_LEN], plan: &Plan) -> Result<(), Refusal> {
    let word = |i: usize| u32::from_ne_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
    let errno = Errno::from_raw(i32::from_ne_bytes(msg[4..8].try_into().expect("4 bytes")));
    let index = word(8) as usize;
    let step = match word(0) {
        0 => return Ok(()),
        1 => Step::Fork,
        2 => Step::Unshare,
        3 => Step::Setgroups,
        4 => Step::UidMap,
        5 => Step::GidMap,
        6 => Step::Private,
        7 => Step::Staging,
        8 => Step::Mount(index),
        9 => Step::Lock,
        10 => Step::Join,
        12 => Step::Proc,
        _ => Step::Helper,
    };
    Err(refused(plan, step, errno, false))
}

fn run(plan: &Plan, join: bool) -> Result<(), Refusal> {
    let (result, child) = start(plan, join)?;
    let _ = nix::sys::wait::waitpid(child, None);
    result
}

/// Forks the helper and takes its answer (and, with `join`, its namespaces). The helper
/// is released (it exits at once) but not reaped: the caller waits for it.
fn start(plan: &Plan, join: bool) -> Result<(Result<(), Refusal>, Pid), Refusal> {
    let root = nix::unistd::geteuid().is_root();
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let (report_r, report_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| refusal(Step::Fork, e))?;
    let (release_r, release_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| refusal(Step::Fork, e))?;
    let child = match crate::sys::fork().map_err(|e| refusal(Step::Fork, e))? {
        ForkResult::Child => {
            drop(report_r);
            drop(release_w);
            let result = helper(plan, root, uid, gid);
            let ok = result.is_ok();
            let _ = nix::unistd::write(&report_w, &encode(result));
            if ok {
                // Keep the namespaces alive until the parent has joined them (or the
                // parent died: EOF either way).
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&release_r, &mut b);
            }
            crate::sys::exit_now(i32::from(!ok))
        }
        ForkResult::Parent { child } => child,
    };
    drop(report_w);
    drop(release_r);
    let result = parent(plan, child, root, join, &report_r, release_w);
    Ok((result, child))
}

/// This process's side: wait for the helper, then (root) map its namespace's ids and
/// (`join`) enter its namespaces.
fn parent(
    plan: &Plan,
    child: Pid,
    root: bool,
    join: bool,
    report: &OwnedFd,
    release: OwnedFd,
) -> Result<(), Refusal> {
    let mut msg = [0u8; MSG_LEN];
    let mut got = 0;
    while got < MSG_LEN {
        match nix::unistd::read(report, &mut msg[got..]) {
            Ok(0) => return Err(refusal(Step::Helper, Errno::EPIPE)),
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(refusal(Step::Helper, e)),
        }
    }
    decode(&msg, plan)?;
    let proc_dir = PathBuf::from(format!("/proc/{child}"));
    if root {
        // Every id we have maps to itself: root stays root for files, other users stay
        // who they are (the helper, inside the new namespace, could map only itself).
        for (file, step) in [("uid_map", Step::UidMap), ("gid_map", Step::GidMap)] {
            let own = std::fs::read_to_string(Path::new("/proc/self").join(file))
                .map_err(|e| refusal(step, io_errno(&e)))?;
            std::fs::write(proc_dir.join(file), identity_map(&own))
                .map_err(|e| refusal(step, io_errno(&e)))?;
        }
    }
    if !join {
        return Ok(());
    }
    let open_ns = |name: &str| {
        nix::fcntl::open(
            &proc_dir.join("ns").join(name),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| refusal(Step::Join, e))
    };
    let user = open_ns("user")?;
    let mnt = open_ns("mnt")?;
    // The descriptors keep the namespaces alive: the helper may go (its exit, the
    // teardown of its copy of our memory, then overlaps with the joining and the rest of
    // the launch).
    drop(release);
    nix::sched::setns(&user, CloneFlags::CLONE_NEWUSER).map_err(|e| refusal(Step::Join, e))?;
    nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| refusal(Step::Join, e))?;
    Ok(())
}

/// The identity map of every id this namespace has, from its own `uid_map`/`gid_map`
/// (`inside outside count` lines): `inside inside count` each. In the initial namespace
/// that is `0 0 4294967295`; under `unshare -r` it is `0 0 1`.
fn identity_map(own: &str) -> String {
    own.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| format!("{} {} {}\n", f[0], f[0], f[2]))
        })
        .collect()
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// The helper's side, in the forked child: build the namespace and the masks.
fn helper(
    plan: &Plan,
    root: bool,
    uid_raw: u32,
    gid_raw: u32,
) -> std::result::Result<(), (Step, Errno)> {
    if root {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| (Step::Unshare, e))?;
    } else {
        // Our /proc files are root's while we are not dumpable, and the maps below are
        // written through them. The helper holds no secret the user's own processes
        // could not read anyway (they can read the env file).
        let _ = nix::sys::prctl::set_dumpable(true);
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| (Step::Unshare, e))?;
    }
    build(plan, root, uid_raw, gid_raw, !root)
}

/// Everything after `unshare`: (unprivileged, `maps`) the id maps, `/` private, the
/// staging tmpfs, every mount of the plan, and (root) the nested namespace that locks
/// them.
fn build(
    plan: &Plan,
    root: bool,
    uid_raw: u32,
    gid_raw: u32,
    maps: bool,
) -> std::result::Result<(), (Step, Errno)> {
    if maps {
        write_proc("/proc/self/setgroups", "deny").map_err(|e| (Step::Setgroups, e))?;
        write_proc("/proc/self/uid_map", &format!("{uid_raw} {uid_raw} 1"))
            .map_err(|e| (Step::UidMap, e))?;
        write_proc("/proc/self/gid_map", &format!("{gid_raw} {gid_raw} 1"))
            .map_err(|e| (Step::GidMap, e))?;
    }
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| (Step::Private, e))?;

    // Where the scratch home and the working directory really are, before any mount
    // covers them.
    let mut keep: Vec<Option<OwnedFd>> = Vec::with_capacity(plan.ops.len());
    for (i, op) in plan.ops.iter().enumerate() {
        keep.push(match op {
            MountOp::Writable { path } | MountOp::Reveal { path } => Some(
                nix::fcntl::open(
                    path,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| (Step::Mount(i), e))?,
            ),
            _ => None,
        });
    }

    // The staging tmpfs is made when the first empty mask needs it (after the views:
    // no op touches the staging directory), and not at all when the views already show
    // every place to empty.
    let mut staged = None;
    let mut shown = Shown::default();
    for (i, op) in plan.ops.iter().enumerate() {
        if shown.makes_redundant(op, &plan.ops) {
            continue;
        }
        if let (MountOp::Empty { .. }, None, Some(dir)) = (op, &staged, &plan.staging) {
            staged = Some(stage(dir, &plan.ops).map_err(|e| (Step::Staging, e))?);
        }
        if apply(op, staged.as_ref(), keep[i].as_ref()).map_err(|e| (Step::Mount(i), e))? {
            shown.record(op);
        }
    }
    if let (Some(_), Some(dir)) = (&staged, &plan.staging) {
        nix::mount::umount2(dir, MntFlags::MNT_DETACH).map_err(|e| (Step::Staging, e))?;
    }
    if root {
        // Root keeps its capabilities after execve: lock the masks by moving into a
        // less privileged namespace (the parent writes its id maps).
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| (Step::Lock, e))?;
    }
    Ok(())
}

fn write_proc(path: &str, text: &str) -> nix::Result<()> {
    std::fs::write(path, text).map_err(|e| io_errno(&e))
}

#[cfg(test)]
mod tests {
    use super::super::Kind::{self, File};
    use super::*;

    fn empty(p: &str, kind: Kind) -> MountOp {
        MountOp::Empty {
            path: p.into(),
            kind,
        }
    }

    #[test]
    fn identity_maps() {
        assert_eq!(
            identity_map("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(identity_map("0 1001 1\n"), "0 0 1\n");
        assert_eq!(
            identity_map("0 100000 1000\n1000 1001 1\n"),
            "0 0 1000\n1000 1000 1\n"
        );
    }

    #[test]
    fn messages_round_trip() {
        let plan = Plan {
            ops: vec![empty("/a", File)],
            staging: None,
        };
        assert_eq!(decode(&encode(Ok(())), &plan), Ok(()));
        let r = decode(&encode(Err((Step::Mount(0), Errno::EPERM))), &plan).unwrap_err();
        assert_eq!(r.step, Step::Mount(0));
        assert_eq!(r.errno, Errno::EPERM);
        assert_eq!(r.path.as_deref(), Some(Path::new("/a")));
        let r = decode(&encode(Err((Step::Unshare, Errno::ENOSPC))), &plan).unwrap_err();
        assert!(r.reason().contains("max_user_namespaces"), "{}", r.reason());
        assert!(r.fix().contains("sysctl"));
    }
}
