"""A faithful, fast NusaSMS twin for tests, the demo and benchmarks (never imports worker).

Run it with `python -m sandbox`; drive it with `sandbox.control.SandboxControl`.
"""
