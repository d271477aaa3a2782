"""kirim's benchmarks (issue 8): `python -m bench [names…] [--quick]`; results in bench/results/."""
