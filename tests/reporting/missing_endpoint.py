"""Run the reference backend without one of its API routes: ``missing_endpoint.py /ib/resilience <refbackend args>``.

A managed backend that lacks an endpoint of the contract (its requests get 404), for the one-verdict tests.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    if len(sys.argv) < 2 or not sys.argv[1].startswith("/"):
        print("usage: missing_endpoint.py /PATH <refbackend args> (PATH under /api/v1, e.g. /ib/resilience)",
              file=sys.stderr)
        return 2
    missing = sys.argv[1]
    from ibtargets.refbackend import api

    build_router = api.build_router

    def without_route():
        router = build_router()
        router.routes[:] = [r for r in router.routes if getattr(r, "path", "") != api.PREFIX + missing]
        return router

    api.build_router = without_route
    from ibtargets.refbackend.cli import main as refbackend
    return int(refbackend(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
