//! Every operating-system call multiproc makes lives here.
//!
//! The rest of the crate speaks in terms of [`OwnedFd`], [`Duration`] and small enums; only this
//! module knows about `libc`, `rustix`, `fork`, `posix_spawn`, pidfds and `SCM_RIGHTS`. Linux
//! (x86_64 first) is the supported platform: a port to another Unix replaces this module (pidfds
//! become `kqueue`/`waitpid` polling, `PR_SET_PDEATHSIG` becomes a parent-liveness pipe) and
//! nothing else. On other targets the crate refuses to compile with a clear message instead of
//! failing at run time.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiproc currently supports Linux only: its process, pidfd and fd-passing layer (src/sys) \
     has not been ported to this platform yet"
);

pub mod image;
pub mod limits;
pub mod memory;
pub mod overflow;

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// The kernel's limit on descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// A connected, close-on-exec `AF_UNIX` stream socket pair.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Shut one direction of a socket down (used for one-way pipes).
pub fn shutdown(fd: BorrowedFd<'_>, read: bool) -> io::Result<()> {
    let how = if read {
        rustix::net::Shutdown::Read
    } else {
        rustix::net::Shutdown::Write
    };
    Ok(rustix::net::shutdown(fd, how)?)
}

/// Write all of `bufs` (at most 4 slices) to a stream socket; `fds` travel (as
/// `SCM_RIGHTS`) with the first byte.
///
/// `MSG_NOSIGNAL` turns a closed peer into `EPIPE` instead of a process-killing `SIGPIPE`.
/// Nothing is allocated: this runs in every forked child's report, where each touched heap
/// page is a copy-on-write fault.
pub fn send_all(fd: BorrowedFd<'_>, bufs: &[&[u8]], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS_PER_MESSAGE || bufs.len() > 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message can carry at most {MAX_FDS_PER_MESSAGE} OS handles, this one has {}",
                fds.len()
            ),
        ));
    }
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut done = 0usize;
    while done < total {
        // The unsent rest of `bufs`, as at most 4 slices.
        let mut iov = [IoSlice::new(&[]); 4];
        let mut n_iov = 0;
        let mut skip = done;
        for b in bufs {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            iov[n_iov] = IoSlice::new(&b[skip..]);
            n_iov += 1;
            skip = 0;
        }
        let mut control = SendAncillaryBuffer::new(&mut space);
        if done == 0 && !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        match rustix::net::sendmsg(fd, &iov[..n_iov], &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(feature = "async")]
/// Write as much of `bufs` (at most 4 slices) as the socket takes now, without blocking;
/// `fds` travel (as `SCM_RIGHTS`) with the first byte written, so pass them only while
/// nothing of the message has been sent. `Ok(None)` when nothing could be written.
pub fn try_send_some(
    fd: BorrowedFd<'_>,
    bufs: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> io::Result<Option<usize>> {
    if fds.len() > MAX_FDS_PER_MESSAGE || bufs.len() > 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many OS handles or slices for one send",
        ));
    }
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut iov = [IoSlice::new(&[]); 4];
    for (slot, b) in iov.iter_mut().zip(bufs) {
        *slot = IoSlice::new(b);
    }
    let iov = &iov[..bufs.len()];
    loop {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            control.push(SendAncillaryMessage::ScmRights(fds));
        }
        match rustix::net::sendmsg(
            fd,
            iov,
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(n) => return Ok(Some(n)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(feature = "async")]
/// Switch a socket's blocking mode (`O_NONBLOCK`).
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, nonblocking)?)
}

/// Read at most `buf.len()` bytes; descriptors that arrive are appended to `fds`.
///
/// Returns 0 at end of file. The kernel attaches passed descriptors to the first byte of the
/// message that carried them, so they are never delivered later than that byte.
pub fn recv_some(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    recv_with(fd, buf, fds, RecvFlags::empty())
}

