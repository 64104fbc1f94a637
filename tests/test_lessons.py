"""The seed's mistakes measured: leakage by a row-by-row split, memorised edge cases."""
from ftplay import lessons, tasks
from ftplay.evaluate import Prediction

WORDS = {"billing": "invoice charge payment card receipt", "bug": "crash error broken screen freeze",
         "shipping": "parcel courier delivery tracking box"}


def rows(n, seed=0):
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = ["billing", "bug", "shipping"][i % 3]
        words = WORDS[label].split() + WORDS[["bug", "shipping", "billing"][i % 3]].split()[:2]  # some confusion
        rng.shuffle(words)
        out.append({"id": f"r{i}", "text": " ".join(words) + f" ticket number {i} " + " ".join(
            rng.choice(["please", "thanks", "urgent", "again", "today", "hello"]) for _ in range(4)), "label": label})
    return out


def test_leakage_demo_groups_held_out_rows_by_their_twins():
    base = rows(150)
    dup = [dict(r, id=r["id"] + "d") for r in base[:60]]                       # exact twins, same label
    conflict = [dict(r, id=r["id"] + "c", label="bug" if r["label"] != "bug" else "billing") for r in base[60:80]]
    raw = base + dup + conflict
    task = tasks.get("classify").bind(["billing", "bug", "shipping"], None)
    demo, text = task.leakage_demo(raw, base[:100], base[100:], rows(30, seed=1), 0.65, seed=0)
    g = demo["groups"]
    assert g["twin_same_label"]["n"] > 5 and g["twin_other_label"]["n"] > 0 and g["no_twin"]["n"] > 0
    assert sum(x["n"] for x in g.values()) == demo["rows"] == round(len(raw) * 0.2)
    assert g["twin_same_label"]["accuracy"] > g["twin_other_label"]["accuracy"]
    assert demo["grouped_split"]["heldout"]["macro_f1"] is not None and demo["row_split"]["production"]
    assert f"{g['twin_same_label']['n']} whose twin carries the same label" in text


def test_edge_cases_tell_memorised_from_learned():
    train = [{"text": f"i don't want a refund {i}", "label": "billing"} for i in range(5)] + \
            [{"text": f"crash {i}", "label": "bug"} for i in range(20)]
    held = [{"text": "i don't want a refund now", "label": "billing"}, {"text": "crash", "label": "bug"}]
    def memoriser(texts):
        taught = {r["text"] for r in train[:5]}
        return [Prediction("billing" if t in taught else "bug", 1.0) for t in texts]

    preds = {"heldout": memoriser([r["text"] for r in held]), "production": []}
    edge = lessons.edge_cases(train, {"heldout": held, "production": []}, preds, memoriser, r"don't want",
                              ["billing", "bug"])
    slice_ = edge["edge-case pattern"]
    assert slice_["pattern"] == "don't want"
    assert slice_["train_rows"] == 5 and slice_["train"]["accuracy"] == 1.0 and slice_["heldout"]["accuracy"] == 0.0
    assert edge["rarest label (billing)"]["train_rows"] == 5          # the rarest label
    assert "memorised: right on the rows it was taught" in lessons.read_edge_cases(edge)


def test_edge_case_readings():
    def row(t, h, p):
        return {"x": {"train_rows": 5, "train": {"accuracy": t}, "heldout": {"accuracy": h},
                      "production": {"accuracy": p}}}

    assert "memorised" in lessons.read_edge_cases(row(1.0, 0.4, 0.4))
    assert "distribution mismatch" in lessons.read_edge_cases(row(0.62, 0.60, 0.41))
    # issue 28: taught 0.59, held-out 0.56, production 0.41 read "learned"; the drop from what it was taught is 0.18
    assert "distribution mismatch" in lessons.read_edge_cases(row(0.59, 0.56, 0.41))
    assert "not learned" in lessons.read_edge_cases(row(0.15, 0.17, 0.1))
    assert "learned: about as right" in lessons.read_edge_cases(row(0.8, 0.75, 0.7))


def test_base_update_reading_names_the_check_and_the_three_scores():
    def m(f1):
        return {"accuracy": f1 + 0.1, "macro_f1": f1}

    demo = {"old_base": "embedded@aaa", "new_base": "embedded:1@bbb", "rows": 237,
            "check": {"changed": True,
                      "message": "adapter trained on embedded@aaa, base is now embedded:1@bbb: re-fine-tune"},
            "systems": {"adapter on its own base": m(0.506), "same adapter on the new base": m(0.039),
                        "re-fine-tuned on the new base": m(0.319)},
            "refit": {"adapter_dir": "x", "steps": 321, "seconds": 41.0}}
    text = lessons.read_base_update(demo)
    assert "base is now embedded:1@bbb: re-fine-tune" in text
    assert "scores macro-F1 0.039 on embedded:1@bbb, against 0.506 on its own base" in text
    assert "(321 steps, 41 s) scores 0.319" in text


def test_reply_leakage_demo_scores_twins_with_the_canned_reply():
    from ftplay import formats

    def reply(r):
        return formats.render(formats.HOUSE, name="there", topic=r["label"], details=r["id"], next_step="we reply")

    base = [dict(r, output=reply(r)) for r in rows(150)]
    dup = [dict(r, id=r["id"] + "d") for r in base[:60]]                      # exact twins: the same reply
    raw = base + dup
    prod = [dict(r, output=reply(r)) for r in rows(30, seed=1)]
    demo, text = tasks.get("reply").leakage_demo(raw, base[:100], base[100:], prod, 0.65, seed=0)
    g = demo["groups"]
    assert g["near_twin"]["n"] > 5 and g["no_twin"]["n"] > 0
    assert g["near_twin"]["n"] + g["no_twin"]["n"] == demo["rows"] == round(len(raw) * 0.2)
    assert g["near_twin"]["chrf"] > g["no_twin"]["chrf"]
    assert g["near_twin"]["field_accuracy"] > g["no_twin"]["field_accuracy"]
    assert demo["grouped_split"]["heldout"]["valid_rate"] == 1.0 and demo["row_split"]["production"]["chrf"] > 0
    assert f"{g['near_twin']['n']} of the {demo['rows']} held-out tickets have a near twin" in text
