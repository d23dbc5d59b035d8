"""The etcd store: the same revisioned key-value contract as the SQLite one, kept by an etcd
v3 cluster (Kubernetes' own store), so that several API servers can share one cluster state.

The client. etcd serves its v3 API over gRPC and, on the same client port, over its official
JSON gRPC-gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/kv/compaction`, `/v3/watch`; keys and
values in base64, int64 as strings). We talk to the gateway with aiohttp, already a dependency:
no generated code and no pinned protobuf/grpc (the `etcd3` package is unmaintained and pins
old ones; the gRPC clients that are kept up need the grpc toolchain and a generated stub set).
The gateway is part of every etcd release since 3.3 and is what `curl` users of etcd use.

The mapping, as kube-apiserver's etcd3 storage does it:
- the etcd revision is the resourceVersion; `create` is a txn "create_revision(key) == 0 ->
  put", `update`/`delete` are txns "mod_revision(key) == expected -> put/delete" (or "the key
  exists" when no revision is expected), with the current value read in the failure branch so
  a failed compare says NotFound or Conflict in one round trip;
- reads are linearizable (etcd's default), so a read after an acknowledged write on another
  API server sees it;
- a watch is one etcd watch stream (`prev_kv` on, starting at after_revision + 1): etcd sends
  history then live events in revision order with no gap; if the member serving it goes away,
  the watch resumes on another member from the next revision;
- compaction is etcd's (`/v3/kv/compaction`); "required revision has been compacted" becomes
  CompactedError (410 Gone above). etcd does not say where it is compacted to except in a
  watch's cancel, so a watch from revision 1 tells us when we need the number.

Several endpoints (`etcd://h1:p1,h2:p2`): requests go to one; when it cannot be reached or has
no leader, the next one is tried.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import AsyncIterator

import aiohttp

from nanokube.store import (ADDED, DELETED, MODIFIED, CompactedError, ConflictError, Event,
                            FutureRevisionError, KeyExistsError, KeyValue, NotFoundError,
                            PeriodicCompactor, Store, StoreError)
from nanokube.store.watch import Subscription

log = logging.getLogger(__name__)

SCHEME = "etcd://"
ERR_COMPACTED = "required revision has been compacted"
ERR_FUTURE = "required revision is a future revision"
# Answers that mean "this member cannot serve now, another may": no leader, leader changed...
_RETRY_CODES = {4, 14}        # gRPC DeadlineExceeded, Unavailable
_PROBE_KEY = b"\x00nanokube/compaction-probe"


def parse_endpoints(spec: str) -> list[str]:
    """`etcd://h1:p1,h2:p2` (or `h1:p1,...`, or http:// URLs) -> ["http://h1:p1", ...]."""
    body = spec[len(SCHEME):] if spec.startswith(SCHEME) else spec
    endpoints = []
    for part in body.split(","):
        part = part.strip().rstrip("/")
        if not part:
            continue
        if not part.startswith(("http://", "https://")):
            part = "http://" + part
        host_port = part.split("://", 1)[1]
        if ":" not in host_port:
            raise ValueError(f"invalid etcd endpoint {part!r}: want host:port")
        endpoints.append(part)
    if not endpoints:
        raise ValueError(f"no etcd endpoints in {spec!r}")
    return endpoints


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _range_end(prefix: bytes) -> bytes:
    """etcd's prefix end: the prefix with its last byte below 0xff incremented."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"   # every key


def _key_range(prefix: str) -> dict:
    key = prefix.encode()
    return {"key": _b64(key or b"\x00"), "range_end": _b64(_range_end(key))}


def _kv(raw: dict) -> KeyValue:
    return KeyValue(_unb64(raw.get("key")).decode(), _unb64(raw.get("value")),
                    int(raw.get("create_revision", 0)), int(raw.get("mod_revision", 0)))


class EtcdError(StoreError):
    def __init__(self, message: str, code: int = 0):
        super().__init__(f"etcd: {message}")
        self.code = code


class _Unavailable(Exception):
    """This endpoint cannot answer now; try another."""


class EtcdStore(Store):
    shared = True

    def __init__(self, endpoints: list[str] | str, *, compact_interval: float = 300.0,
                 compact_retain: int = 1000, watch_queue_size: int = 10000,
                 request_timeout: float = 10.0):
        self.endpoints = parse_endpoints(endpoints) if isinstance(endpoints, str) else endpoints
        self.compact_interval = compact_interval   # kube-apiserver: every 5 minutes
        self.compact_retain = compact_retain
        self.watch_queue_size = watch_queue_size
        self.request_timeout = request_timeout
        self._current = 0              # index of the endpoint in use
        self._session: aiohttp.ClientSession | None = None
        self._rev = 0
        self._compacted = 0
        self._watches: set[_Watch] = set()
        self._compactor = PeriodicCompactor(self, compact_interval, compact_retain)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._session is not None:
            return
        # Watches are long-lived streams, one connection each: no pool limit.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            await self._request("/v3/kv/range", {"key": _b64(_PROBE_KEY), "count_only": True})
            try:
                await self._request("/v3/kv/range", {"key": _b64(_PROBE_KEY), "revision": 1,
                                                     "count_only": True})
            except CompactedError:
                self._compacted = await self._learn_compacted()
        except BaseException:
            await self._session.close()
            self._session = None
            raise
        self._compactor.start()

    async def close(self) -> None:
        await self._compactor.stop()
        for watch in list(self._watches):
            watch.end()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def current_revision(self) -> int:
        """The highest revision this store has seen (its own writes, reads and watches)."""
        return self._rev

    def compacted_revision(self) -> int:
        return self._compacted

    # -- requests --------------------------------------------------------------------------

    def _observe(self, header: dict | None) -> int:
        rev = int((header or {}).get("revision", 0))
        if rev > self._rev:
            self._rev = rev
        return rev

    async def _request(self, path: str, body: dict) -> dict:
        """POST to the gateway; on an unreachable or leaderless member, the next one."""
        if self._session is None:
            raise StoreError("store is not open")
        last: Exception | None = None
        for attempt in range(3 * len(self.endpoints)):
            endpoint = self.endpoints[self._current]
            try:
                return await self._post(endpoint + path, body)
            except _Unavailable as err:
                last = err
                log.warning("etcd %s unavailable (%s); trying the next endpoint", endpoint, err)
                self._current = (self._current + 1) % len(self.endpoints)
                if self._current == 0:
                    await asyncio.sleep(0.2 * (attempt + 1))  # the whole ring failed: wait a bit
        raise EtcdError(f"no etcd endpoint answered: {last}")

    async def _post(self, url: str, body: dict) -> dict:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout, sock_connect=1.0)
        try:
            async with self._session.post(url, json=body, timeout=timeout) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, aiohttp.ClientPayloadError) as err:
            raise _Unavailable(str(err) or type(err).__name__) from None
        if isinstance(data, dict) and "error" in data:
            message, code = data.get("message") or data["error"], int(data.get("code", 0))
            if ERR_COMPACTED in message:
                raise CompactedError(int(body.get("revision", 0)), self._compacted)
            if ERR_FUTURE in message:
                raise FutureRevisionError(int(body.get("revision", 0)), self._rev)
            if code in _RETRY_CODES or resp.status >= 500:
                raise _Unavailable(message)
            raise EtcdError(message, code)
        self._observe(data.get("header"))
        return data

    async def _txn(self, compare: list, success: list, failure: list) -> dict:
        return await self._request("/v3/kv/txn", {"compare": compare, "success": success,
                                                  "failure": failure})

    # -- reads -----------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        data = await self._request("/v3/kv/range", {"key": _b64(key.encode())})
        kvs = data.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    async def list(self, prefix: str, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> tuple[list[KeyValue], int, bool]:
        if 0 < revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        body = _key_range(prefix)
        if start_after >= prefix:
            body["key"] = _b64(start_after.encode() + b"\x00")   # the next key after it
        if limit > 0:
            body["limit"] = limit
        if revision > 0:
            body["revision"] = revision
        try:
            data = await self._request("/v3/kv/range", body)
        except CompactedError:
            self._compacted = max(self._compacted, await self._learn_compacted())
            raise CompactedError(revision, self._compacted) from None
        items = [_kv(raw) for raw in data.get("kvs") or []]
        rev = revision if revision > 0 else int(data["header"]["revision"])
        return items, rev, bool(data.get("more"))

    async def count(self, prefix: str) -> int:
        data = await self._request("/v3/kv/range", {**_key_range(prefix), "count_only": True})
        return int(data.get("count", 0))

    # -- writes ----------------------------------------------------------------------------

    @staticmethod
    def _check_key(key: str) -> bytes:
        if not key:
            raise StoreError(f"invalid key: {key!r}")
        return key.encode()

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = _b64(self._check_key(key))
        data = await self._txn([{"target": "CREATE", "key": k, "create_revision": 0}],
                               [{"request_put": {"key": k, "value": _b64(value)}}], [])
        if not data.get("succeeded"):
            raise KeyExistsError(key)
        rev = int(data["header"]["revision"])
        return KeyValue(key, value, rev, rev)

    def _guard(self, k: str, expected_revision: int) -> dict:
        if expected_revision:
            return {"target": "MOD", "key": k, "mod_revision": expected_revision}
        return {"target": "CREATE", "key": k, "result": "GREATER", "create_revision": 0}

    def _failed(self, key: str, expected_revision: int, data: dict) -> StoreError:
        """NotFound or Conflict, from the current value read in the txn's failure branch."""
        kvs = (data["responses"][0].get("response_range") or {}).get("kvs") or []
        if not kvs:
            return NotFoundError(key)
        return ConflictError(key, expected_revision, _kv(kvs[0]))

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        k = _b64(self._check_key(key))
        data = await self._txn([self._guard(k, expected_revision)],
                               [{"request_put": {"key": k, "value": _b64(value), "prev_kv": True}}],
                               [{"request_range": {"key": k}}])
        if not data.get("succeeded"):
            raise self._failed(key, expected_revision, data)
        prev = _kv(data["responses"][0]["response_put"]["prev_kv"])
        return KeyValue(key, value, prev.create_revision, int(data["header"]["revision"]))

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        k = _b64(self._check_key(key))
        data = await self._txn([self._guard(k, expected_revision)],
                               [{"request_delete_range": {"key": k, "prev_kv": True}}],
                               [{"request_range": {"key": k}}])
        if not data.get("succeeded"):
            raise self._failed(key, expected_revision, data)
        prev = _kv(data["responses"][0]["response_delete_range"]["prev_kvs"][0])
        return KeyValue(key, prev.value, prev.create_revision, int(data["header"]["revision"]))

    # -- watch -----------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        return _Watch(self, prefix, after_revision)

    async def _watch_stream(self, create_request: dict) -> aiohttp.ClientResponse:
        """Open a watch stream on the endpoint in use (the next one if it is unreachable)."""
        if self._session is None:
            raise StoreError("store is not open")
        last: Exception | None = None
        for _ in range(len(self.endpoints)):
            url = self.endpoints[self._current] + "/v3/watch"
            try:
                resp = await self._session.post(
                    url, json={"create_request": create_request},
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=1.0))
                if resp.status == 200:
                    return resp
                resp.close()
                last = EtcdError(f"watch answered HTTP {resp.status}")
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as err:
                last = err
            self._current = (self._current + 1) % len(self.endpoints)
        raise _Unavailable(str(last))

    async def _learn_compacted(self) -> int:
        """The compacted revision: a watch from revision 1 is cancelled with it."""
        resp = await self._watch_stream({"key": _b64(_PROBE_KEY), "start_revision": 1})
        try:
            async with asyncio.timeout(5):
                async for result in _results(resp):
                    if result.get("compact_revision"):
                        return int(result["compact_revision"])
        except TimeoutError:
            pass
        finally:
            resp.close()
        return self._compacted

    # -- compaction ------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        if revision <= self._compacted:
            return
        try:
            await self._request("/v3/kv/compaction", {"revision": revision, "physical": True})
        except CompactedError:   # another API server compacted further already
            self._compacted = max(self._compacted, await self._learn_compacted())
            return
        except FutureRevisionError:
            raise FutureRevisionError(revision, self._rev) from None
        self._compacted = max(self._compacted, revision)


