"""The libnftables runner: errors come back as NftError with nft's own message, in order."""
import asyncio

import pytest

from nanokube.node.proxy.libnft import LibNft
from nanokube.node.proxy.nft import NftError, Transaction

pytestmark = pytest.mark.skipif(not LibNft.available(), reason="libnftables not installed")


def test_syntax_error_is_reported_with_nfts_message():
    nft = LibNft()
    try:
        with pytest.raises(NftError, match="syntax error"):
            nft.run_text("add frobnicate ip nanokube\n")
    finally:
        nft.close()


def test_run_goes_through_the_worker_thread_and_reports_errors():
    nft = LibNft()
    tx = Transaction(table="nanokube-unit-test")
    tx.add_rule("no-such-chain", "counter bogus-keyword")
    try:
        with pytest.raises(NftError):
            asyncio.run(nft.run(tx))
    finally:
        nft.close()
