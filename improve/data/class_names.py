"""The structure a dataset's class names share: common tokens, numbered names, names paired by an opposite.

A practitioner reads the class names before choosing augmentations: `left_hand`/`right_hand` says a mirror
image is another class, `000deg`…`315deg` that the label is an angle. The profile carries this structure so
every agent (the offline expert's rules, an LLM's prompt) reads the same facts.
"""
import re
from collections import Counter
from typing import Any, Dict, List

OPPOSITES = [("left", "right"), ("up", "down"), ("top", "bottom"), ("cw", "ccw"), ("clockwise", "anticlockwise"),
             ("clockwise", "counterclockwise"), ("front", "back"), ("upright", "inverted"), ("normal", "mirrored"),
             ("l", "r"), ("east", "west"), ("north", "south")]
MAX_PAIRS = 10  # paired names listed at most
MAX_TOKENS = 8  # shared tokens listed at most


def tokens(name: str) -> List[str]:
    """A class name's words and numbers, lower case: 'Left_Hand-02' -> ['left', 'hand', '02']."""
    return [t for t in re.split(r"[^0-9a-z]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", str(name).lower()) if t]


def _opposite(a: str, b: str) -> bool:
    return (a, b) in OPPOSITES or (b, a) in OPPOSITES


def name_structure(names: List[str]) -> Dict[str, Any]:
    """shared_tokens (words in at least a quarter of the names, at least two), numbered (every name holds a number
    and the names differ only in it), paired (names the same but for one opposite word: left/right, up/down, ...)."""
    toks = [tokens(n) for n in names]
    counts = Counter(t for ts in toks for t in set(ts))
    shared = [t for t, c in counts.most_common() if c >= max(2, len(names) / 4) and not t.isdigit()][:MAX_TOKENS]
    words = [[t for t in ts if not t.isdigit()] for ts in toks]
    numbered = len(names) > 1 and all(any(t.isdigit() for t in ts) for ts in toks) and len({tuple(w) for w in words}) == 1
    paired, opposites = [], set()
    by_shape: Dict[int, List[int]] = {}
    for i, ts in enumerate(toks):
        by_shape.setdefault(len(ts), []).append(i)
    for group in by_shape.values():
        for x, i in enumerate(group):
            for j in group[x + 1:]:
                diff = [(a, b) for a, b in zip(toks[i], toks[j]) if a != b]
                if len(diff) == 1 and _opposite(*diff[0]):
                    opposites.add("/".join(sorted(diff[0])))
                    if len(paired) < MAX_PAIRS:
                        paired.append([str(names[i]), str(names[j])])
    return {"shared_tokens": shared, "numbered": numbered, "paired": paired, "opposites": sorted(opposites)}
