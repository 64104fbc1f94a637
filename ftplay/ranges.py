"""Allowed ranges of numbers, one object a rule: the notebook parameters' checks (ftplay.params) and the configs
that validate the same knobs (recipes.TrainConfig, config.ScoringConfig) read the same Range."""
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Allowed numbers: lo..hi (either end open or absent), plus the special values in `also`."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    also: tuple = ()

    def holds(self, v):
        if v in self.also:
            return True
        if isinstance(v, float) and math.isnan(v):
            return False
        return ((self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)) and
                (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def __str__(self):
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo is not None and self.hi is not None:
            rule = f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            rule = f"{'>' if self.lo_open else '>='} {lo}"
        else:
            rule = f"{'<' if self.hi_open else '<='} {hi}"
        return " or ".join([*map(str, self.also), rule])


def _num(x):
    return str(int(x)) if isinstance(x, (int, float)) and float(x).is_integer() else f"{x:g}" if x is not None else ""


def at_least(lo):
    return Range(lo)


def above(lo):
    return Range(lo, lo_open=True)


SHARE = Range(0, 1)                      # a share or probability, ends included
OPEN_SHARE = Range(0, 1, True, True)     # strictly between 0 and 1
POSITIVE_SHARE = Range(0, 1, lo_open=True)
SEED = Range(0, 2**32 - 1)               # numpy's seeds are unsigned 32-bit
BATCH = at_least(1)                      # BATCH_SIZE: sequences per step (03), prompts per forward pass (00, 04)


def problems(obj, rules):
    """"NAME=value must be <rule>" for each (NAME, attribute, hint) of `rules` ({NAME: (Range, attribute, hint)})
    whose value on `obj` breaks its Range; a value that is no number is left to the type checks."""
    out = []
    for name, (rule, attr, hint) in rules.items():
        v = getattr(obj, attr)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not rule.holds(v):
            out.append(f"{name}={v!r} must be {rule}" + (f" ({hint})" if hint else ""))
    return out
