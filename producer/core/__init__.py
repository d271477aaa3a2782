"""What the producer side and the worker both stand on: the job contract, Redis keys and
records, the Lua scripts, requeueing, the guard, circuits, dead letters, settings, logs.

It imports nothing of `producer.client`, `producer.api`, `producer.cli` or `worker`.
"""
