#!/usr/bin/env python3
"""FedAvg the way Python frameworks write it with numpy: scale each layer of each result by its
example count, add the scaled layers up with reduce(np.add, ...), divide by the total count.

Usage: numpy_fedavg.py PARAMETERS UPDATES
Prints the best of three timings in seconds (the aggregation only, not making the inputs).
bench_aggregation runs it for its numpy column; the inputs match its own: float32 values, the
model split into four layers, example counts 1, 2, ..., UPDATES.
"""
import sys
import time
from functools import reduce

import numpy as np


def aggregate(results):
    total = sum(examples for _, examples in results)
    scaled = [[layer * examples for layer in layers] for layers, examples in results]
    return [reduce(np.add, layer) / total for layer in zip(*scaled)]


def main():
    size, count = int(sys.argv[1]), int(sys.argv[2])
    bounds = [0, size // 2, 3 * size // 4, size - size // 100, size]  # four layers of unequal size
    results = []
    for u in range(count):
        flat = ((np.arange(size, dtype=np.int64) + 7 * u) % 97).astype(np.float32) * np.float32(0.01) - np.float32(0.3)
        results.append(([flat[a:b].copy() for a, b in zip(bounds, bounds[1:])], u + 1))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        aggregate(results)
        best = min(best, time.perf_counter() - start)
    print(f"{best:.6f}")


if __name__ == "__main__":
    main()