/// Like [`recv_some`] but never blocks: `Ok(None)` when nothing is available yet.
pub fn try_recv_some(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<Option<usize>> {
    match recv_with(fd, buf, fds, RecvFlags::DONTWAIT) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

fn recv_with(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
    flags: RecvFlags,
) -> io::Result<usize> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC | flags) {
            Ok(msg) => {
                for m in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = m {
                        fds.extend(received);
                    }
                }
                if msg.flags.contains(ReturnFlags::CTRUNC) {
                    return Err(io::Error::other(
                        "passed OS handles were truncated by the kernel (descriptor limit reached?)",
                    ));
                }
                return Ok(msg.bytes);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Wait until one of `fds` is readable (or hung up). `None` waits forever.
///
/// Returns which of them are ready; all `false` means the timeout expired.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let mut pfds: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ts = remaining.map(|r| rustix::event::Timespec {
            tv_sec: r.as_secs() as _,
            tv_nsec: r.subsec_nanos() as _,
        });
        match rustix::event::poll(&mut pfds, ts.as_ref()) {
            Ok(_) => return Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Python's `exitcode`: the exit code, or minus the signal number.
    pub fn exitcode(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal { signal, .. } => -signal,
        }
    }
}

/// The calling process's id.
/// Name the calling thread (for the main thread: the process) as `ps`, `top` and
/// `/proc/PID/comm` show it; the kernel keeps the first 15 bytes.
pub fn set_process_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    // Never cut a UTF-8 sequence in half.
    while std::str::from_utf8(&bytes).is_err() {
        bytes.pop();
    }
    if let Ok(name) = CString::new(bytes) {
        let _ = rustix::thread::set_name(&name);
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `Instant` reads), as one number that fits in
/// shared memory.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A pipe a thread sleeps on (in `wait_readable`) until another pokes it.
pub fn wake_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A [`wake_pipe`] whose read end does not block, for several threads to [`drain`] at once.
pub fn wake_pipe_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?)
}

/// Wake whoever sleeps on the read end of a [`wake_pipe`] (best effort: a full pipe already
/// wakes it).
pub fn poke(write_end: &OwnedFd) {
    let _ = rustix::io::write(write_end, &[1]);
}

/// Read what [`poke`]s left in a [`wake_pipe`]'s read end.
pub fn drain(read_end: &OwnedFd) {
    let mut buf = [0u8; 64];
    let _ = rustix::io::read(read_end, &mut buf);
}

/// This machine's host name (empty if it has none).
#[cfg(feature = "mpi")]
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// The parent process's id (0 if there is none visible).
pub fn getppid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}

fn pid(raw: u32) -> io::Result<Pid> {
    Pid::from_raw(raw as i32).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))
}

/// A pidfd for `pid`: pollable (readable once the process has exited) and usable to signal it
/// without the pid-reuse race of `kill`.
pub fn pidfd_open(raw: u32) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(pid(raw)?, PidfdFlags::empty())?)
}

/// Send `signal` through a pidfd. A process that has already exited is not an error.
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: `Signal::from_raw_unchecked` only requires a value the kernel accepts; the
    // numbers come from libc's constants or a user-supplied signal the kernel will validate.
    let sig = unsafe { Signal::from_raw_unchecked(signal) };
    match rustix::process::pidfd_send_signal(pidfd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reap a child through its pidfd if it has exited; `None` while it runs.
pub fn try_reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    loop {
        match rustix::process::waitid(
            WaitId::PidFd(pidfd),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        ) {
            Ok(None) => return Ok(None),
            Ok(Some(st)) => {
                if let Some(code) = st.exit_status() {
                    return Ok(Some(ExitStatus::Code(code)));
                }
                if let Some(signal) = st.terminating_signal() {
                    return Ok(Some(ExitStatus::Signal {
                        signal,
                        core_dumped: st.dumped(),
                    }));
                }
                // A WNOHANG waitid with no child ready reports an empty status.
                return Ok(None);
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Ask the kernel to send `SIGKILL` to this process when the thread that created it exits.
///
/// Returns an error if the parent is already gone (the race `PR_SET_PDEATHSIG` leaves open).
pub fn die_with_parent(expected_parent: u32) -> io::Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if getppid() != expected_parent {
        return Err(io::Error::other(
            "parent process exited before the child started",
        ));
    }
    Ok(())
}

/// What `fork` returned.
pub enum Fork {
    /// In the parent: the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// `fork(2)`.
///
/// # Safety
/// In the child only the forking thread exists; the caller must not rely on locks other threads
/// might have held (glibc's allocator is fork-safe; user locks may not be).
pub unsafe fn fork() -> io::Result<Fork> {
    settle_lazy_statics();
    // SAFETY: the caller upholds the contract above; fork itself has no preconditions.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as u32)),
    }
}

/// Complete this layer's lazily computed statics before a fork. A `OnceLock` that another
/// thread is initializing at the moment of the fork is copied into the child in its
/// "running" state, with no thread left to finish it: the child's first use then sleeps
/// forever (seen: a forked child stuck in `spin_enabled` while the parent's log drain thread
/// computed it). Each call returns at once once computed, or waits for the thread computing
/// it; after the calls, none of these can be in progress, since a complete one stays complete.
fn settle_lazy_statics() {
    memory::spin_enabled();
    memory::current_ids();
    image::main_image();
    add_close_from();
}

/// End this process at once, without running `atexit` handlers or destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// The descriptor number [`spawn_self`] gives the descriptor it passes on.
pub const SPAWN_FD: RawFd = 3;

/// `posix_spawn_file_actions_addclosefrom_np`, looked up at run time: it is glibc 2.34's, and
/// naming it would make the executable refuse to load on the older glibc (2.30+) we support.
type AddCloseFrom =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, libc::c_int) -> libc::c_int;

fn add_close_from() -> Option<AddCloseFrom> {
    static FOUND: std::sync::OnceLock<Option<AddCloseFrom>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        // SAFETY: `dlsym` with `RTLD_DEFAULT` and a NUL-terminated name only looks a symbol
        // up. The symbol, when glibc has it, is the function of that name, whose C signature
        // is `int (posix_spawn_file_actions_t *, int)`, which `AddCloseFrom` spells.
        unsafe {
            let symbol = libc::dlsym(
                libc::RTLD_DEFAULT,
                c"posix_spawn_file_actions_addclosefrom_np".as_ptr(),
            );
            (!symbol.is_null())
                .then(|| std::mem::transmute::<*mut libc::c_void, AddCloseFrom>(symbol))
        }
    })
}

