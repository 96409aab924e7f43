"""Run untrusted programs (model-written code, test harnesses, Verilog simulators) in a throw-away sandbox.

    from rlvr.sandbox import run_program, run_command
    r = run_program("print(input()[::-1])", "abc\\n", timeout_s=5)
    r.returncode, r.stdout          # (0, "cba\\n")

Each call starts one fresh child process and tears everything down afterwards. The layers, each probed once
per process (``capabilities()`` says which ones are active on this machine):

1. Process session: the child leads a new session / process group; at the wall-clock timeout the whole group
   gets SIGKILL.
2. Resource limits (``setrlimit`` in the child before exec): RLIMIT_CPU (CPU seconds), RLIMIT_AS (address
   space = ``memory_mb``, per process), RLIMIT_FSIZE (largest file written, ``max_file_mb``), RLIMIT_NPROC
   (processes + threads of the uid, ``max_procs``), RLIMIT_CORE = 0, RLIMIT_NOFILE.
3. An unprivileged uid (when the parent is root): every concurrent run gets its own uid from a pool of
   ``_UID_SLOTS`` uids starting at ``RLVR_SANDBOX_UID_BASE`` (default 1_800_000; no passwd entry needed).
   Slots are taken with ``flock`` on a file per slot, so threads *and* processes never share one. A run
   therefore cannot signal the parent, read root-only files (``/root``, ``/proc/<ppid>/environ``), and
   RLIMIT_NPROC (counted per uid, not enforced for root) counts only this run's processes.
4. Namespaces (root, Linux):
   - network: only a down loopback, so no connection to anything, not even 127.0.0.1;
   - mount: the private temp dir is bind-mounted over /tmp, /var/tmp and /dev/shm (the world-writable places),
     and every non-system top-level dir (/root, /home, /work, /mnt, /opt, /run ...) is covered by an empty
     read-only tmpfs: the caller's data stays invisible, and so do filesystem unix sockets (/run/...), which
     a network namespace does not cover;
   - pid: the program runs as pid 1 of it under a tiny ``unshare --fork --kill-child`` launcher, so when it ends
     or is killed, the kernel kills every process it left behind, double-forked daemons included.
5. A private temporary directory as cwd, HOME and TMPDIR, removed afterwards; an environment with only PATH,
   LANG, HOME and TMPDIR; stdin from an unlinked file; stdout/stderr read through pipes with a byte cap
   (the run is killed once the cap is exceeded: ``killed_reason="output_limit"``).

Without root (or with ``RLVR_SANDBOX_ISOLATION=minimal``) only layers 1, 2 and 5 are active: the program runs
as the caller's uid, RLIMIT_NPROC is set to the caller's current task count + ``max_procs``, there is no
network isolation and processes that escape the process group are not swept. See docs/rewards_code.md,
"What the sandbox guarantees".

The child also gets PR_SET_PDEATHSIG = SIGKILL, so it dies if the calling process dies mid-run (a reward worker
killed at its timeout); in the pid namespace that takes the whole tree with it.

Thread safety: the child is set up in ``preexec_fn`` that only calls async-signal-tolerant code bound before the
fork (``libc.unshare``/``mount``/``prctl`` through ctypes, ``setrlimit``, ``setuid``); no imports, no locks.
Concurrent calls
from threads and from processes are tested.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import itertools
import os
import random
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

__all__ = ["SandboxResult", "run_program", "run_command", "capabilities", "sandbox_python"]

_EXIT_SETUP_FAILED = 121  # the child's exit status when the sandbox could not be set up before exec
_UID_SLOTS = 256
_PATH = "/usr/local/bin:/usr/bin:/bin"
_PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # world-writable places replaced by the private dir in the mount ns
# top-level directories a program needs; every other one (/root, /home, /work, /mnt, /opt, /data, /run with its
# unix sockets ...) is covered by an empty read-only tmpfs in the mount namespace, unless it holds the program
_SYSTEM_DIRS = ("bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "sys", "tmp", "usr", "var")

# clone / mount flags (linux/sched.h, linux/mount.h)
_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18


@dataclass
class SandboxResult:
    """What happened to one sandboxed run.

    returncode:    exit status; negative = killed by that signal (e.g. -9 after a timeout); None if never started.
    stdout/stderr: decoded (UTF-8, errors replaced) and truncated to ``max_output_bytes`` together.
    timed_out:     the wall-clock timeout fired (the whole process tree was killed).
    killed_reason: None, or "timeout" | "output_limit" | "cpu_limit" (SIGXCPU) | "file_size_limit" (SIGXFSZ)
                   | "setup_failed".
    wall_s:        seconds from spawn to the end of teardown of the process tree.
    stdout_bytes / stderr_bytes: bytes the program wrote (counted up to the moment it was killed).
    truncated:     output was cut at the cap.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    killed_reason: str | None = None
    wall_s: float = 0.0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """Exited normally with status 0."""
        return self.returncode == 0 and self.killed_reason is None

    def last_stderr_line(self) -> str:
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        return lines[-1].strip()[:300] if lines else ""


