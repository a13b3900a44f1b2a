"""A warm dbt launcher: one process that has imported dbt and its adapters once, and forks a fresh
copy of itself for every dbt command it is sent.

A dbt command spends 2-5 s importing dbt, its adapters and their dependencies before it reads a file,
which a sequence of short builds (the test suite, a landing run every few seconds) pays every time.
The server pays it once. Each command still runs in its own process, forked from the server before
anything was run in it, so commands share no state and one DuckDB file is never opened twice in one
process: a command behaves exactly as `dbt ...` started from a shell.

Use: `python -m orchestration.dbt_server SOCKET` prints `ready` once it listens, then
`orchestration/dbt_client.py SOCKET ARGS...` (a standard-library script, see `launcher_script`)
behaves as `dbt ARGS...`: same output on the caller's own stdout/stderr (the descriptors are passed
over the socket), same exit status, and SIGINT/SIGTERM sent to it reach the command. Point
LIFELINE_DBT_EXECUTABLE at the launcher script to make Lifeline (run_dbt, the Dagster dbt resource)
use it. The server exits when its parent does, or on SIGTERM.
"""
from __future__ import annotations

import atexit
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HEADER = struct.Struct("!I")
CLIENT_SCRIPT = Path(__file__).with_name("dbt_client.py")
# Imported before serving: everything a dbt build, test, run, seed, ls or parse imports, on both
# adapters. Measured: dbt.cli.main with both adapters is 1.7-5 s of a command's start; the lazily
# imported task and runner modules add ~0.15 s.
WARM_MODULES = (
    "dbt.cli.main", "dbt.adapters.duckdb", "dbt.adapters.duckdb.impl", "dbt.adapters.duckdb.environments.local",
    "dbt.adapters.postgres", "dbt.adapters.postgres.impl", "dbt.compilation", "dbt.graph.thread_pool",
    "dbt.parser.sql", "dbt.runners", "dbt.task.build", "dbt.task.compile", "dbt.task.list", "dbt.task.run",
    "dbt.task.runnable", "dbt.task.seed", "dbt.task.snapshot", "dbt.task.test", "dbt.task.show",
    "sqlparse", "multiprocessing.pool",
)


def warm_up() -> None:
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    if threading.active_count() != 1:
        raise RuntimeError("a warm-up import started a thread: forking this process would not be safe")


def launcher_script(socket_path: Path, directory: Path) -> Path:
    """Write an executable `dbt` in `directory` that runs its arguments through the server at
    `socket_path`; its path is what LIFELINE_DBT_EXECUTABLE (or a DbtCliResource) takes."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "dbt"
    # -S: the client needs only the standard library, so it starts in ~20 ms.
    script.write_text(f"#!/bin/sh\nexec '{sys.executable}' -S '{CLIENT_SCRIPT}' '{socket_path}' \"$@\"\n")
    script.chmod(0o755)
    return script


class WarmDbt:
    """A dbt server started as a child process, with its launcher script; a context manager."""

    def __init__(self, process: subprocess.Popen, socket_path: Path, executable: Path) -> None:
        self.process, self.socket_path, self.executable = process, socket_path, executable

    @classmethod
    def start(cls, directory: Path, ready_timeout_s: float = 120.0) -> "WarmDbt":
        directory.mkdir(parents=True, exist_ok=True)
        socket_path = directory / "dbt.sock"
        if len(str(socket_path)) > 100:  # the limit of a Unix socket's path is 108 bytes
            socket_path = Path(tempfile.mkdtemp(prefix="lifeline-dbt-")) / "dbt.sock"
        process = subprocess.Popen([sys.executable, "-m", "orchestration.dbt_server", str(socket_path)],
                                   cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], ready_timeout_s)
        line = process.stdout.readline() if ready else ""
        if line.strip() != "ready":
            process.kill()
            process.wait()
            raise RuntimeError(f"the dbt server did not start within {ready_timeout_s:.0f} s "
                               f"(exit {process.returncode}); run `python -m orchestration.dbt_server "
                               f"{socket_path}` to see why")
        return cls(process, socket_path, launcher_script(socket_path, directory))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "WarmDbt":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _receive_request(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    if len(header) != HEADER.size or len(fds) != 3:
        raise ConnectionError("a dbt_server request starts with its length and the caller's stdin, stdout and stderr")
    (length,) = HEADER.unpack(header)
    payload = b""
    while len(payload) < length:
        chunk = conn.recv(length - len(payload))
        if not chunk:
            raise ConnectionError("the caller closed the connection before its request was complete")
        payload += chunk
    return json.loads(payload), fds


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run_command(conn: socket.socket) -> int:
    """In the forked child: become the caller's dbt process and run its command."""
    request, fds = _receive_request(conn)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    random.seed()
    sys.argv = list(request["argv"])
    conn.sendall(f"pid {os.getpid()}\n".encode())
    code = 1
    try:
        from dbt.cli.main import cli

        cli()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001 - the caller must see it, as from a crashed `dbt`
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    return code


def _child(listener: socket.socket, conn: socket.socket) -> None:
    code = 1
    try:
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # dbt's own subprocesses must be waitable
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = _run_command(conn)
        conn.sendall(f"exit {code}\n".encode())
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child into the server's loop
        traceback.print_exc()
    finally:
        # What an interpreter runs at exit (multiprocessing releases dbt's semaphores, logging
        # flushes), but not the server's own `finally`: os._exit, never SystemExit, from here.
        try:
            atexit._run_exitfuncs()
        finally:
            os._exit(code)


def serve(socket_path: Path) -> None:
    warm_up()
    socket_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(64)
    parent = os.getppid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished commands
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        while os.getppid() == parent:
            readable, _, _ = select.select([listener], [], [], 1.0)
            if not readable:
                continue
            conn, _ = listener.accept()
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                _child(listener, conn)
            conn.close()
    finally:
        listener.close()
        socket_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m orchestration.dbt_server SOCKET_PATH")
    serve(Path(args[0]))


if __name__ == "__main__":
    main()
