"""Overload control without processes: an injected clock, a backlog and a latency in, a sampling rate out."""

from __future__ import annotations

import pytest

from fer_stream.camera.overload import FpsGovernor


def governor(**kw) -> FpsGovernor:
    return FpsGovernor(**{"target_fps": 10.0, "min_fps": 1.0, "max_backlog": 64, "max_latency_s": 0.5, **kw})


def test_a_camera_with_headroom_keeps_its_rate_and_sheds_nothing():
    g = governor()
    for t in range(30):
        assert g.update(float(t), backlog=3, latency_s=0.05) == 10.0
    assert not g.over_capacity and g.take_shed_frames() == 0


@pytest.mark.parametrize("signal", [{"backlog": 200, "latency_s": 0.05}, {"backlog": 0, "latency_s": 2.0}])
def test_behind_on_either_signal_cuts_the_rate_down_to_the_floor(signal):
    g = governor()
    rates = [g.update(float(t), **signal) for t in range(20)]
    assert rates[0] == pytest.approx(7.5) and rates == sorted(rates, reverse=True)
    assert rates[-1] == 1.0 and g.over_capacity


def test_the_rate_climbs_back_when_the_load_goes_and_shed_frames_are_counted():
    g = governor()
    for t in range(5):
        g.update(float(t), backlog=200, latency_s=1.0)
    low = g.fps
    shed = g.take_shed_frames()
    assert 0 < low < 10 and shed > 0
    rates = [g.update(float(t), backlog=0, latency_s=0.05) for t in range(5, 30)]
    assert rates == sorted(rates) and rates[-1] == 10.0 and not g.over_capacity
    assert g.take_shed_frames() > 0, "frames not sampled while climbing back are counted too"
    assert g.take_shed_frames() == 0


def test_cameras_that_start_unequal_converge_on_equal_shares():
    """Additive increase, multiplicative decrease: two cameras under the same signals end within 20% of each other."""
    a, b = governor(target_fps=10.0), governor(target_fps=10.0)
    b.fps = 2.0
    for t in range(200):
        backlog = 100 if a.fps + b.fps > 8 else 0  # a shared classifier that keeps up with 8 frames a second
        a.update(float(t), backlog=backlog, latency_s=None)
        b.update(float(t), backlog=backlog, latency_s=None)
    assert abs(a.fps - b.fps) <= 0.2 * max(a.fps, b.fps)


def test_the_floor_never_exceeds_the_configured_rate():
    g = governor(target_fps=0.5, min_fps=1.0)
    assert g.update(0.0, backlog=500, latency_s=3.0) == 0.5


def test_a_camera_that_spends_all_its_time_working_is_starved_of_cpu():
    """The classifier keeps up, but the camera's own processing fills its time: the CPU is what is short."""
    g = governor()
    assert g.update(0.0, backlog=0, latency_s=0.05, busy=0.97) == pytest.approx(7.5) and g.over_capacity
    g.update(1.0, backlog=0, latency_s=0.05, busy=0.8)  # neither behind nor comfortably ahead: hold
    assert g.fps == pytest.approx(7.5)
    assert g.update(2.0, backlog=0, latency_s=0.05, busy=0.3) == pytest.approx(8.5)


def test_cpu_slots_bound_concurrent_frames_and_a_dead_holders_slot_comes_back():
    import multiprocessing
    import os

    from fer_stream.camera.slots import CpuSlots

    ctx = multiprocessing.get_context("spawn")
    slots = CpuSlots(ctx, 2)
    first, second = slots.acquire(0.1), slots.acquire(0.1)
    assert {first, second} == {0, 1}
    assert slots.acquire(0.05) is None, "no third camera works on a frame while two cores are busy"
    slots.release(first)
    again = slots.acquire(0.1)
    assert again == first
    # A camera killed while holding its slots: the supervisor gives them back by pid.
    assert slots.free_dead(os.getpid()) == 2
    assert {slots.acquire(0.1), slots.acquire(0.1)} == {0, 1}
    assert slots.free_dead(12345) == 0
