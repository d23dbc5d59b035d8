"""Command-line flags the way agnhost's Go programs (cobra/pflag) take them.

`--name=value`, `--name value`, `-name value`, and a bare `--name` for a boolean. Flags of the real
programs that we do not act on are accepted and ignored, so manifests written for them run unchanged.
"""
from __future__ import annotations

import sys


class UsageError(Exception):
    """Bad flags: the program prints "Error: <message>" and exits 1, as cobra does."""


def parse_flags(argv: list[str], spec: dict[str, object]) -> dict[str, object]:
    """Parse pflag-style flags; spec maps a flag name to its default (whose type is the flag's)."""
    values = dict(spec)
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            if arg == "--":
                break
            continue                            # positional arguments: none of ours take them
        name, has_value, value = arg.lstrip("-").partition("=")
        if name not in spec:
            print(f"ignoring unknown flag --{name}", file=sys.stderr)
            continue
        default = spec[name]
        if isinstance(default, bool):
            if has_value:
                values[name] = _parse_bool(name, value)
            else:
                values[name] = True
            continue
        if not has_value:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: --{name}")
            value = argv[i]
            i += 1
        try:
            values[name] = type(default)(value) if default is not None else value
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "--{name}" flag') from None
    return values


def _parse_bool(name: str, value: str) -> bool:
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{value}" for "--{name}" flag')
