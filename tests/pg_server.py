"""A throwaway PostgreSQL server for tests: started from the system binaries as an
unprivileged user (initdb/postgres refuse to run as root), on a free loopback port, in a
temporary data directory that is removed afterwards."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = [os.environ.get("LIFELINE_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(str(Path(pg_ctl).resolve().parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (initdb/pg_ctl). Install them with "
        "`apt-get install -y postgresql` or set LIFELINE_PG_BINDIR."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str = "lifeline"
    password: str = "lifeline-test"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def env(self, dbname: str) -> dict[str, str]:
        return {
            "LIFELINE_WAREHOUSE": "postgres", "PGHOST": "127.0.0.1", "PGPORT": str(self.port),
            "PGUSER": self.user, "PGPASSWORD": self.password, "PGDATABASE": dbname,
        }

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @classmethod
    def start(cls) -> "PostgresServer":
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="lifeline-pg-"))
        server = cls(bindir=bindir, root=root, port=_free_port())
        os.chmod(root, 0o777)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        pwfile = root / "pw"
        pwfile.write_text(server.password)
        os.chmod(pwfile, 0o644)
        run = lambda args: subprocess.run(server._as_owner() + args, check=True, capture_output=True, text=True)
        try:
            run([str(bindir / "initdb"), "-D", str(server.datadir), "-U", server.user, "--pwfile", str(pwfile),
                 "-A", "scram-sha-256", "-E", "UTF8", "--no-locale"])
            run([str(bindir / "pg_ctl"), "-D", str(server.datadir), "-w", "-t", "60", "-l", str(root / "log"),
                 "-o", f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
                 "start"])
        except subprocess.CalledProcessError as exc:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(f"could not start PostgreSQL: {exc.stderr}\n{log}") from exc
        return server

    def create_database(self, name: str, template: str | None = None, replace: bool = False) -> None:
        """Creates database `name`, as a copy of database `template` when given; `replace` drops an
        existing `name` first, closing the connections still open to it."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            if replace:
                cur.execute(f'drop database if exists "{name}" with (force)')
            cur.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        conn.close()

    def stop(self) -> None:
        subprocess.run(self._as_owner() + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                                           "-w", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        subprocess.run(self._as_owner() + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                                           "-w", "-l", str(self.root / "log"), "restart"], check=True,
                       capture_output=True)
