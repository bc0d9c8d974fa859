"""Benchmarks: numbers about the server, measured on this machine, never asserted.

Run with `python -m bench [NAME...]` (or `make bench`); see bench/README.md.
"""
