"""Shared pytest configuration: every test's servers bind loopback and are stopped afterwards."""
