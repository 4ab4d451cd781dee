"""The profiler's own cost per node, taken off profiled kernels before they share a block's latency."""

import numpy as np

from hwprof.predictors.kernel_rf import profiler_node_cost


def _blocks(cost_per_node: float, seed: int = 0):
    """Synthetic profiled blocks: true node times, profiled with ``cost_per_node`` added to each node,
    timed without the profiler with a per-run overhead of 0.02 ms."""
    rng = np.random.default_rng(seed)
    rows, profiles = [], {"hwprof": {}}
    for i in range(40):
        nodes = rng.uniform(0.002, 0.3, size=int(rng.integers(3, 12)))
        block = f"block{i}"  # any hashable key works as the block
        rows.append(("hwprof", block, float(nodes.sum() + 0.02)))
        profiles["hwprof"][block] = {f"n{j}": float(t + cost_per_node) for j, t in enumerate(nodes)}
    return rows, profiles


def test_the_profilers_cost_per_node_is_recovered_from_blocks_timed_with_and_without_it():
    rows, profiles = _blocks(0.005)
    assert abs(profiler_node_cost(rows, profiles) - 0.005) < 1e-9


def test_a_profiler_that_adds_nothing_is_not_corrected_and_too_few_blocks_give_zero():
    rows, profiles = _blocks(0.0)
    assert abs(profiler_node_cost(rows, profiles)) < 1e-9
    assert profiler_node_cost(rows[:5], profiles) == 0.0
    assert profiler_node_cost(rows, {}) == 0.0
