"""Leader election on a Lease: one leader at a time, takeover after a crash or a clean stop,
and a leader that cannot renew stops leading within renewDeadline."""
import asyncio
import time

import pytest

from nanokube.api.errors import StatusError
from nanokube.api.storage import ResourceStorage
from nanokube.controllers.leaderelection import ElectionConfig, LeaderElector, StorageLeases
from nanokube.registry.lease import LeaseStrategy
from nanokube.store.sqlite import SQLiteStore

FAST = dict(lease_duration=0.8, renew_deadline=0.5, retry_period=0.1)


@pytest.fixture
async def leases(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    yield ResourceStorage(LeaseStrategy(), store)
    await store.close()


class Candidate:
    def __init__(self, storage, name: str):
        config = ElectionConfig("kube-system", "kube-controller-manager", **FAST)
        self.access = StorageLeases(storage, config.namespace, config.name)
        self.elector = LeaderElector(self.access, config, name)
        self.stop = asyncio.Event()
        self.leading = False
        self.terms = 0
        self.task = asyncio.create_task(self.elector.run(self._lead, self.stop))

    async def _lead(self):
        self.leading, self.terms = True, self.terms + 1
        try:
            await asyncio.Event().wait()
        finally:
            self.leading = False


async def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_timings_must_nest():
    with pytest.raises(ValueError):
        ElectionConfig(lease_duration=5, renew_deadline=10, retry_period=2).validate()


async def test_one_leader_and_takeover_after_a_crash(leases):
    a, b = Candidate(leases, "a"), Candidate(leases, "b")
    await wait_until(lambda: a.leading or b.leading)
    for _ in range(10):   # never both
        await asyncio.sleep(0.05)
        assert a.leading != b.leading
    leader, other = (a, b) if a.leading else (b, a)
    lease = await leases.get("kube-system", "kube-controller-manager")
    assert lease["spec"]["holderIdentity"] == ("a" if leader is a else "b")
    leader.task.cancel()            # a crash: the Lease is not released
    await asyncio.gather(leader.task, return_exceptions=True)
    t0 = time.monotonic()
    await wait_until(lambda: other.leading)
    assert time.monotonic() - t0 >= 0.4   # it waited for the lease to run out
    lease = await leases.get("kube-system", "kube-controller-manager")
    assert lease["spec"]["leaseTransitions"] == 1
    other.stop.set()
    await other.task


async def test_a_clean_stop_hands_over_at_once(leases):
    a = Candidate(leases, "a")
    await wait_until(lambda: a.leading)
    b = Candidate(leases, "b")
    await asyncio.sleep(0.3)
    assert not b.leading
    a.stop.set()
    await a.task
    t0 = time.monotonic()
    await wait_until(lambda: b.leading)
    assert time.monotonic() - t0 < 0.6
    b.stop.set()
    await b.task


async def test_a_leader_that_cannot_renew_steps_down(leases):
    a = Candidate(leases, "a")
    await wait_until(lambda: a.leading)

    async def unreachable(lease):
        raise StatusError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
    a.access.update = unreachable
    t0 = time.monotonic()
    await wait_until(lambda: not a.leading)
    assert time.monotonic() - t0 < 1.0    # renewDeadline 0.5 s and a retry period
    a.stop.set()
    await a.task
