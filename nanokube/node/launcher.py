"""The last step of a container's start, run as `python -I -S launcher.py` (standard library
only, so it starts in milliseconds) inside the pod's network namespace and a fresh UTS and
private mount namespace:

    launcher.py HOSTNAME RESOLV_CONF HOSTS LOGFILE -- ARGV...

It sets the hostname, bind-mounts the pod's resolv.conf and hosts over /etc, starts a log pump
that writes the container's stdout/stderr to LOGFILE in the CRI log format
(`<RFC3339Nano> <stdout|stderr> <F|P> <text>`), then execs ARGV: the container keeps the pid
the agent started.
"""
import ctypes
import os
import select
import signal
import socket
import sys
import time

MS_BIND = 4096


def bind_mount(source: str, target: str) -> None:
    if not os.path.exists(target):
        return       # nothing to cover (a minimal root without that file)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount --bind {source} {target}: {os.strerror(err)}")


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def mount_service_account(source: str) -> None:
    """The pod's token, CA and namespace where in-cluster clients read them. The mount point
    is an empty directory under /run (a tmpfs); the mount itself is private to the pod."""
    if not os.path.isdir(source):
        return
    os.makedirs(SERVICE_ACCOUNT_DIR, exist_ok=True)
    bind_mount(source, SERVICE_ACCOUNT_DIR)


def timestamp() -> bytes:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z").encode()


def pump(fds: dict, log_fd: int) -> None:
    """Copy the pipes to the log until both are closed. A line that is not finished when a read
    returns is written as a partial (P) record; the reader joins it with what follows."""
    while fds:
        ready, _, _ = select.select(list(fds), [], [])
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                os.close(fd)
                del fds[fd]
                continue
            stream, ts = fds[fd], timestamp()
            lines = chunk.split(b"\n")
            out = [b"%s %s F %s\n" % (ts, stream, line) for line in lines[:-1]]
            if lines[-1]:
                out.append(b"%s %s P %s\n" % (ts, stream, lines[-1]))
            os.write(log_fd, b"".join(out))


def start_pump(log_path: str) -> tuple[int, int]:
    """Fork the pump off (twice, so that it is not a child of the container's process) and
    return the write ends of its stdout and stderr pipes."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:
                os.close(out_w)
                os.close(err_w)
                os.setsid()
                pump({out_r: b"stdout", err_r: b"stderr"}, log_fd)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    os.close(out_r)
    os.close(err_r)
    os.close(log_fd)
    return out_w, err_w


def main(argv: list[str]) -> None:
    if len(argv) < 6 or argv[4] != "--":
        sys.stderr.write("usage: launcher.py HOSTNAME RESOLV HOSTS LOGFILE -- ARGV...\n")
        os._exit(2)
    hostname, resolv, hosts, logfile, command = argv[0], argv[1], argv[2], argv[3], argv[5:]
    out_w, err_w = start_pump(logfile)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    try:
        if hostname:
            socket.sethostname(hostname)
        if resolv:
            bind_mount(resolv, "/etc/resolv.conf")
        if hosts:
            bind_mount(hosts, "/etc/hosts")
        mount_service_account(os.path.join(os.path.dirname(resolv or hosts), "serviceaccount"))
        # Python ignores SIGPIPE and SIGXFSZ; an ignored signal would stay ignored after exec
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        os.execvp(command[0], command)
    except OSError as e:
        # what a runtime reports when the process cannot be started
        sys.stderr.write(f"exec: \"{command[0]}\": {e.strerror or e}\n")
        sys.stderr.flush()
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)


if __name__ == "__main__":
    main(sys.argv[1:])