/// Start a fresh copy of the running executable (`/proc/self/exe`) with `env` added to the
/// environment and `inherit` as descriptor [`SPAWN_FD`] in the child. No other descriptor
/// but the standard streams (0, 1, 2) reaches the child, as with Python's spawn (which
/// passes only the descriptors it names): descriptors this process left inheritable (no
/// `FD_CLOEXEC`) would otherwise stay open in every child, keeping pipes and sockets alive.
/// (On glibc before 2.34, which lacks the call that closes them, they are inherited.)
///
/// Uses `posix_spawn`, whose glibc implementation is a `vfork`-style clone: no page tables
/// are copied and nothing runs in the child before `exec` that could deadlock on a lock held
/// by another thread of this process.
pub fn spawn_self(env: &[(&str, String)], inherit: BorrowedFd<'_>) -> io::Result<u32> {
    let path = CString::new("/proc/self/exe").map_err(io::Error::other)?;
    // The parent's own arguments, as Python's spawn passes `sys.argv` on: the child's
    // `std::env::args()` is the parent's. (Its name in `ps`/`top` is set by the child.)
    let mut args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_encoded_bytes()).ok())
        .collect();
    if args.is_empty() {
        args.push(CString::new("multiproc").map_err(io::Error::other)?);
    }
    let mut envs: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| !env.iter().any(|(n, _)| k == n))
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    for (k, v) in env {
        envs.push(CString::new(format!("{k}={v}")).map_err(io::Error::other)?);
    }
    let mut envp: Vec<*mut libc::c_char> = envs.iter().map(|c| c.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());

    let fd = inherit.as_raw_fd();
    let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
    // SAFETY: `actions` is initialised by `posix_spawn_file_actions_init` before any other use
    // and destroyed exactly once below; all pointers passed to `posix_spawn` (path, argv, envp)
    // point into CStrings/Vecs that outlive the call and are NULL-terminated.
    unsafe {
        let rc = libc::posix_spawn_file_actions_init(actions.as_mut_ptr());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // dup2 happens in the child only: no other thread of ours can inherit the child's end
        // by accident (dup2(fd, fd), when fd is already SPAWN_FD, clears FD_CLOEXEC: POSIX
        // 2024, glibc >= 2.29).
        let mut rc = libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), fd, SPAWN_FD);
        if rc == 0
            && let Some(close_from) = add_close_from()
        {
            rc = close_from(actions.as_mut_ptr(), SPAWN_FD + 1);
        }
        let mut pid: libc::pid_t = 0;
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                actions.as_ptr(),
                std::ptr::null(),
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid as u32)
    }
}

