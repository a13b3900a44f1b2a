"""`dbt ARGS...` through a warm dbt server (orchestration/dbt_server.py).

Run as `python -S dbt_client.py SOCKET ARGS...`: standard library only, so it starts in
milliseconds. It hands the server its stdin, stdout and stderr, its environment and working
directory, forwards SIGINT, SIGTERM and SIGHUP to the command, and exits with the command's status.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

HEADER = struct.Struct("!I")


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        sys.stderr.write("usage: dbt_client.py SOCKET [dbt arguments...]\n")
        return 2
    socket_path, args = argv[0], argv[1:]
    request = json.dumps({"argv": ["dbt", *args], "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(socket_path)
    except OSError as exc:
        sys.stderr.write(f"dbt server at {socket_path} is not answering ({exc}); start it with "
                         "`python -m orchestration.dbt_server SOCKET` or unset LIFELINE_DBT_EXECUTABLE\n")
        return 2
    socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
    conn.sendall(request)
    replies = conn.makefile("r")
    pid = 0
    pending: list[int] = []  # signals that arrived before the command's pid did

    def forward(signum: int, _frame: object) -> None:
        if pid:
            os.kill(pid, signum)
        else:
            pending.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    for line in replies:
        word, _, value = line.strip().partition(" ")
        if word == "pid":
            pid = int(value)
            for signum in pending:
                os.kill(pid, signum)
        elif word == "exit":
            return int(value)
    sys.stderr.write("dbt server: the command ended without an exit status (killed or crashed)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