@dataclass(frozen=True)
class Capabilities:
    """Which isolation layers are active in this process (see the module docstring)."""

    setuid: bool  # runs as a pool uid (parent is root)
    netns: bool
    mountns: bool
    pidns: bool  # the `unshare --fork --kill-child` launcher runs the program as pid 1 of a new pid namespace
    launcher: str | None
    private_dirs: tuple[str, ...] = field(default=())
    hidden_dirs: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())


# ----------------------------------------------------------------------------------------------------------
# libc bindings, bound at import so the child never imports or looks anything up between fork and exec

_libc = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    _libc_unshare = _libc.unshare
    _libc_mount = _libc.mount
    _libc_prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux / no libc: namespaces unavailable
    _libc_unshare = _libc_mount = _libc_prctl = None
_PR_SET_PDEATHSIG = 1

_os_setgroups, _os_setgid, _os_setuid, _os_chdir, _os_exit, _os_write = (
    os.setgroups, os.setgid, os.setuid, os.chdir, os._exit, os.write,
)
_setrlimit = resource.setrlimit


def _make_preexec(*, ns_flags: int, bind_dirs: tuple[bytes, ...], hide_dirs: tuple[bytes, ...], workdir: bytes,
                  uid: int | None, limits: tuple[tuple[int, int, int], ...]):
    """The function the child runs after fork, before exec. Any failure -> exit status 121."""

    def preexec() -> None:
        try:
            if ns_flags:
                if _libc_unshare(ns_flags) != 0:
                    raise OSError("unshare")
            if bind_dirs:
                if _libc_mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
                    raise OSError("mount private")
                for target in bind_dirs:  # ordered so that the dir holding workdir is covered last
                    if _libc_mount(workdir, target, None, _MS_BIND, None) != 0:
                        raise OSError("bind mount")
                for target in hide_dirs:
                    flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV
                    if _libc_mount(b"tmpfs", target, b"tmpfs", flags, b"size=4k,mode=555") != 0:
                        raise OSError("hide mount")
                _os_chdir(b"/tmp")
            for res, soft, hard in limits:
                _setrlimit(res, (soft, hard))
            if uid is not None:
                _os_setgroups([])
                _os_setgid(uid)
                _os_setuid(uid)
            if _libc_prctl is not None:  # die with the parent (e.g. a reward worker killed at its timeout);
                _libc_prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)  # after setuid, which would clear it
        except BaseException:
            _os_write(2, b"rlvr sandbox: setup failed before exec\n")
            _os_exit(_EXIT_SETUP_FAILED)

    return preexec


# ----------------------------------------------------------------------------------------------------------
# uid slots: one uid per concurrent run, across threads and processes


_slot_counter = itertools.count(random.randrange(_UID_SLOTS))


def _slot_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"rlvr-sandbox-slots-{os.geteuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if st.st_uid != os.geteuid() or (st.st_mode & 0o077) or not os.path.isdir(path) or os.path.islink(path):
        raise RuntimeError(f"rlvr sandbox: {path} is not a private directory owned by us; remove it")
    return path


