"""key=value command-line arguments for the small commands (predict, export, report)."""
from typing import Dict, Sequence


def parse_args(argv: Sequence[str], allowed: Sequence[str]) -> Dict[str, str]:
    """key=value arguments, the way the other commands take them; unknown keys are an error."""
    args = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise SystemExit(f"argument {item!r} not understood; expected key=value with key in {list(allowed)}")
        args[key] = value
    return args
