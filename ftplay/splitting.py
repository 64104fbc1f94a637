"""The held-out split: group-aware and stratified, so duplicates never straddle it; and the per-label cap that
keeps a few hundred curated rows of each label (02's MAX_TRAIN_PER_LABEL). `ftplay.data` re-exports both."""
import math
import random
from collections import Counter, defaultdict


def split(rows, groups, fraction=0.2, seed=0):
    """Group-aware stratified split -> (train indices, heldout indices).

    `groups` lists row indices that must stay together (duplicates); other rows are singletons. Each
    group is placed with its majority label; per label, groups are shuffled by `seed` and placed largest
    first while the label's held-out rows stay within round(fraction * n), so singletons fill the
    target exactly (rows of other labels in a mixed group count toward their own label). Every label
    keeps at least one row in train.
    """
    members = {i: [i] for i in range(len(rows))}
    for g in groups:
        for i in g:
            members.pop(i, None)
        members[g[0]] = sorted(g)
    by_label = defaultdict(list)
    for gid, m in members.items():
        lab = Counter(rows[i]["label"] for i in m).most_common(1)[0][0]
        by_label[lab].append(gid)
    rng = random.Random(seed)
    n_label = Counter(r["label"] for r in rows)
    held_label = Counter()                                  # held-out rows per label so far
    train, held = [], []
    for lab in sorted(by_label):
        gids = sorted(by_label[lab])
        rng.shuffle(gids)
        gids.sort(key=lambda g: -len(members[g]))           # stable: shuffled within equal sizes
        n = n_label[lab]
        target = min(int(math.floor(fraction * n + 0.5)), n - 1)
        for g in gids:
            k = sum(rows[i]["label"] == lab for i in members[g])
            if held_label[lab] + k <= target:
                held += members[g]
                held_label.update(rows[i]["label"] for i in members[g])
            else:
                train += members[g]
    return sorted(train), sorted(held)


def cap_per_label(rows, n, seed=0):
    """At most `n` rows of each label, a seeded sample in the original order -> (rows, dropped).
    Quality over quantity: a few hundred to two thousand curated examples carry a narrow task."""
    by_label = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r["label"]].append(i)
    rng, keep = random.Random(seed), set()
    for lab in sorted(by_label):
        idx = by_label[lab]
        keep.update(idx if len(idx) <= n else rng.sample(idx, n))
    return [r for i, r in enumerate(rows) if i in keep], len(rows) - len(keep)
