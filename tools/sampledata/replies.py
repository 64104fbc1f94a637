"""The reply task's reference replies: each ticket's reply in the house format, and the planted reply defects.

A clean reply is `formats.render(formats.HOUSE, ...)` of what the generator itself put into the ticket
(text.ticket_facts): the customer's first name from the opener or sign-off (else "there"), a topic per
label, the facts it inserted (amounts, dates, order and invoice numbers, product and plan names) in
order of appearance, and a next step per label that names the amount, order or product where the
ticket gives one. The defects draw from their own random stream, so the ticket files never change.
"""
from __future__ import annotations

import random

from ftplay import formats

from sampledata.fragments import SEED

TOPICS = {"billing": "your bill", "account": "your account", "bug": "a problem with our product",
          "shipping": "your delivery", "refund": "a refund", "feature": "a feature request",
          "cancellation": "cancelling your subscription", "security": "the security of your account",
          "other": "your enquiry"}
# label -> (next step, the same naming a fact, the slot of that fact)
NEXT_STEPS = {
    "billing": ("Our billing team will check the charge and reply within 2 working days.",
                "Our billing team will check the charge of {v} and reply within 2 working days.", "amount"),
    "account": ("We have sent a secure sign-in link to the e-mail address on your account; it is valid for 24 hours.",
                None, None),
    "bug": ("Our engineers will investigate and update you within 3 working days.",
            "Our engineers will investigate the problem with {v} and update you within 3 working days.", "product"),
    "shipping": ("We have asked the courier for an update and will write again within 2 working days.",
                 "We have asked the courier for an update on {v} and will write again within 2 working days.", "order"),
    "refund": ("We will refund the payment to your original payment method within 5 working days.",
               "We will refund {v} to your original payment method within 5 working days.", "amount"),
    "feature": ("We have passed your request to our product team, who review requests every month.", None, None),
    "cancellation": ("We will cancel your subscription at the end of the current billing period and confirm by e-mail.",
                     "We will cancel {v} at the end of the current billing period and confirm by e-mail.", "product"),
    "security": ("We have locked your account, and a security specialist will contact you within 24 hours.",
                 None, None),
    "other": ("A colleague will get back to you within 2 working days.", None, None),
}
N_OFF_FORMAT, N_TRIVIAL, N_OVER_LONG, N_LEAKED, N_RESTATED = 20, 8, 5, 4, 20
TRIVIAL = ["ok", "Done.", "?", "thx", "-", "Resolved", "n/a", "..."]
# an agent's free-form answers; the last two are near misses of the house format (a line missing, another sign-off)
OFF_FORMAT = [
    "Hi {name}, thanks for reaching out! {next_step} Best, the support team",
    "Thanks for your message! {next_step}",
    "Hello {name},\n\nSorry to hear about this. {next_step}\n\nThanks,\nSupport",
    "Dear {name}, we're sorry about the trouble with {topic}. {next_step} Regards, Support Team",
    "{next_step} Let us know if there is anything else we can do.",
    "Hello {name},\nThank you for your message about {topic}.\nNext step: {next_step}\nKind regards,\nSupport Team",
    "Hello {name},\nThank you for your message about {topic}.\nDetails: {details}\nNext step: {next_step}\n"
    "Best regards,\nSupport Team",
]
POLICY = [  # pasted into an over-long reply's next step, as an agent pastes the whole policy page
    "Refunds are issued to the original payment method within five to ten working days of approval.",
    "Items must be returned unused and in their original packaging within thirty days of delivery.",
    "Subscriptions renew automatically at the end of each billing period unless cancelled beforehand.",
    "Charges for partial months are not refunded, except where local consumer law requires it.",
    "Where a delivery is lost in transit, we open an investigation with the carrier before sending a replacement.",
    "Accounts with unusual sign-in activity may be locked until the owner confirms their identity.",
    "We never ask for your full password or payment card number by e-mail, chat or phone.",
    "Feature requests are reviewed monthly by the product team and cannot be given a delivery date.",
    "Invoices are issued in the currency of the account and cannot be reissued in another currency.",
    "Business customers may request a VAT invoice from the billing page of the workspace settings.",
    "Support is available on working days between nine in the morning and six in the evening.",
    "Complaints that cannot be resolved by the support team are escalated to a team lead within five days.",
]
LEAKED = ["grace.okafor@example.org", "+1 (212) 555-0148", "pete.rossi@example.com", "(020) 7946 0317"]


