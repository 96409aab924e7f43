"""The sandbox against hostile programs: each one must fail and leave the host and this test process intact.

Expected values are facts about the program (what it prints, that it loops forever ...), written by hand.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.sandbox import process as sandbox
from rlvr.sandbox import capabilities, run_command, run_program

pytestmark = pytest.mark.timeout(60)


def _isolated() -> bool:
    caps = capabilities()
    return caps.setuid and caps.netns and caps.mountns and caps.pidns


needs_isolation = pytest.mark.skipif(not _isolated(), reason="full isolation needs root + namespaces")


def test_echo_stdin_and_exit_code():
    r = run_program("import sys\ns = sys.stdin.read()\nprint(s[::-1].strip())\nsys.exit(3)", "abc\n", timeout_s=5)
    assert r.stdout == "cba\n"  # "abc\n" reversed is "\ncba", stripped -> "cba"
    assert r.returncode == 3 and r.killed_reason is None and not r.timed_out


def test_files_are_written_and_cwd_is_private():
    r = run_program("print(open('data.txt').read())\nimport os\nprint(sorted(os.listdir('.')))",
                    files={"data.txt": "hello"}, timeout_s=5)
    assert r.ok, r.stderr
    assert r.stdout.splitlines() == ["hello", "['data.txt', 'main.py']"]  # nothing else in the private dir


def test_infinite_loop_times_out():
    t0 = time.monotonic()
    r = run_program("while True:\n    pass", timeout_s=1.0)
    assert r.timed_out and r.killed_reason == "timeout" and r.returncode == -9
    assert time.monotonic() - t0 < 5.0


def test_huge_output_is_capped_and_killed():
    r = run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)", timeout_s=10, max_output_bytes=10_000)
    assert r.killed_reason == "output_limit" and r.truncated
    assert len(r.stdout) == 10_000  # kept exactly up to the cap
    assert r.stdout_bytes > 10_000
    assert r.wall_s < 5  # killed at the cap, not at the timeout


def test_memory_bomb_fails_without_hurting_the_host():
    r = run_program("x = bytearray(4 * 1024**3)\nprint('allocated')", memory_mb=256, timeout_s=10)
    assert r.returncode != 0 and "allocated" not in r.stdout
    assert "MemoryError" in r.stderr


def test_fork_bomb_is_bounded():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t0 = time.monotonic()
    r = run_program(code, timeout_s=2.0, max_procs=8)
    assert r.timed_out
    assert time.monotonic() - t0 < 10
    # the host still forks fine afterwards
    assert run_program("print(1)", timeout_s=5).stdout == "1\n"


def test_cpu_limit_or_timeout_on_busy_threads():
    code = "import threading\ndef spin():\n    while True: pass\n[threading.Thread(target=spin).start() for _ in range(4)]\n"
    r = run_program(code, timeout_s=1.0, max_procs=16)
    assert r.killed_reason in ("timeout", "cpu_limit")


@needs_isolation
def test_cannot_write_outside_the_sandbox():
    target = f"/tmp/pwned_{uuid.uuid4().hex}"
    other = f"/var/tmp/pwned_{uuid.uuid4().hex}"
    code = (f"for p in [{target!r}, {other!r}, '/work/pwned', '/root/pwned']:\n"
            "    try:\n        open(p, 'w').write('x'); print('wrote', p)\n"
            "    except OSError as e:\n        print('denied', p, type(e).__name__)\n")
    r = run_program(code, timeout_s=5)
    assert r.ok, r.stderr
    # /tmp and /var/tmp are the private dir inside the sandbox: the write "succeeds" there and vanishes
    assert not os.path.exists(target) and not os.path.exists(other)
    assert not os.path.exists("/work/pwned") and not os.path.exists("/root/pwned")
    assert "denied /work/pwned" in r.stdout  # read-only (hidden) or permission denied


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("RLVR_TEST_SECRET", "hunter2")
    code = ("import os\nprint(sorted(os.environ))\n"
            "try:\n    print(open(f'/proc/{os.getppid()}/environ','rb').read())\nexcept Exception as e:\n"
            "    print('no parent environ', type(e).__name__)\n")
    r = run_program(code, timeout_s=5)
    assert "hunter2" not in r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "['HOME', 'LANG', 'PATH', 'TMPDIR']"


@needs_isolation
def test_cannot_read_parent_environ_by_pid(monkeypatch):
    monkeypatch.setenv("RLVR_TEST_SECRET2", "swordfish")
    code = f"print(open('/proc/{os.getpid()}/environ','rb').read())"
    r = run_program(code, timeout_s=5)
    assert "swordfish" not in r.stdout and r.returncode != 0


@needs_isolation
def test_no_network_to_a_local_listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).send(b'hi')\n"
            "    print('connected')\nexcept OSError as e:\n    print('blocked', e.errno)\n")
    r = run_program(code, timeout_s=5)
    assert "blocked" in r.stdout, r.stdout + r.stderr
    with pytest.raises(socket.timeout):  # nobody ever connected
        server.accept()
    server.close()


@needs_isolation
def test_cannot_kill_the_parent():
    # our pid (in the pid namespace it names nothing or someone else's process) and the real parent, when visible
    code = (f"import os, signal\ntargets = [{os.getpid()}] + ([os.getppid()] if os.getppid() > 0 else [])\n"
            "for pid in targets:\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError as e:\n        print('denied', type(e).__name__, flush=True)\n")
    r = run_program(code, timeout_s=5)
    assert "denied PermissionError" in r.stdout or "denied ProcessLookupError" in r.stdout, r
    os.kill(os.getpid(), 0)  # we are alive (this line runs)


def _uid_processes_left(uid_base: int) -> list[int]:
    return [p for uid in range(uid_base, uid_base + sandbox._UID_SLOTS) for p in sandbox._tasks_of_uid(uid)][:5]


@needs_isolation
def test_double_forked_daemon_is_gone_after_the_run():
    marker = f"daemon_{uuid.uuid4().hex[:8]}"
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            f"        import sys; sys.argv[0] = {marker!r}\n        time.sleep(60)\n    os._exit(0)\n"
            "os.wait()\nprint('parent exits')\n")
    r = run_program(code, timeout_s=5)
    assert r.stdout == "parent exits\n"
    time.sleep(0.2)
    left = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = open(f"/proc/{name}/status").read()
            except OSError:
                continue
            uid = int(status.split("Uid:")[1].split()[0])
            if uid >= int(os.environ.get("RLVR_SANDBOX_UID_BASE", "1800000")) and "State:\tZ" not in status:
                left.append(name)
    assert left == []  # no live process of any sandbox uid survives the run


def test_daemon_holding_the_pipe_does_not_stall_the_run():
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(30)\nprint('done')\n"
    r = run_program(code, timeout_s=10)
    assert r.stdout == "done\n" and not r.timed_out
    assert r.wall_s < 5


def test_file_size_limit():
    r = run_program("open('big', 'wb').write(b'x' * (3 * 1024 * 1024))\nprint('wrote')", max_file_mb=1, timeout_s=5)
    assert "wrote" not in r.stdout
    assert r.killed_reason == "file_size_limit" or r.returncode != 0


def test_missing_binary_is_reported():
    r = run_command(["/nonexistent/binary"], timeout_s=5)
    assert r.returncode is None or r.returncode != 0
    assert r.killed_reason == "setup_failed" or r.returncode == 127


def test_concurrent_runs_from_threads_do_not_mix():
    # each run prints its own number; 24 runs across 6 threads must each get exactly their own output
    def one(i: int) -> tuple[int, str]:
        return i, run_program(f"import sys\nprint({i} * 2, sys.stdin.read())", str(i), timeout_s=20).stdout

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(24)))
    for i, out in results:
        assert out == f"{i * 2} {i}\n"
    assert threading.active_count() >= 1


def test_minimal_isolation_mode_still_limits(monkeypatch):
    # the documented fallback (no uid switch, no namespaces) keeps timeouts and output caps
    caps = sandbox.Capabilities(False, False, False, False, None)
    monkeypatch.setattr(sandbox, "_caps", caps)
    r = run_program("while True: pass", timeout_s=0.5)
    assert r.timed_out
    r = run_program("print('x' * 100000)", max_output_bytes=1000, timeout_s=5)
    assert r.truncated and len(r.stdout) == 1000


@needs_isolation
def test_sandbox_dies_with_its_caller():
    # a caller (like a reward worker killed at its timeout) dies mid-run: the sandboxed tree must go with it
    import subprocess
    import sys

    base = 1_900_000 + (os.getpid() % 1000) * 300  # a uid range of our own, so other runs cannot interfere
    script = ("from rlvr.sandbox import run_program\n"
              "run_program('import time\\ntime.sleep(60)', timeout_s=60)\n")
    env = {**os.environ, "RLVR_SANDBOX_UID_BASE": str(base), "PYTHONPATH": os.getcwd()}
    caller = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 20
        while not _uid_processes_left(base) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _uid_processes_left(base), "the sandboxed program never started"
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 5
    while _live(_uid_processes_left(base)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live(_uid_processes_left(base)) == []
    # the killed caller never cleaned up its private dir; the next run in that uid slot removes it
    import tempfile

    left = [e for e in os.listdir(tempfile.gettempdir()) if e.startswith("rlvr-sbx-") and e.split("-")[2].isdigit()
            and base <= int(e.split("-")[2]) < base + sandbox._UID_SLOTS]
    assert len(left) == 1
    stale_uid = int(left[0].split("-")[2])
    sandbox._remove_stale_dirs(stale_uid)
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), left[0]))


def _live(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if "State:\tZ" not in open(f"/proc/{pid}/status").read():
                out.append(pid)
        except OSError:
            pass
    return out


@needs_isolation
def test_cannot_read_the_callers_files():
    # this test file lives under a non-system top-level dir (/work here): covered by an empty read-only tmpfs
    me = os.path.abspath(__file__)
    top = "/" + me.split("/")[1]
    if top not in capabilities().hidden_dirs:
        pytest.skip(f"{top} is not hidden on this machine")
    r = run_program(f"import os\nprint(os.path.exists({me!r}), os.listdir({top!r}))", timeout_s=5)
    assert r.stdout == "False []\n", r.stdout + r.stderr


@needs_isolation
def test_no_unix_sockets_of_the_host():
    # an abstract socket (scoped by the network namespace) and a world-writable socket file under /run
    # (hidden by the mount namespace) are both out of reach
    name = f"rlvr-test-{uuid.uuid4().hex[:8]}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + name)
    abstract.listen(1)
    paths = []
    if "/run" in capabilities().hidden_dirs:
        path = f"/run/{name}.sock"
        filesock = socket.socket(socket.AF_UNIX)
        filesock.bind(path)
        os.chmod(path, 0o777)
        filesock.listen(1)
        paths.append(path)
    code = (f"import socket\nfor addr in [{chr(0) + name!r}] + {paths!r}:\n    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n        s.connect(addr); print('connected')\n    except OSError as e:\n        print('blocked')\n")
    try:
        r = run_program(code, timeout_s=5)
        assert r.stdout.split() == ["blocked"] * (1 + len(paths)), r.stdout + r.stderr
    finally:
        abstract.close()
        for p in paths:
            filesock.close()
            os.unlink(p)
