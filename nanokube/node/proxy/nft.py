"""nftables adapter: a Transaction collects a whole change, one `nft -f -` run applies it.

The kernel applies an nft script atomically: either every command takes effect or none does, so
a sync never leaves a half-programmed Service behind. `FakeNft` applies the same transactions to
an in-memory table with the kernel's main refusals (unknown objects, changed map values, deleting
a chain still referenced), so rendering and diffing are tested without root.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

Op = tuple  # (verb, kind, name, arg1, arg2)


class NftError(RuntimeError):
    pass


@dataclass
class Transaction:
    family: str = "ip"
    table: str = "nanokube"
    ops: list[Op] = field(default_factory=list)

    # --- table
    def add_table(self, comment: str = "") -> None:
        self.ops.append(("add", "table", self.table, comment, None))

    def delete_table(self) -> None:
        self.ops.append(("delete", "table", self.table, None, None))

    # --- chains and rules
    def add_chain(self, name: str, hook: str | None = None) -> None:
        """`hook` is the base-chain spec, e.g. 'type nat hook output priority -100'."""
        self.ops.append(("add", "chain", name, hook, None))

    def flush_chain(self, name: str) -> None:
        self.ops.append(("flush", "chain", name, None, None))

    def delete_chain(self, name: str) -> None:
        self.ops.append(("delete", "chain", name, None, None))

    def add_rule(self, chain: str, rule: str) -> None:
        self.ops.append(("add", "rule", chain, rule, None))

    # --- sets and maps
    def add_set(self, name: str, spec: str) -> None:
        self.ops.append(("add", "set", name, spec, None))

    def add_map(self, name: str, spec: str) -> None:
        self.ops.append(("add", "map", name, spec, None))

    def flush_map(self, name: str) -> None:
        self.ops.append(("flush", "map", name, None, None))

    def delete_map(self, name: str) -> None:
        self.ops.append(("delete", "map", name, None, None))

    def add_element(self, name: str, key: str, value: str | None = None) -> None:
        self.ops.append(("add", "element", name, key, value))

    def delete_element(self, name: str, key: str) -> None:
        self.ops.append(("delete", "element", name, key, None))

    def __len__(self) -> int:
        return len(self.ops)

    def text(self) -> str:
        """The nft script. Consecutive element operations on one map share one command."""
        out: list[str] = []
        prefix = f"{self.family} {self.table}"
        i = 0
        ops = self.ops
        while i < len(ops):
            verb, kind, name, a, b = ops[i]
            if kind == "element":
                items = []
                j = i
                while (j < len(ops) and ops[j][1] == "element" and ops[j][0] == verb
                       and ops[j][2] == name and len(items) < 2000):
                    _, _, _, key, value = ops[j]
                    items.append(key if value is None or verb == "delete" else f"{key} : {value}")
                    j += 1
                out.append(f"{verb} element {prefix} {name} {{ {', '.join(items)} }}")
                i = j
                continue
            if kind == "table":
                if verb == "add" and a:
                    out.append(f"add table {prefix} {{ comment {quote(a)} ; }}")
                else:
                    out.append(f"{verb} table {prefix}")
            elif kind == "chain" and verb == "add" and a:
                out.append(f"add chain {prefix} {name} {{ {a} ; }}")
            elif kind == "rule":
                out.append(f"add rule {prefix} {name} {a}")
            elif kind in ("set", "map") and verb == "add":
                out.append(f"add {kind} {prefix} {name} {{ {a} ; }}")
            else:
                out.append(f"{verb} {kind} {prefix} {name}")
            i += 1
        return "\n".join(out) + "\n"


def quote(s: str) -> str:
    return '"' + s.replace('"', "'") + '"'


class NftCli:
    """Runs transactions through the `nft` command (as knftables does)."""

    def __init__(self, binary: str = "nft"):
        self.binary = binary

    async def run(self, tx: Transaction) -> None:
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-f", "-", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(tx.text().encode())
        if proc.returncode != 0:
            raise NftError(err.decode(errors="replace").strip()[:4000])

    def close(self) -> None:
        """Nothing held between transactions (LibNft holds a context)."""


_REF = re.compile(r"\b(?:goto|jump) ([\w./:-]+)")
_MAP_REF = re.compile(r"@([\w./:-]+)")


class FakeNft:
    """An in-memory nft: keeps the table that the applied transactions describe."""

    def __init__(self) -> None:
        self.transactions: list[Transaction] = []
        self.exists = False
        self.chains: dict[str, list[str]] = {}
        self.base_chains: dict[str, str] = {}
        self.maps: dict[str, dict[str, str | None]] = {}
        self.map_specs: dict[str, tuple[str, str]] = {}  # name -> (kind, spec)
        self.fail_next: str | None = None

    async def run(self, tx: Transaction) -> None:
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise NftError(msg)
        snapshot = self._snapshot()
        try:
            for op in tx.ops:
                self._apply(op)
        except NftError:
            self._restore(snapshot)  # a failed transaction changes nothing
            raise
        self.transactions.append(tx)

    def close(self) -> None:
        pass

    @property
    def last(self) -> Transaction:
        return self.transactions[-1]

    def object_counts(self) -> dict[str, int]:
        return {
            "chains": len(self.chains),
            "rules": sum(len(r) for r in self.chains.values()),
            "maps": len(self.maps),
            "elements": sum(len(m) for m in self.maps.values()),
        }

    def _snapshot(self):
        return (self.exists, {k: list(v) for k, v in self.chains.items()}, dict(self.base_chains),
                {k: dict(v) for k, v in self.maps.items()}, dict(self.map_specs))

    def _restore(self, s) -> None:
        self.exists, self.chains, self.base_chains, self.maps, self.map_specs = s

    def _references(self, target: str, kind: str) -> bool:
        pattern = _REF if kind == "chain" else _MAP_REF
        for rules in self.chains.values():
            for r in rules:
                if target in pattern.findall(r):
                    return True
        if kind == "chain":
            for m in self.maps.values():
                for v in m.values():
                    if v and target in _REF.findall(v):
                        return True
        return False

    def _apply(self, op: Op) -> None:  # noqa: C901 - a dispatcher over nft verbs
        verb, kind, name, a, b = op
        if kind == "table":
            if verb == "add":
                self.exists = True
            else:
                if not self.exists:
                    raise NftError("No such file or directory: table")
                self.exists = False
                self.chains, self.base_chains, self.maps, self.map_specs = {}, {}, {}, {}
            return
        if not self.exists:
            raise NftError(f"No such file or directory: table (for {kind} {name})")
        if kind == "chain":
            if verb == "add":
                self.chains.setdefault(name, [])
                if a:
                    self.base_chains[name] = a
            elif name not in self.chains:
                raise NftError(f"No such file or directory: chain {name}")
            elif verb == "flush":
                self.chains[name] = []
            elif verb == "delete":
                if self.chains[name]:
                    raise NftError(f"Device or resource busy: chain {name} not empty")
                if self._references(name, "chain"):
                    raise NftError(f"Device or resource busy: chain {name} in use")
                del self.chains[name]
                self.base_chains.pop(name, None)
        elif kind == "rule":
            if name not in self.chains:
                raise NftError(f"No such file or directory: chain {name}")
            for ref in _REF.findall(a):
                if ref not in self.chains:
                    raise NftError(f"No such file or directory: chain {ref} (in rule)")
            for ref in _MAP_REF.findall(a):
                if ref not in self.maps:
                    raise NftError(f"No such file or directory: set {ref} (in rule)")
            self.chains[name].append(a)
        elif kind in ("set", "map"):
            if verb == "add":
                if name in self.map_specs and self.map_specs[name] != (kind, a):
                    raise NftError(f"File exists: {kind} {name} with another definition")
                self.maps.setdefault(name, {})
                self.map_specs[name] = (kind, a)
            elif name not in self.maps:
                raise NftError(f"No such file or directory: {kind} {name}")
            elif verb == "flush":
                self.maps[name] = {}
            elif verb == "delete":
                if self._references(name, "map"):
                    raise NftError(f"Device or resource busy: {kind} {name} in use")
                del self.maps[name]
                del self.map_specs[name]
        elif kind == "element":
            if name not in self.maps:
                raise NftError(f"No such file or directory: map {name}")
            m = self.maps[name]
            if verb == "add":
                if b:
                    for ref in _REF.findall(b):
                        if ref not in self.chains:
                            raise NftError(f"No such file or directory: chain {ref} (in element)")
                if a in m and m[a] != b:
                    raise NftError(f"File exists: element {a} of {name} has another value")
                m[a] = b
            else:
                if a not in m:
                    raise NftError(f"No such file or directory: element {a} of {name}")
                del m[a]
