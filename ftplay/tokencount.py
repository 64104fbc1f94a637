"""Tokens a request costs, counted with a real tokenizer of the priced family, not assumed.

The cost stage prices each option with the prompt it was scored with: the hosted model with the best
prompt 00 found (instructions and shots), the fine-tune with the short prompt it is served with. Both are
rendered in a chat template and counted here:

- the fine-tune's side with MODEL's own tokenizer (a hub model, a local folder, a `tiny:` stand-in,
  which carries its family's real tokenizer: exact for the model served); with the embedded default,
  whose 4k-token BPE was trained on these tickets, with Llama 3.1 8B's tokenizer and chat template
  (PRICED_FAMILY: the 8B the cost stage prices; the stand-in ships it offline, ids as the hub's);
- the hosted model's side with the same tokenizer, as a proxy: the hosted model's own tokenizer is not
  public (Anthropic publishes none), so its count may differ (HOSTED_PROXY says by how much).
"""
from dataclasses import dataclass

from . import models, prompts, standins

PRICED_FAMILY = "meta-llama/Llama-3.1-8B-Instruct"
# How far a proxy count may sit from the hosted model's own. Published comparisons on English text put
# Claude 3.5 Sonnet's counts about 20-30% above GPT-4o's (o200k), and Llama 3's 128k BPE within about 10%
# of OpenAI's; so the hosted model may bill up to about a third more tokens than counted here, rarely fewer.
HOSTED_PROXY_HIGH = 0.35
HELDOUT_ANSWERS = "heldout_answers"   # priced_tokens' key for the held-out rows' own answers
HOSTED_PROXY = ("the hosted model's own tokenizer is not public, so its tokens are counted with {tok} as a "
                "proxy; published comparisons on English text put Claude's counts about 20-30% above "
                "OpenAI's, and Llama 3's within about 10% of them: the hosted bill may be up to about "
                f"{HOSTED_PROXY_HIGH:.0%} higher than priced here")


@dataclass
class Counter:
    """A tokenizer that counts what a request costs: `name` (whose tokenizer), `exact` (True where it is the
    served model's own), `why` (one sentence for the cost table)."""
    tokenizer: object
    name: str
    exact: bool
    why: str

    def count(self, conversations, answers):
        """Mean prompt and answer tokens per request: each conversation rendered as a prompt in this tokenizer's
        chat template (generation prompt appended), each answer tokenized with its end-of-turn token."""
        if len(conversations) != len(answers) or not conversations:
            raise ValueError(f"count needs one answer per conversation and at least one ({len(conversations)} "
                             f"conversations, {len(answers)} answers)")
        prompt = [len(prompts.prompt_ids(self.tokenizer, msgs)) for msgs in conversations]
        return {"prompt_tokens": round(sum(prompt) / len(prompt), 2), "prompt_tokens_max": max(prompt),
                **self.count_answers(answers)}


    def count_answers(self, answers):
        """Mean tokens of `answers` (each with its end-of-turn token): what a model that does the job writes."""
        if not answers:
            raise ValueError("count_answers needs at least one answer")
        sizes = [len(self.tokenizer(str(a), add_special_tokens=False)["input_ids"]) + 1 for a in answers]
        return {"answer_tokens": round(sum(sizes) / len(sizes), 2), "n": len(sizes), "tokenizer": self.name,
                "exact": self.exact, "why": self.why}

    def count_examples(self, conversations):
        """Median and mean tokens of whole training conversations (prompt and answer, as trained) in this
        tokenizer's chat template."""
        if not conversations:
            raise ValueError("count_examples needs at least one conversation")
        sizes = sorted(len(prompts.encode(self.tokenizer, prompts.render(self.tokenizer, msgs)))
                       for msgs in conversations)
        n = len(sizes)
        p50 = sizes[n // 2] if n % 2 else (sizes[n // 2 - 1] + sizes[n // 2]) / 2
        return {"p50": p50, "mean": round(sum(sizes) / n, 2), "n": n, "tokenizer": self.name, "exact": self.exact,
                "why": self.why}


def counter(model, tokenizer=None):
    """The Counter for MODEL: its own tokenizer (`tokenizer`, when the caller has it loaded), or, for the
    embedded default, PRICED_FAMILY's (built offline by `standins`)."""
    from transformers import AutoTokenizer

    m = str(model).strip()
    if m == models.EMBEDDED or m.startswith(models.EMBEDDED + ":"):
        tok = AutoTokenizer.from_pretrained(str(standins.build(standins.PREFIX + PRICED_FAMILY)))
        return Counter(tok, PRICED_FAMILY, False,
                       f"counted with {PRICED_FAMILY}'s tokenizer and chat template (the 8B family priced; MODEL="
                       f"{m!r} is the embedded teaching model, whose own 4k-token BPE was trained on these tickets "
                       "and says nothing about an 8B's)")
    hub = m[len(standins.PREFIX):] if m.startswith(standins.PREFIX) else m
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(models.resolve(m).path)
    return Counter(tokenizer, hub, True, f"counted with {hub}'s own tokenizer and chat template")


def answer_text(output):
    """What a system answered, as text: a label prediction's raw answer (its label when scored), or a reply."""
    raw = getattr(output, "raw", None)
    if raw is not None:
        return raw or (getattr(output, "label", None) or "")
    return "" if output is None else str(output)


def hosted_note(counted):
    """The sentence that says the hosted model's count is a proxy, for a count from `Counter.count`."""
    return HOSTED_PROXY.format(tok=f"{counted['tokenizer']}'s tokenizer")


def served_reading(priced):
    """One sentence on 04's counts: the fine-tune's request as served and a training example, for 06."""
    ft, ex = priced.get("finetuned"), priced.get("train_example")
    parts = []
    if ft:
        parts.append(f"a request to the fine-tune as served (its system prompt and the ticket, no examples) is "
                     f"{ft['prompt_tokens']:,.1f} prompt tokens and {ft['answer_tokens']:,.1f} answer tokens on "
                     f"average over {ft['n']} held-out rows")
    if ex:
        parts.append(f"a training example is {ex['p50']:,.0f} tokens (median of {ex['n']})")
    if not parts:
        return "no tokens counted"
    who = (ft or ex)["tokenizer"]
    return (f"Counted with {who}'s tokenizer and chat template: " + "; ".join(parts)
            + ". 06 prices the fine-tune with them.")
