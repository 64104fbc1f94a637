"""A training process for tests/test_train.py to kill and resume: trains the trl engine on a fixed set.

    python tests/train_worker.py OUT_DIR [SEED]

Prints the TrainResult as one JSON line. Not a test module (no test_ prefix).
"""
import json
import sys
from dataclasses import asdict

from ftplay import models, prompts, recipes, train

TEXTS = [("I was charged twice for my plan", "billing"), ("the app crashes when I upload", "bug"),
         ("please refund my last invoice", "billing"), ("the export button does nothing", "bug"),
         ("my card payment failed again", "billing"), ("error 500 on the login page", "bug"),
         ("why is my invoice higher this month", "billing"), ("the page freezes after saving", "bug")]


def conversations():
    return [prompts.messages(f"{text} (ticket {i})", ["billing", "bug"], label)
            for i in range(6) for text, label in TEXTS]


if __name__ == "__main__":
    out, seed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3407
    convs = conversations()
    cfg = recipes.recipe_for("embedded", {"engine": "trl", "load_in_4bit": False, "num_epochs": 2.0, "batch_size": 4,
                                        "save_steps": 4, "logging_steps": 2, "seed": seed, "lora_dropout": 0.05})
    res = train.train(cfg, models.resolve("embedded"), convs[:40], convs[40:], out)
    print(json.dumps(asdict(res)))
