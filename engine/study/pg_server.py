"""A throw-away PostgreSQL cluster (Debian ``postgresql``) for tests and CI.

``initdb`` into a temporary folder, ``pg_ctl start`` listening on 127.0.0.1 at a random free
port with its unix socket inside that folder, trust authentication for one user, ``stop``
removes it. PostgreSQL refuses to run as root: under root the folder is handed to the
``postgres`` system user (created by the Debian package) and the server runs as that user.

    python -m engine.study.pg_server --check   # start, connect, stop
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from engine.errors import ConfigError


def pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` holding initdb and pg_ctl, or None."""
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
                   if Path(p).parts[-3].isdigit() else 0)
    if cands:
        return Path(cands[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def missing_reason() -> str | None:
    """Why a throw-away PostgreSQL cannot start here (None when it can)."""
    b = pg_bin()
    if b is None or not (b / "pg_ctl").exists():
        return "PostgreSQL server binaries not found (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """Start/stop a private PostgreSQL; ``url`` is ``postgresql://br@127.0.0.1:<port>/study``."""

    def __init__(self, root: Path | None = None, user: str = "br", dbname: str = "study") -> None:
        self._own = root is None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="br-pg-"))
        self.user, self.dbname = user, dbname
        self.port = 0
        self._as: list[str] = []

    @property
    def url(self) -> str:
        """Connection URL (trust authentication, loopback TCP)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=timeout, check=False,
                              cwd="/")

    def start(self) -> PgServer:
        """initdb, start, create the database.

        Raises:
            ConfigError: The server cannot be installed/started here (with initdb/pg_ctl's reason).
        """
        reason = missing_reason()
        if reason:
            raise ConfigError(reason)
        b = pg_bin()
        assert b is not None
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            for p in (self.root, sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        r = self._run(str(b / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                      "--no-sync", "--locale=C")
        if r.returncode != 0:
            raise ConfigError(f"initdb failed: {(r.stderr or r.stdout).strip()[-400:]}")
        for _attempt in range(3):
            self.port = _free_port()
            opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} -c fsync=on -c max_connections=50"
            r = self._run(str(b / "pg_ctl"), "-D", str(data), "-l", str(self.root / "pg.log"), "-o", opts,
                          "-w", "-t", "60", "start")
            if r.returncode == 0:
                break
        else:
            log = (self.root / "pg.log").read_text(errors="replace")[-400:] if (self.root / "pg.log").exists() else ""
            raise ConfigError(f"pg_ctl start failed: {(r.stderr or r.stdout).strip()[-300:]} {log}")
        r = self._run(str(b / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.dbname)
        if r.returncode != 0:
            self.stop()
            raise ConfigError(f"createdb failed: {r.stderr.strip()[-300:]}")
        return self

    def create_database(self, name: str) -> str:
        """Another empty database on this server; returns its URL."""
        b = pg_bin()
        assert b is not None
        r = self._run(str(b / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        if r.returncode != 0:
            raise ConfigError(f"createdb {name} failed: {r.stderr.strip()[-300:]}")
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and remove a temporary root.

        A throw-away cluster is stopped with ``-m immediate`` (no shutdown checkpoint: its files
        are deleted next); a kept one with ``-m fast``.
        """
        b = pg_bin()
        if b is not None and (self.root / "data" / "postmaster.pid").exists():
            mode = "immediate" if self._own else "fast"
            self._run(str(b / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop", timeout=60)
        if self._own:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.study.pg_server --check``: start, connect, stop."""
    reason = missing_reason()
    if reason:
        print(f"pg_server: {reason}", file=sys.stderr)
        return 2
    with PgServer() as srv:
        import psycopg

        with psycopg.connect(srv.url) as c:
            v = c.execute("SHOW server_version").fetchone()
        print(f"PostgreSQL {v[0] if v else '?'} at {srv.url} ({srv.root})")
        if "--check" not in (sys.argv[1:] if argv is None else argv):
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
