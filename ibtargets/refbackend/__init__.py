"""Reference backend: a correct, resilient implementation of the KTRDR IB contract.

FastAPI, Typer, and ib_insync or ib_async on one asyncio loop (``IB_RESILIENCE_IB_LIBRARY``, :mod:`ibtargets.common.ibclient`).
"""
