"""How fast the journey generator makes events (one core, no Kafka).

.venv/bin/python bench/simulator_speed.py [--events 200000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from suuupra.simulate.journeys import SimulationProfile, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    for seed in range(3):
        began = time.perf_counter()
        for _ in generate(SimulationProfile(seed=seed), args.events):
            pass
        seconds = time.perf_counter() - began
        print(f"seed {seed}: {args.events:,} events in {seconds:.2f} s = {args.events / seconds:,.0f} events/s")
    tracemalloc.start()
    for _ in generate(SimulationProfile(seed=0), args.events):
        pass
    _current, peak = tracemalloc.get_traced_memory()
    print(f"peak Python memory while generating {args.events:,} events: {peak / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
