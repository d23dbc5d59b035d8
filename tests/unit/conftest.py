"""Unit tests never touch the machine's network: a guard over the whole unit session.

They run as root in CI, so a forgotten fake would program the host namespace's firewall
(once, an un-faked `nft` in the CNI tests did). The host must end the session with no
nanokube nftables table."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _host_tables() -> set[str]:
    if os.geteuid() != 0 or not shutil.which("nft"):
        return set()
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if "nanokube" in line}


@pytest.fixture(scope="session", autouse=True)
def host_firewall_untouched():
    before = _host_tables()
    yield
    made = _host_tables() - before
    assert not made, f"unit tests programmed the host's firewall: {sorted(made)}"
