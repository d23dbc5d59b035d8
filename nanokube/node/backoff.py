"""Crash-loop back-off of restarted containers, with the kubelet's numbers.

The first restart is immediate; each following one waits 10 s, then twice as long each time
up to 5 minutes. A container that ran for 10 minutes before it ended starts over from zero.
"""
from __future__ import annotations

INITIAL = 10.0
MAXIMUM = 300.0
RESET_AFTER = 600.0


class BackOff:
    def __init__(self, initial: float = INITIAL, maximum: float = MAXIMUM,
                 reset_after: float = RESET_AFTER):
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self.current = 0.0          # the delay the next restart waits

    def next_delay(self, ran_for: float) -> float:
        """The wait before restarting a container that ran for `ran_for` seconds, and the step
        forward for the restart after it."""
        if ran_for >= self.reset_after:
            self.current = 0.0
        delay = self.current
        self.current = self.initial if self.current == 0 else min(self.current * 2, self.maximum)
        return delay


def should_restart(restart_policy: str, exit_code: int | None) -> bool:
    """Always restarts every exit, OnFailure a non-zero (or unknown) one, Never none."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True