/// Take ownership of a descriptor number handed over through the environment.
///
/// # Safety
/// `fd` must be an open descriptor that nothing else in this process owns.
pub unsafe fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Mark a descriptor close-on-exec (an inherited bootstrap socket must not leak further).
pub fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?)
}

/// Whether `fd` is an open descriptor.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on an arbitrary number only reads the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// The names (`comm`) of this process's threads other than the calling one. A thread that
/// ends while they are read is left out.
pub fn other_thread_names() -> Vec<String> {
    let me = memory::current_ids().1.to_string();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str() != Some(me.as_str()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// The CPUs this process may use: scheduler affinity and cgroup CPU quota both count.
///
/// `std::thread::available_parallelism` already reads `sched_getaffinity` and the cgroup v1/v2
/// quota on Linux, so it is the right primitive (Python's `os.cpu_count` ignores both).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The conventional name of a signal (`SIGKILL`), or `"SIG?"` for unknown numbers.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "SIG?",
    }
}

/// Signal numbers used by the process module.
pub const SIGTERM: i32 = libc::SIGTERM;
/// See [`SIGTERM`].
pub const SIGKILL: i32 = libc::SIGKILL;

/// Ignore `SIGPIPE`, as the Rust runtime does before `main` (a spawned child runs before it).
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Register a function to run at normal process exit (`exit`, or returning from `main`).
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with the C ABI and no arguments, as atexit requires.
    unsafe {
        libc::atexit(f);
    }
}

/// Read at most `buf.len()` bytes into initialised memory; returns how many were read, 0 at
/// end of file (as [`read_uninit`], for a caller's `&mut [u8]`).
pub fn read_into(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Read at most `buf.len()` bytes into uninitialised memory; returns how many bytes were
/// written (and so are now initialised) at the start of `buf`, 0 at end of file. Used for the
/// body of a large message, which never carries descriptors (they arrive with its first byte).
pub fn read_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok((init, _)) => return Ok(init.len()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Ignore `SIGINT` (`true`) or restore its default action (`false`).
pub fn ignore_sigint(ignore: bool) {
    let action = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
    // SAFETY: installing SIG_IGN or SIG_DFL has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGINT, action);
    }
}

/// A close-on-exec pipe for relaying a child's output: the read end is non-blocking (the
/// relay reads whatever is there), the write end blocking (the child's prints wait for room).
pub fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK)?;
    Ok((read, write))
}

/// Make `fd` this process's standard output (`stdout = true`) or standard error. The new
/// descriptor 1 or 2 is inherited by exec, like any standard stream.
pub fn redirect_stdio(fd: BorrowedFd<'_>, stdout: bool) -> io::Result<()> {
    if stdout {
        rustix::stdio::dup2_stdout(fd)?;
    } else {
        rustix::stdio::dup2_stderr(fd)?;
    }
    Ok(())
}

/// Read what a non-blocking descriptor has: `Ok(None)` if nothing now, `Ok(Some(0))` at end
/// of file.
pub fn read_available(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(Some(n)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fill `buf` with random bytes from the kernel (authentication challenges).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The process at the other end of a local (Unix) socket, as the kernel recorded it when
/// the connection was made (`SO_PEERCRED`); `None` for other sockets.
pub fn peer_pid(fd: BorrowedFd<'_>) -> Option<u32> {
    rustix::net::sockopt::socket_peercred(fd)
        .ok()
        .map(|cred| cred.pid.as_raw_nonzero().get() as u32)
}

/// Whether an `accept` error is worth retrying (a peer that reset its connection, running out
/// of descriptors or memory for a moment) rather than a broken listening socket.
pub fn is_transient_accept_error(e: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A listening `AF_UNIX` stream socket bound to `name` in Linux's abstract namespace (the
/// address Python writes `"\0name"`). Nothing is created on disk: the name is freed with the
/// last socket bound to it, however its process ends (even by `SIGKILL`).
pub fn listen_abstract(name: &[u8]) -> io::Result<OwnedFd> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    Ok(std::os::unix::net::UnixListener::bind_addr(&address)?.into())
}

/// A stream socket connected to the listener at abstract `name` (see [`listen_abstract`]).
pub fn connect_abstract(name: &[u8]) -> io::Result<OwnedFd> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    Ok(std::os::unix::net::UnixStream::connect_addr(&address)?.into())
}
