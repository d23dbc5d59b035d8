"""Transactions through libnftables (netfilter's own library, as `nft` itself uses it).

Why not one `nft -f -` process per transaction: besides the fork and exec (about 3 ms), every
`nft` process closes its netlink socket on exit, and the kernel, on that close, waits for the
deferred destruction of whatever the last commit removed (`nf_tables_trans_destroy_flush_work`:
an RCU grace period). A transaction that deletes a map element, i.e. every endpoint change, so
cost 10-30 ms wall time here, where the commit itself takes well under a millisecond. One
context kept open for the agent's life keeps one socket: the kernel frees removed objects in
the background, and an endpoint change costs about 0.1 ms.

The binding is a few ctypes calls (Debian ships python3-nftables only for its own Python):
nft_ctx_new, nft_ctx_buffer_error, nft_run_cmd_from_buffer, nft_ctx_get_error_buffer.
Calls block, so they run on one worker thread: transactions stay in order and the event loop
keeps serving.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from concurrent.futures import ThreadPoolExecutor

from .nft import NftError, Transaction

LIBRARY = "libnftables.so.1"


def _load(name: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(name)
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


class LibNft:
    """One libnftables context (one netlink socket, in the caller's network namespace)."""

    def __init__(self, library: str = LIBRARY):
        self._lib = _load(library)
        self._ctx = self._lib.nft_ctx_new(0)     # NFT_CTX_DEFAULT
        if not self._ctx:
            raise NftError("nft_ctx_new failed")
        self._lib.nft_ctx_buffer_output(self._ctx)   # keep stdout clean; errors come back
        self._lib.nft_ctx_buffer_error(self._ctx)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nft")

    @staticmethod
    def available(library: str = LIBRARY) -> bool:
        try:
            ctypes.CDLL(library)
        except OSError:
            return False
        return True

    def run_text(self, text: str) -> None:
        """Apply one nft script as one atomic transaction (blocking)."""
        if self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode()) != 0:
            err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
            raise NftError(err.decode(errors="replace").strip()[:4000] or "nft failed")

    async def run(self, tx: Transaction) -> None:
        await self.run_script(tx.text())

    async def run_script(self, text: str) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.run_text, text)

    def close(self) -> None:
        if self._ctx:
            self._thread.shutdown(wait=True)
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None
