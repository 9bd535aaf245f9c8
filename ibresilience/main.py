"""The ``ib-resilience`` console script: one subcommand per tool of the project."""

from __future__ import annotations

import importlib
import sys

#: subcommand → (module, one-line help). Each module has ``main(argv) -> int``.
SUBCOMMANDS = {
    "gateway": ("ibtargets.gateway.server", "run the IB Gateway simulator"),
    "proxy": ("ibtargets.proxy.server", "run the IB-aware fault proxy"),
    "run": ("ibresilience.runner", "run the resilience specification (behave)"),
    "monitor": ("ibresilience.monitor", "poll /api/v1/ib/resilience and alert on a low score"),
    "report": ("ibresilience.merge", "merge the results of CI shards into one Allure HTML and Markdown summary"),
    "nemesis": ("ibresilience.nemesis_cmd", "seeded fault schedules, invariants over the whole history, shrinking"),
    "judge": ("ibresilience.judge_cmd", "judge a run's recorded history again with the run-wide invariants"),
    "profile": ("ibresilience.profile_cmd", "check a target profile: start the target once, say what the suite finds"),
}


def usage() -> str:
    """The top-level help text."""
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: ib-resilience <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "ib-resilience <command> --help for a command's options; ib-resilience --version"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand's ``main``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from support import __version__
        print(f"ib-resilience {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        print(f"ib-resilience: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
