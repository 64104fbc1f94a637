"""Tests for ftplay.curve: the learning curve's subsets, its reading, and the TF-IDF curve on the sample."""
from collections import Counter

from ftplay import curve


def _rows(counts):
    return [{"id": f"{lab}{k}", "text": f"text {lab} {k}", "label": lab} for lab, n in counts.items() for k in range(n)]


def test_sizes_double_up_to_all_rows_and_never_below_two_per_label():
    assert curve.sizes_for(950, 9) == [119, 238, 475, 950]
    assert curve.sizes_for(40, 9) == [18, 20, 40]       # 40/8 and 40/4 both floor at 2 rows per label
    assert curve.sizes_for(100, 3, points=2) == [50, 100]


def test_stratified_order_keeps_label_shares_in_every_prefix_and_is_seeded():
    rows = _rows({"a": 60, "b": 30, "c": 10})
    order = curve.stratified_order(rows, seed=3)
    assert sorted(r["id"] for r in order) == sorted(r["id"] for r in rows)
    for n in (10, 20, 50):
        got = Counter(r["label"] for r in order[:n])
        assert abs(got["a"] - 0.6 * n) <= 1 and abs(got["c"] - 0.1 * n) <= 1, (n, got)
    assert order == curve.stratified_order(rows, seed=3) and order != curve.stratified_order(rows, seed=4)


def test_uncurated_pool_leaves_out_heldout_texts_and_unlabelled_rows():
    raw = [{"text": "My invoice!", "label": "billing"}, {"text": "my INVOICE", "label": "bug"},
           {"text": "parcel", "label": "shipping"}, {"text": "??", "label": ""}]
    assert curve.uncurated_pool(raw, [{"text": "my invoice"}]) == [{"text": "parcel", "label": "shipping"}]


def _p(kind, size, f1, lo, hi):
    return {"kind": kind, "size": size, "macro_f1": f1, "macro_f1_ci": [lo, hi]}


def test_flattens_at_the_first_size_inside_the_last_interval():
    pts = [_p("curated", 100, 0.5, 0.4, 0.6), _p("curated", 200, 0.71, 0.6, 0.8), _p("curated", 400, 0.74, 0.68, 0.8)]
    assert curve.flattens(pts) == 200
    assert curve.flattens(pts[:1]) is None
    assert curve.flattens([_p("curated", 100, 0.5, 0.45, 0.55), _p("curated", 200, 0.7, 0.65, 0.75)]) == 200


def test_reading_says_flat_or_rising_and_compares_intervals():
    flat = [_p("curated", 100, 0.5, 0.4, 0.6), _p("curated", 200, 0.71, 0.6, 0.8), _p("curated", 400, 0.74, 0.68, 0.8),
            _p("uncurated", 400, 0.55, 0.48, 0.62)]
    text = curve.reading({"tfidf": flat})
    assert "from 200 rows on it is within the 400-row score's interval" in text
    assert "curated 0.740 against uncurated 0.550 (+0.190): the intervals do not overlap" in text
    rising = [_p("curated", 100, 0.3, 0.25, 0.35), _p("curated", 200, 0.6, 0.55, 0.65),
              _p("uncurated", 200, 0.62, 0.57, 0.67)]
    text = curve.reading({"ft": rising})
    assert "still rises at the largest size" in text and "the intervals overlap" in text
    assert curve.reading({}) == "no learning curve was measured"


def test_run_fits_each_pool_and_size_it_can_fill_in_order():
    seen = []

    def fit(rows, name):
        seen.append((name, len(rows)))
        return {"macro_f1": len(rows) / 100, "macro_f1_ci": [0, 1]}

    pts = curve.run(fit, {"curated": _rows({"a": 30, "b": 30}), "uncurated": _rows({"a": 20, "b": 20})}, [20, 60])
    assert seen == [("curated_20", 20), ("curated_60", 60), ("uncurated_20", 20)]
    assert [(p["kind"], p["size"], p["macro_f1"]) for p in pts] == [("curated", 20, 0.2), ("curated", 60, 0.6),
                                                                     ("uncurated", 20, 0.2)]
    rec = curve.record({"x": pts}, [20, 60])
    assert rec["flattens"] == {"x": 20} and rec["sizes"] == [20, 60]   # an interval of [0, 1] takes every point