def fields(label: str, facts: list, name: str | None) -> dict:
    """The house format's fields of a ticket's reply."""
    plain, naming, slot = NEXT_STEPS[label]
    named = next((v for s, v in facts if s == slot), None)
    return {"name": name or "there", "topic": TOPICS[label],
            "details": "; ".join(v for _, v in facts) or "none",
            "next_step": naming.format(v=named) if named else plain}


def reply(label: str, facts: list, name: str | None) -> str:
    return formats.render(formats.HOUSE, **fields(label, facts, name))


def make_replies(clean, pii_rows, plants, prod):
    """Set row["reply"] on every raw and production row and return the planted reply defects
    {key: [ticket_id] or [[ticket_id, source_ticket_id]]}. Plants (duplicates) copy their source's reply;
    a conflict's reply follows its own (other) label, so the same ticket gets another topic and next step."""
    rng = random.Random(SEED + 11)  # the replies' own stream: the ticket files stay byte-identical
    for r in clean + pii_rows + prod:
        r["reply"] = reply(r["label"], r["facts"], r["name"])
    for p in plants:
        src = clean[p["src"]] if p["src"] is not None else None
        p["reply"] = (reply(p["label"], src["facts"], src["name"]) if "conflicts" in p["tags"] else
                      src["reply"] if src else reply(p["label"], p["facts"], p["name"]))
    # defects on clean rows that no plant copies (a copied defect would be two), disjoint
    sources = {p["src"] for p in plants if p["src"] is not None}
    free = [r for i, r in enumerate(clean) if i not in sources]
    rng.shuffle(free)
    cuts = {}
    for key, n in (("off_format", N_OFF_FORMAT), ("trivial_replies", N_TRIVIAL), ("over_long_replies", N_OVER_LONG),
                   ("pii_leaked", N_LEAKED)):
        cuts[key], free = free[:n], free[n:]
    for k, r in enumerate(cuts["off_format"]):
        f = fields(r["label"], r["facts"], r["name"])
        r["reply"] = OFF_FORMAT[k % len(OFF_FORMAT)].format(**f)
    for k, r in enumerate(cuts["trivial_replies"]):
        r["reply"] = TRIVIAL[k]
    for r in cuts["over_long_replies"]:
        f = fields(r["label"], r["facts"], r["name"])
        policy, target = [], rng.randint(420, 600)
        while len(" ".join(policy).split()) < target:
            policy.append(rng.choice(POLICY))
        r["reply"] = formats.render(formats.HOUSE, **dict(f, next_step=f["next_step"] + " Our policy, for your "
                                                          "reference: " + " ".join(policy)))
    for k, r in enumerate(cuts["pii_leaked"]):  # someone else's address or number, pasted from another case
        f = fields(r["label"], r["facts"], r["name"])
        details = "; ".join([v for _, v in r["facts"]] + [LEAKED[k]])
        r["reply"] = formats.render(formats.HOUSE, **dict(f, details=details))
    restated = rng.sample(pii_rows, N_RESTATED)  # a careless agent copies the contact or card details into Details
    for r in restated:
        f = fields(r["label"], r["facts"], r["name"])
        r["reply"] = formats.render(formats.HOUSE, **dict(f, details="; ".join(
            [v for _, v in r["facts"]] + [r["pii"][k] for k in ("email", "phone", "card") if k in r["pii"]])))

    def ids(rows):
        return sorted(r["ticket_id"] for r in rows)

    def pair(tag):
        return sorted([p["ticket_id"], clean[p["src"]]["ticket_id"]] for p in plants if tag in p["tags"])

    defects = {k: pair(k) for k in ("exact_duplicates", "normalised_duplicates", "near_duplicates", "conflicts")}
    defects.update({k: ids(v) for k, v in cuts.items()})
    defects["pii_restated"] = ids(restated)
    taken = {i for k in cuts for i in ids(cuts[k])}
    defects["clean"] = sorted(r["ticket_id"] for r in clean if r["ticket_id"] not in taken)
    return defects
