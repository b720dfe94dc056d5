"""A camera process that stops hands its last alerts (the episode ends) to the supervisor before it exits."""

from __future__ import annotations

import multiprocessing

from alerts_fixtures import make_alert

from fer_stream.queues import BoundedQueue

N_ALERTS = 300


def _camera_exiting(alerts: BoundedQueue) -> None:
    alerts.detach_on_exit()  # as every camera worker does at start
    for track_id in range(N_ALERTS):
        alerts.put(make_alert(track_id=track_id, event="end"))
    assert alerts.flush(5.0)


def test_flush_delivers_every_alert_put_just_before_the_process_exits():
    ctx = multiprocessing.get_context("spawn")
    alerts: BoundedQueue = BoundedQueue(ctx, "alerts", 1024)
    child = ctx.Process(target=_camera_exiting, args=(alerts,))
    child.start()
    received = []
    while child.is_alive() or alerts.wait(0.5):
        alerts.wait(0.5)
        received += alerts.drain(1024)
    child.join(10)
    assert child.exitcode == 0
    assert sorted(a.track_id for a in received) == list(range(N_ALERTS))


def test_flush_gives_up_when_nobody_reads():
    ctx = multiprocessing.get_context("spawn")
    alerts: BoundedQueue = BoundedQueue(ctx, "alerts", 100_000)
    for track_id in range(2000):  # ~1.5 MB: more than the pipe holds, and nobody drains it
        alerts.put(make_alert(track_id=track_id))
    assert alerts.flush(0.5) is False
    alerts.close()
