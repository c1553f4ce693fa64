"""Benchmarks that print numbers: `python -m improve.bench` (cli.py), one module per benchmark."""
