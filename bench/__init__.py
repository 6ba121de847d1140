"""Benchmarks: every figure measured beside its limit or baseline in the same run (`python -m bench`).

The function runs in this process (or in fresh ones where memory or a cold start is measured);
the COS emulator always runs in a process of its own, so that its CPU and memory are not
counted as the function's. Figures are printed and written, never asserted.
"""