def _acquire_uid() -> tuple[int, int]:
    """(uid, fd holding an exclusive flock); the lock dies with the fd (or the process)."""
    base = int(os.environ.get("RLVR_SANDBOX_UID_BASE", "1800000"))
    directory = _slot_dir()
    for _ in range(4):
        for _ in range(_UID_SLOTS):
            slot = next(_slot_counter) % _UID_SLOTS
            fd = os.open(os.path.join(directory, f"{slot}.lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return base + slot, fd
            except BlockingIOError:
                os.close(fd)
        time.sleep(0.05)
    raise RuntimeError(f"rlvr sandbox: all {_UID_SLOTS} uid slots are busy")


def _remove_stale_dirs(uid: int) -> None:
    """Delete sandbox dirs of ``uid`` left by an earlier holder of the slot that was killed mid-run (e.g. a reward
    worker SIGKILLed at its timeout never reaches its cleanup). We hold the slot's lock, so none is in use."""
    prefix = f"rlvr-sbx-{uid}-"
    with os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def _tasks_of_uid(uid: int) -> list[int]:
    """Live (non-zombie) pids whose real uid is ``uid`` (from /proc/<pid>/status, which also shows
    non-dumpable processes correctly)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"State:") and line.split()[1] in (b"Z", b"X"):
                        break
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return found


def _count_threads_of_uid(uid: int) -> int:
    total = 0
    for pid in _tasks_of_uid(uid):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            total += 1
    return total


def _sweep_uid(uid: int) -> None:
    """SIGKILL every process still running as ``uid`` (daemons that left the process group)."""
    for _ in range(20):
        pids = _tasks_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


# ----------------------------------------------------------------------------------------------------------
# capability probe


_caps: Capabilities | None = None
_python: str | None = None
_probe_lock = threading.Lock()


def capabilities() -> Capabilities:
    """Probe (once per process) which isolation layers work here, degrading one layer at a time."""
    global _caps
    with _probe_lock:
        if _caps is None:
            _caps = _probe()
        return _caps


def _probe() -> Capabilities:
    notes: list[str] = []
    minimal = os.environ.get("RLVR_SANDBOX_ISOLATION", "auto") == "minimal"
    if minimal:
        notes.append("RLVR_SANDBOX_ISOLATION=minimal: no uid switch, no namespaces")
    is_root = os.geteuid() == 0 and not minimal
    if os.geteuid() != 0 and not minimal:
        notes.append("not root: runs as the caller's uid, no namespaces")
    linux = sys.platform.startswith("linux") and _libc_unshare is not None
    launcher = shutil.which("unshare", path=_PATH)
    private = tuple(d for d in _PRIVATE_DIRS if os.path.isdir(d) and not os.path.islink(d))
    hidden = tuple(sorted(f"/{d}" for d in os.listdir("/") if d not in _SYSTEM_DIRS
                          and os.path.isdir(f"/{d}") and not os.path.islink(f"/{d}")))
    true_bin = shutil.which("true", path=_PATH) or "/bin/true"

    candidates = [
        Capabilities(True, True, True, True, launcher, private, hidden),
        Capabilities(True, True, True, True, launcher, private),
        Capabilities(True, True, True, False, None, private, hidden),
        Capabilities(True, True, True, False, None, private),
        Capabilities(True, True, False, False, None),
        Capabilities(True, False, False, False, None),
    ] if is_root and linux else []
    if is_root and not linux:
        candidates.append(Capabilities(True, False, False, False, None))
    for caps in candidates:
        if caps.pidns and not caps.launcher:
            continue
        probe = _run([true_bin], caps=caps, timeout_s=10.0, memory_mb=256, max_output_bytes=4096, max_procs=4,
                     max_file_mb=1, stdin=b"", files=None)
        if probe.returncode == 0:
            return Capabilities(caps.setuid, caps.netns, caps.mountns, caps.pidns, caps.launcher,
                                caps.private_dirs, caps.hidden_dirs, tuple(notes))
        notes.append(f"layer set {caps} failed: {probe.stderr.strip()[:200]}")
    return Capabilities(False, False, False, False, None, (), tuple(notes))


def sandbox_python() -> str:
    """An interpreter the sandbox uid may execute (``RLVR_SANDBOX_PYTHON`` wins).

    ``sys.executable`` may live under a directory the unprivileged uid cannot enter (e.g. pyenv in /root),
    so candidates are probed by actually running them in the sandbox.
    """
    global _python
    if _python is not None:
        return _python
    forced = os.environ.get("RLVR_SANDBOX_PYTHON")
    if forced:
        _python = forced
        return _python
    seen: list[str] = []
    for cand in (sys.executable, os.path.realpath(sys.executable),
                 f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
                 shutil.which("python3", path=_PATH), "/usr/bin/python3", "/usr/local/bin/python3"):
        if not cand or cand in seen or not os.path.exists(cand):
            continue
        seen.append(cand)
        r = run_command([cand, "-I", "-S", "-c", "print(6*7)"], timeout_s=20.0, memory_mb=512)
        if r.returncode == 0 and r.stdout.strip() == "42":
            _python = cand
            return _python
    raise RuntimeError(f"rlvr sandbox: no Python interpreter runnable by the sandbox uid among {seen}; "
                       "set RLVR_SANDBOX_PYTHON to one that is world-executable (e.g. /usr/bin/python3)")


# ----------------------------------------------------------------------------------------------------------
# public entry points


# -S skips site.py, which is also what defines the exit() / quit() builtins that many programs call: add them back,
# then run main.py as __main__ (sys.argv == ["main.py"], tracebacks name main.py).
_BOOT = (
    "import builtins, sys\n"
    "builtins.exit = builtins.quit = sys.exit\n"
    "sys.argv = sys.argv[1:]\n"
    "with open('main.py', 'rb') as f:\n"
    "    code = compile(f.read(), 'main.py', 'exec')\n"
    "del f\n"
    "exec(code, {'__name__': '__main__', '__file__': 'main.py', '__builtins__': builtins})\n"
)


def run_program(code: str, stdin: str = "", *, timeout_s: float = 10.0, memory_mb: int = 1024,
                max_output_bytes: int = 1 << 20, max_procs: int = 16, max_file_mb: int = 16,
                files: dict[str, str | bytes] | None = None,
                python_args: tuple[str, ...] = ("-I", "-S")) -> SandboxResult:
    """Run Python source ``code`` (written to ``main.py`` in the sandbox dir) as ``__main__`` with ``stdin``.

    ``python_args`` default: isolated mode (-I: no env vars, no user site, script dir not on sys.path) and
    -S (no site-packages: the standard library only; ``exit``/``quit`` are still defined; dropping -S costs
    ~40% more start-up time). ``files`` are written next to main.py beforehand.
    """
    all_files = dict(files or {})
    all_files["main.py"] = code
    return run_command([sandbox_python(), *python_args, "-c", _BOOT, "main.py"], stdin, timeout_s=timeout_s,
                       memory_mb=memory_mb, max_output_bytes=max_output_bytes, max_procs=max_procs,
                       max_file_mb=max_file_mb, files=all_files)


def run_command(argv: list[str], stdin: str | bytes = "", *, timeout_s: float = 10.0, memory_mb: int = 1024,
                max_output_bytes: int = 1 << 20, max_procs: int = 16, max_file_mb: int = 16,
                files: dict[str, str | bytes] | None = None) -> SandboxResult:
    """Run ``argv`` (absolute path or a name on /usr/local/bin:/usr/bin:/bin) in the sandbox dir.

    Limits: ``timeout_s`` wall clock (CPU: SIGXCPU after int(timeout_s) + 1 s, SIGKILL 1 s later; CPU time of all
    threads adds up), ``memory_mb`` address space per
    process, ``max_output_bytes`` for stdout + stderr together, ``max_procs`` processes/threads,
    ``max_file_mb`` per written file. ``files``: {relative path: content} created in the sandbox dir.
    """
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return _run(list(argv), caps=capabilities(), timeout_s=timeout_s, memory_mb=memory_mb,
                max_output_bytes=max_output_bytes, max_procs=max_procs, max_file_mb=max_file_mb,
                stdin=data, files=files)


# ----------------------------------------------------------------------------------------------------------
# the run itself


def _write_files(workdir: str, files: dict[str, str | bytes] | None, uid: int | None) -> None:
    for name, content in (files or {}).items():
        rel = os.path.normpath(name)
        if os.path.isabs(rel) or rel.startswith(".."):
            raise ValueError(f"sandbox file name must be relative and inside the sandbox: {name!r}")
        path = os.path.join(workdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    if uid is not None:
        for root, dirs, names in os.walk(workdir):
            for n in dirs + names:
                os.chown(os.path.join(root, n), uid, uid)


def _run(argv: list[str], *, caps: Capabilities, timeout_s: float, memory_mb: int, max_output_bytes: int,
         max_procs: int, max_file_mb: int, stdin: bytes, files: dict | None) -> SandboxResult:
    start = time.monotonic()
    uid, lock_fd = _acquire_uid() if caps.setuid else (None, -1)
    if uid is not None:
        _remove_stale_dirs(uid)
    workdir = tempfile.mkdtemp(prefix=f"rlvr-sbx-{uid}-" if uid is not None else "rlvr-sbx-")
    proc = None
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        _write_files(workdir, files, uid)
        if uid is not None and not caps.pidns:
            _sweep_uid(uid)  # leftovers of a crashed earlier holder of this slot
        inner_home = "/tmp" if caps.mountns else workdir
        env = {"PATH": _PATH, "LANG": "C.UTF-8", "HOME": inner_home, "TMPDIR": inner_home}
        nproc = max_procs + (1 if caps.pidns else 0)
        if uid is None:  # RLIMIT_NPROC counts every task of the uid: allow what exists + max_procs
            nproc += _count_threads_of_uid(os.getuid())
        # (resource, soft, hard); CPU: SIGXCPU at the soft limit (reported as "cpu_limit"), SIGKILL 1 s later
        limits = tuple((res, _within_hard_limit(res, soft), _within_hard_limit(res, hard)) for res, soft, hard in (
            (resource.RLIMIT_CPU, int(timeout_s) + 1, int(timeout_s) + 2),
            (resource.RLIMIT_AS, int(memory_mb) << 20, int(memory_mb) << 20),
            (resource.RLIMIT_FSIZE, int(max_file_mb) << 20, int(max_file_mb) << 20),
            (resource.RLIMIT_NPROC, nproc, nproc),
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_NOFILE, 256, 256),
        ))
        ns_flags = ((_CLONE_NEWNET if caps.netns else 0) | (_CLONE_NEWNS if caps.mountns else 0)
                    | (_CLONE_NEWPID if caps.pidns else 0))
        # bind the private dir over every world-writable dir; the one containing workdir goes last
        wd_real = os.path.realpath(workdir)
        targets = sorted(caps.private_dirs if caps.mountns else (),
                         key=lambda d: wd_real.startswith(os.path.realpath(d) + os.sep))
        exe = argv[0] if os.path.isabs(argv[0]) else (shutil.which(argv[0], path=_PATH) or argv[0])
        hide = _dirs_to_hide(caps, exe) if caps.mountns else ()
        preexec = _make_preexec(ns_flags=ns_flags, bind_dirs=tuple(os.fsencode(d) for d in targets),
                                hide_dirs=hide, workdir=os.fsencode(workdir), uid=uid, limits=limits)
        argv = [exe] + argv[1:]
        if caps.pidns and caps.launcher:
            argv = [caps.launcher, "--fork", "--kill-child", "--"] + argv
        with tempfile.TemporaryFile() as stdin_file:
            stdin_file.write(stdin)
            stdin_file.seek(0)
            try:
                proc = subprocess.Popen(argv, stdin=stdin_file, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, cwd=workdir, env=env, close_fds=True,
                                        start_new_session=True, preexec_fn=preexec)
            except OSError as e:  # exec failed (binary missing, not executable by the uid ...)
                return SandboxResult(None, "", f"cannot start {argv[0]}: {e}", killed_reason="setup_failed",
                                     wall_s=time.monotonic() - start)
        out, err, n_out, n_err, reason = _collect(proc, start + timeout_s, max_output_bytes)
        _kill_tree(proc, uid, caps)
        proc.wait()
        rc = proc.returncode
        if reason is None:
            reason = {-signal.SIGXCPU: "cpu_limit", -signal.SIGXFSZ: "file_size_limit"}.get(rc)
            if rc == _EXIT_SETUP_FAILED and b"rlvr sandbox: setup failed" in err:
                reason = "setup_failed"
        return SandboxResult(
            returncode=rc, stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
            timed_out=reason == "timeout", killed_reason=reason, wall_s=time.monotonic() - start,
            stdout_bytes=n_out, stderr_bytes=n_err, truncated=(n_out + n_err) > max_output_bytes,
        )
    finally:
        if proc is not None and proc.returncode is None:  # an exception above: never leave the child behind
            _kill_tree(proc, uid, caps)
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        if lock_fd >= 0:
            os.close(lock_fd)


_hide_cache: dict[tuple, tuple[bytes, ...]] = {}


def _dirs_to_hide(caps: Capabilities, exe: str) -> tuple[bytes, ...]:
    """``caps.hidden_dirs`` minus the top-level dirs holding the program (or the launcher) or the sandbox dir."""
    key = (caps.hidden_dirs, exe)
    if key not in _hide_cache:
        keep = [os.path.realpath(p) for p in (exe, caps.launcher or "/", tempfile.gettempdir())]
        _hide_cache[key] = tuple(os.fsencode(d) for d in caps.hidden_dirs
                                 if not any(k == d or k.startswith(d + os.sep) for k in keep))
    return _hide_cache[key]


def _within_hard_limit(res: int, value: int) -> int:
    """``value`` lowered to this process's hard limit (a child may not raise it; e.g. a reward worker's RLIMIT_AS)."""
    hard = resource.getrlimit(res)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def _collect(proc: subprocess.Popen, deadline: float, cap: int) -> tuple[bytes, bytes, int, int, str | None]:
    """Read stdout/stderr until the program exits, the deadline passes or the output exceeds ``cap`` bytes.

    Returns (stdout, stderr, stdout bytes seen, stderr bytes seen, killed_reason). Memory stays O(cap): bytes past
    the cap are counted, not kept. The program's exit is seen through a pidfd, so processes it left holding the
    pipes cannot keep us waiting.
    """
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    counts = dict.fromkeys(bufs, 0)
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    pidfd = -1
    try:
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pass
    reason = None
    exited = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = "timeout"
                break
            if not sel.get_map() or (len(sel.get_map()) == 1 and pidfd in sel.get_map() and exited):
                break
            events = sel.select(min(remaining, 0.05) if pidfd < 0 else remaining)
            if pidfd < 0 and proc.poll() is not None:
                exited = True
            for key, _ in events:
                fd = key.fd
                if fd == pidfd:
                    exited = True
                    sel.unregister(fd)
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                reason = _keep(bufs, counts, fd, chunk, cap) or reason
            if reason:
                break
            if exited:  # drain what the dead program left in the pipes, without waiting for its orphans
                for fd in list(bufs):
                    if fd in sel.get_map():
                        os.set_blocking(fd, False)
                        try:
                            while chunk := os.read(fd, 65536):
                                if _keep(bufs, counts, fd, chunk, cap):
                                    reason = "output_limit"
                                    break
                        except BlockingIOError:
                            pass
                break
    finally:
        sel.close()
        if pidfd >= 0:
            os.close(pidfd)
    o, e = proc.stdout.fileno(), proc.stderr.fileno()
    return bytes(bufs[o]), bytes(bufs[e]), counts[o], counts[e], reason


def _keep(bufs: dict, counts: dict, fd: int, chunk: bytes, cap: int) -> str | None:
    counts[fd] += len(chunk)
    room = cap - sum(len(b) for b in bufs.values())
    if room > 0:
        bufs[fd] += chunk[:room]
    return "output_limit" if sum(counts.values()) > cap else None


def _kill_tree(proc: subprocess.Popen, uid: int | None, caps: Capabilities) -> None:
    """SIGKILL the process group (the leader is not reaped yet, so its pgid cannot have been reused), then
    every remaining process of the sandbox uid. In the pid namespace the kernel kills the rest when pid 1 dies.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    except OSError as e:  # pragma: no cover
        if e.errno != errno.ESRCH:
            raise
    if uid is not None and not caps.pidns:
        _sweep_uid(uid)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
