"""`python -m producer.cli` is the `kirim` command."""

from producer.cli import main

main()