async def _results(resp: aiohttp.ClientResponse) -> AsyncIterator[dict]:
    """The gateway's stream: one JSON object per line, `{"result": WatchResponse}`."""
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            msg = json.loads(line)
            if "error" in msg:
                err = msg["error"]
                raise EtcdError(err.get("message", str(err)) if isinstance(err, dict) else str(err))
            yield msg.get("result") or {}


def _event(raw: dict) -> Event:
    kv, prev = _kv(raw["kv"]), raw.get("prev_kv")
    prev_kv = _kv(prev) if prev else None
    if raw.get("type") == "DELETE":
        if prev_kv is None:   # its last value is compacted away: the history is gone
            raise CompactedError(kv.mod_revision - 1, kv.mod_revision)
        return Event(DELETED, KeyValue(kv.key, prev_kv.value, prev_kv.create_revision,
                                       kv.mod_revision), prev_kv)
    if kv.create_revision == kv.mod_revision:
        return Event(ADDED, kv, None)
    return Event(MODIFIED, kv, prev_kv)


class _Watch:
    """One etcd watch stream, read by a task into a bounded buffer (as SQLite's live watchers):
    a cancelled wait of the consumer loses nothing, and a consumer that falls far behind is
    ended with WatcherTooSlowError."""

    def __init__(self, store: EtcdStore, prefix: str, after: int):
        self._store = store
        self._prefix = prefix
        self._next = after + 1          # the first revision still to deliver
        self._sub = Subscription(prefix, after, store.watch_queue_size)
        self._reader: asyncio.Task | None = None
        self._done = False

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> list[Event]:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._reader is None:
                self._start()
            return await self._sub.next_batch()
        except (Exception, StopAsyncIteration):
            self._finish()
            raise

    def _start(self) -> None:
        store = self._store
        if store._session is None:
            raise StopAsyncIteration
        after = self._next - 1
        if after < store._compacted:
            raise CompactedError(after, store._compacted)
        store._watches.add(self)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        store = self._store
        request = {**_key_range(self._prefix), "prev_kv": True}
        while not self._sub.ended:
            try:
                resp = await store._watch_stream({**request, "start_revision": self._next})
            except _Unavailable as err:
                log.warning("etcd watch on %s: %s; retrying", self._prefix, err)
                await asyncio.sleep(0.5)
                continue
            except Exception as err:
                self._sub.end(err)
                return
            try:
                async for result in _results(resp):
                    store._observe(result.get("header"))
                    if result.get("compact_revision"):
                        compacted = int(result["compact_revision"])
                        store._compacted = max(store._compacted, compacted)
                        self._sub.end(CompactedError(self._next - 1, compacted))
                        return
                    if result.get("canceled"):
                        self._sub.end(EtcdError(result.get("cancel_reason") or "watch canceled"))
                        return
                    for raw in result.get("events") or []:
                        event = _event(raw)
                        self._next = event.kv.mod_revision + 1
                        if not self._sub.push(event):
                            return
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                log.warning("etcd watch on %s broke (%s); resuming at revision %d",
                            self._prefix, err, self._next)
            except Exception as err:   # compacted history (a delete without its value), bugs
                self._sub.end(err)
                return
            finally:
                resp.close()
            if store._session is None:
                break
            # The stream ended without an error: the member went away. Resume on the next one.
            store._current = (store._current + 1) % len(store.endpoints)
            await asyncio.sleep(0.05)
        self._sub.end()

    def end(self) -> None:
        """The store closes: the consumer gets what is buffered, then the end."""
        self._sub.end()
        self._stop_reader()

    def _stop_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self._store._watches.discard(self)

    def _finish(self) -> None:
        self._done = True
        self._sub.end()
        self._stop_reader()

    async def aclose(self) -> None:
        self._finish()

    def __del__(self) -> None:
        if not self._done and self._reader is not None and not self._reader.done():
            self._reader.cancel()
