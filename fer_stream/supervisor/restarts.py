"""When to restart a dead child: exponential backoff that forgets after a healthy run.

A child that crashes at once is retried after 0.5 s, 1 s, 2 s, ... up to
``max_s``, so a broken camera does not spin the CPU; a child that ran for
``healthy_after_s`` before dying starts again from the short delay.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestartPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    healthy_after_s: float = 60.0
    failures: int = 0

    def delay_after_death(self, ran_for_s: float) -> float:
        """Seconds to wait before restarting a child that just died after ``ran_for_s``."""
        if ran_for_s >= self.healthy_after_s:
            self.failures = 0
        delay = min(self.max_s, self.initial_s * 2**self.failures)
        self.failures += 1
        return delay
