"""The built-in image catalogue: what a container's `image` runs when there is no container runtime.

A pod's containers are plain processes. An image is therefore only a name for a program: either one
we ship (agnhost, the ingress-conformance echoserver, an nginx stand-in; each a small stdlib-asyncio
server started with `python -m nanokube.images.<program>`) or the host's own binaries (busybox,
alpine, python, debian, ubuntu: "run this command").

`container_argv` applies Kubernetes' rules: `command` replaces the image's ENTRYPOINT, `args`
replaces its CMD, and a `command` without `args` drops the image's CMD too. `$(VAR)` expansion is
the kubelet's job and has already happened when this is called.

This module imports nothing heavy: the node agent calls it for every container it starts, and
every program here imports it first (it is their package).
"""
from __future__ import annotations

import os
import sys

__all__ = ["UnknownImage", "CommandNotFound", "Image", "CATALOGUE", "lookup", "container_argv",
           "parse_image"]


class UnknownImage(Exception):
    """The container cannot be started; the message is the reason shown in its Waiting state."""


class CommandNotFound(UnknownImage):
    """The command names no program on this host (the runtime's "executable file not found")."""


class Image:
    """What an image would run: its ENTRYPOINT and CMD, and which programs it ships."""
    __slots__ = ("name", "entrypoint", "cmd", "programs")

    def __init__(self, name: str, entrypoint: tuple[str, ...] = (), cmd: tuple[str, ...] = (),
                 programs: dict[str, str] | None = None):
        self.name = name
        self.entrypoint = entrypoint
        self.cmd = cmd
        # program names inside the image (as written in a command) -> our module that plays it
        self.programs = programs or {}

    def __repr__(self) -> str:
        return f"Image({self.name!r})"


def _module(name: str) -> str:
    return f"nanokube.images.{name}"


AGNHOST = Image("agnhost", ("/agnhost",), ("pause",),
                {"/agnhost": _module("agnhost"), "agnhost": _module("agnhost")})
# kubernetes-sigs/ingress-controller-conformance's echoserver (gateway-api's echo-basic answers alike)
ECHOSERVER = Image("echoserver", ("/echoserver",), (),
                   {"/echoserver": _module("echoserver"), "echoserver": _module("echoserver"),
                    "/echo-basic": _module("echoserver"), "echo-basic": _module("echoserver")})
# docker-library nginx: ENTRYPOINT /docker-entrypoint.sh execs its CMD, so the CMD is what counts
NGINX = Image("nginx", (), ("nginx", "-g", "daemon off;"),
              {name: _module("nginx") for name in
               ("nginx", "nginx-debug", "/usr/sbin/nginx", "/usr/sbin/nginx-debug")})
# registry.k8s.io/pause: the sandbox image, sometimes used as a do-nothing container
PAUSE = Image("pause", ("/pause",), (), {"/pause": _module("agnhost")})
SHELLS = {
    "busybox": Image("busybox", (), ("sh",)),
    "alpine": Image("alpine", (), ("/bin/sh",)),
    "python": Image("python", (), ("python3",)),
    "debian": Image("debian", (), ("bash",)),
    "ubuntu": Image("ubuntu", (), ("/bin/bash",)),
}
# nanokube itself: addons (cluster DNS, the ingress controller) run `nanokube ARGS` in their pods
NANOKUBE = Image("nanokube", ("/nanokube",), (),
                 {"/nanokube": "nanokube", "nanokube": "nanokube"})
CATALOGUE = {"agnhost": AGNHOST, "echoserver": ECHOSERVER, "nginx": NGINX, "pause": PAUSE,
             "nanokube": NANOKUBE, **SHELLS}
CATALOGUE_NAMES = "agnhost, echoserver, nginx, busybox, alpine, python"

# names a command may use for the Python interpreter; they all run the interpreter we run on
_PYTHONS = {"python", "python3", "python3.11", "python3.12"}


def parse_image(image: str) -> tuple[str, str]:
    """Split an image reference into (registry, repository path); tag and digest are dropped.

    `nginx` -> ("docker.io", "library/nginx"); `registry.k8s.io/e2e-test-images/agnhost:2.47`
    -> ("registry.k8s.io", "e2e-test-images/agnhost"); `localhost:5000/x@sha256:..` -> ("localhost:5000", "x").
    """
    ref = image.strip().split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:                      # a tag (a colon before the last slash is a registry port)
        ref = ref[:colon]
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", ref
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return registry, path.lower()


def lookup(image: str) -> Image | None:
    """The catalogue entry an image reference names, matched by repository (any registry/tag)."""
    registry, path = parse_image(image)
    last = path.rsplit("/", 1)[-1]
    if last == "agnhost":
        return AGNHOST
    if last == "echo-basic" or (last == "echoserver" and "ingressconformance" in path):
        return ECHOSERVER
    if last == "pause" and registry in ("registry.k8s.io", "k8s.gcr.io", "gcr.io"):
        return PAUSE
    # e2e-test-images/busybox, library/busybox, public.ecr.aws/docker/library/python, ...
    return CATALOGUE.get(last) if last in ("nginx", "nanokube", *SHELLS) else None


def container_argv(image: str, command: list[str] | None, args: list[str] | None) -> list[str]:
    """The argv that runs a container of `image` with the pod spec's `command` and `args`.

    Raises UnknownImage (or its CommandNotFound) with the reason to show when it cannot run.
    """
    command = list(command or [])          # Kubernetes treats an empty list as not given
    args = list(args or [])
    entry = lookup(image)
    if entry is None:
        if not command:
            raise UnknownImage(
                f'image "{image}" is not in nanokube\'s built-in catalogue ({CATALOGUE_NAMES}); '
                "set command to run a host program")
        entry = Image(image)
    argv = (command or list(entry.entrypoint)) + (args if (args or command) else list(entry.cmd))
    if not argv:
        raise UnknownImage(f'image "{image}": no command specified')
    return _resolve(entry, argv)


def _resolve(entry: Image, argv: list[str]) -> list[str]:
    """Map argv[0] to a program we ship, to this Python, or to a host binary on PATH."""
    program, rest = argv[0], argv[1:]
    if program in entry.programs:
        return [sys.executable, "-m", entry.programs[program], *rest]
    if os.path.basename(program) in _PYTHONS:
        return [sys.executable, *rest]
    if "/" in program:
        if not os.path.isfile(program):
            raise CommandNotFound(f'exec: "{program}": stat {program}: no such file or directory')
        if not os.access(program, os.X_OK):
            raise CommandNotFound(f'exec: "{program}": permission denied')
        return argv
    import shutil                          # only here: it is slow to import for the programs
    found = shutil.which(program)
    if found is None:
        raise CommandNotFound(f'exec: "{program}": executable file not found in $PATH')
    return [found, *rest]
