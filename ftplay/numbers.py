"""How the package writes a figure with its interval: one home for every "value [lo, hi]" and "value (95% CI ...)"."""
import math


def interval(value, ci, spec=".3f", prose=False):
    """`value` and its 95% interval `ci` ([lo, hi]) formatted with the format `spec` (".3f", "+.3f", ".0%", ".1f"):
    "0.512 [0.448, 0.571]" for a table cell, or with `prose` "0.512 (95% CI 0.448 to 0.571)" for a sentence.
    "-" for a value that was not measured (None)."""
    if value is None:
        return "-"
    lo, hi = ci if ci is not None else (None, None)

    def f(x):
        return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)

    return f"{f(value)} (95% CI {f(lo)} to {f(hi)})" if prose else f"{f(value)} [{f(lo)}, {f(hi)}]"


def ci_decimals(*cis):
    """Decimals an interval supports: two significant digits of its width (width 0.19 -> 2, 0.019 -> 3)."""
    widths = [hi - lo for lo, hi in cis if hi is not None and lo is not None and hi > lo]
    return min(4, max(1, 1 - math.floor(math.log10(min(widths))))) if widths else 3
