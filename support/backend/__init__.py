"""Reference backend: a correct, resilient implementation of the KTRDR IB contract (FastAPI, Typer, ib_insync)."""
