"""Knob groups that several stages share, each a frozen dataclass validated once (collected errors naming the
parameter) and recorded once, by the record of the notebook that used it."""
from dataclasses import dataclass

from . import ranges
from .errors import ConfigError

SCORING_METHODS = ("constrained", "joint")   # scoring.LabelScorer's methods; params.CHOICES checks SCORING_METHOD
MAX_BOOT = 100_000   # bootstrap resamples: each one re-scores every row (10,000 already pins an interval to 1e-3)
RANGES = {"BATCH_SIZE": ranges.BATCH, "N_BOOT": ranges.Range(1, MAX_BOOT)}   # params.RANGES checks the same
# 04's gate thresholds (gate.GateConfig checks them; params.RANGES checks the notebook parameters before a run)
GATE_RANGES = {"ALPHA": ranges.Range(0, 0.5, lo_open=True), "MAX_DROP": ranges.SHARE, "MIN_CLASS_F1": ranges.SHARE,
               "CRITICAL_F1": ranges.SHARE, "MIN_PART_RATE": ranges.SHARE}


@dataclass(frozen=True)
class ScoringConfig:
    """How 00 and 04 score systems on rows: label scoring's method and search margin, prompts per forward pass,
    bootstrap resamples for every 95% interval."""
    method: str = "constrained"   # SCORING_METHOD: constrained | joint (scoring.LabelScorer)
    batch_size: int = 32          # BATCH_SIZE: prompts per forward pass
    n_boot: int = 1000            # N_BOOT: bootstrap resamples for the 95% intervals
    margin: float = 15.0          # label scoring's search margin in nats ("joint" only; scoring.LabelScorer)

    def __post_init__(self):
        p = []
        if self.method not in SCORING_METHODS:
            p.append(f"SCORING_METHOD={self.method!r} is not one of {', '.join(map(repr, SCORING_METHODS))}; "
                     "set SCORING_METHOD in the parameters cell")
        for name, value in (("BATCH_SIZE", self.batch_size), ("N_BOOT", self.n_boot)):
            if isinstance(value, bool) or not isinstance(value, int) or not RANGES[name].holds(value):
                p.append(f"{name}={value!r} must be a whole number {RANGES[name]}; set {name} in the parameters cell")
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)) or not self.margin >= 0:
            p.append(f"margin={self.margin!r} must be a number of nats >= 0")
        if p:
            raise ConfigError(p, "invalid scoring parameters")

    def record(self):
        """The fields a record keeps of it: the method (04 pairs its systems with 00's: run identity)."""
        return {"scoring_method": self.method}
