"""Drivers: how the suite reaches the system under test (API, CLI, IB, processes, faults, history)."""
