"""Small number helpers with one home: a figure with its interval ("value [lo, hi]", "value (95% CI ...)"), the
decimals an interval supports, and the percentile of a sample."""
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


def percentile(values, q):
    """The nearest-rank `q`th percentile of `values`: the smallest value with at least q% of the sample at or below
    it, always an observed value (a token count stays a count); None for no values."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))] if s else None


def spread(values):
    """{"p50", "p95", "max"} of a sample (nearest-rank percentiles), or None for no values: how records describe
    a length or a latency."""
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)} if values else None


def against(value, ci, target, spec=".3f"):
    """Where `value` with its 95% interval `ci` stands against a `target`: ("above" | "below" | "unclear",
    the words that say so). "above" only when the whole interval is at or above the target, "below" only when
    it is all under; an interval that contains the target is "unclear", however the point estimate falls
    (0.818 [0.756, 0.870] against 0.85 is not "below"). Without an interval the point estimate decides."""
    lo, hi = ci if ci is not None else (None, None)
    shown = interval(value, ci, spec) if ci is not None else format(value, spec)
    if lo is None or hi is None:
        side = "above" if value >= target else "below"
    else:
        side = "above" if lo >= target else "below" if hi < target else "unclear"
    words = {"above": f"{shown} >= target {target:{spec}}", "below": f"{shown} < target {target:{spec}}",
             "unclear": f"{shown} contains the target {target:{spec}}: not told apart on these rows"}[side]
    return side, words


def wilson(k, n, z=1.96):
    """The 95% Wilson score interval [lo, hi] of a share k/n: unlike the normal one it stays inside [0, 1]
    and is not zero-width at 0/n or n/n (the kept tickets of a selective curve are often all right)."""
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [max(0.0, centre - half), min(1.0, centre + half)]
