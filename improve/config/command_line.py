"""key=value command-line arguments for the small commands (predict, export, report)."""
import sys
from typing import Dict, Optional, Sequence

HELP = ("-h", "--help")


def wants_help(argv: Sequence[str], usage: str) -> None:
    """`--help` or `-h`: print the command's usage and exit 0."""
    if any(a in HELP for a in argv):
        print(usage.strip())
        sys.exit(0)


def parse_args(argv: Sequence[str], allowed: Sequence[str], usage: Optional[str] = None) -> Dict[str, str]:
    """key=value arguments, the way the other commands take them; unknown keys are an error; `--help` prints
    `usage` and exits."""
    wants_help(argv, usage or f"arguments: key=value with key in {list(allowed)}")
    args = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise SystemExit(f"argument {item!r} not understood; expected key=value with key in {list(allowed)}")
        args[key] = value
    return args
