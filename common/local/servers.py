"""Start and stop a local server process (a Kafka broker, an MLflow server, a Spark master or worker) on 127.0.0.1: its
own process group, a pid file and a log file in its state folder, up when its port answers."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable


class ServerError(RuntimeError):
    """A server could not start or did not come up; the message says where its log is."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def listener(port: int) -> str | None:
    """Who listens on 127.0.0.1:port, as "pid N (command line)", read from /proc; None when nobody does or
    the process is not visible to us."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()  # sl local_address rem_address st ... inode
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                command = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
                return f"pid {pid} ({command[:200]})"
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return None


def start(name: str, argv: list[str], folder: str, port: int, timeout_s: float = 60.0,
          env: dict[str, str] | None = None) -> None:
    """Run argv in the background (logging to <folder>/<name>.log, with `env` added to this process's
    environment) and wait until port answers."""
    pid_file, log_file = _pid_file(folder, name), os.path.join(folder, f"{name}.log")
    if alive(pid_file):
        raise ServerError(f"a {name} is already running from {folder} (pid file {pid_file})")
    if listening(port):
        raise ServerError(f"port {port} on 127.0.0.1 is taken by {listener(port) or 'another process'}: "
                          f"choose another port")
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    with open(pid_file, "w") as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while not listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(name, folder)
            raise ServerError(f"the {name} did not come up on 127.0.0.1:{port}; see {log_file}")
        time.sleep(0.3)


def stop(name: str, folder: str, timeout_s: float = 20.0) -> bool:
    """Stop the server started from folder: SIGTERM to its process group, SIGKILL to what is left after
    timeout_s; returns once every process of the group is gone (False if none ran)."""
    pid_file = _pid_file(folder, name)
    if not alive(pid_file):
        if os.path.exists(pid_file):
            os.remove(pid_file)
        return False
    pid = int(open(pid_file).read())
    os.killpg(pid, signal.SIGTERM)
    # The whole group, not its leader only: a launcher can exit while its JVM still holds the port.
    deadline = time.monotonic() + timeout_s
    while group_alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            while group_alive(pid):
                time.sleep(0.1)
            break
        time.sleep(0.2)
    os.remove(pid_file)
    return True


def group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies, exited but not reaped, are not)."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so split after ')'.
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # it exited while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def alive(pid_file: str) -> bool:
    if not os.path.exists(pid_file):
        return False
    pid = int(open(pid_file).read())
    try:
        os.kill(pid, 0)
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"  # a zombie has exited
    except (ProcessLookupError, FileNotFoundError):
        return False


def _pid_file(folder: str, name: str) -> str:
    return os.path.join(os.path.abspath(folder), f"{name}.pid")


def main(what: str, module: str, up: Callable[[str, int], str], down: Callable[[str], bool], default_dir: str,
         default_port: int, argv: list[str] | None = None) -> int:
    """`python -m <module> up|down [--dir D] [--port P]` for one kind of server."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=f"start or stop a local {what}")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=default_dir)
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            print(f"{what} up at {up(args.dir, args.port)} (state and log in {args.dir})")
        else:
            print(f"{what} stopped" if down(args.dir) else f"no {what} running from {args.dir}")
    except ServerError as e:
        print(f"{module}: error: {e}", file=sys.stderr)
        return 2
    return 0
