"""`make bench`: round trips, cold start, warm latency, concurrency and memory, measured side by side.

Kept free of imports: `bench.probe` runs inside the fresh processes whose start-up it times.
"""
