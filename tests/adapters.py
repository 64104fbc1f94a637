"""Test adapters: random-weight LoRA adapters with the ftplay_adapter.json real training writes (tests, benchmarks)."""
from pathlib import Path

from ftplay import identity, models, prompts
from ftplay.serve import DECODER_LINEAR

LABELS = ("billing", "account", "bug", "shipping", "refund", "feature", "cancellation", "security", "other")


def make_test_adapter(ref, out, r=8, seed=0, modules_to_save=None, labels=None, system_prompt=None):
    """A random-weight LoRA adapter on `ref` saved to `out` (not training). `init_lora_weights=False`
    makes its outputs differ from the base's, so parity and routing tests can tell them apart."""
    import torch
    from peft import LoraConfig, get_peft_model

    out = Path(out)
    torch.manual_seed(seed)
    model = get_peft_model(models.load_model(ref), LoraConfig(
        r=r, lora_alpha=2 * r, target_modules=sorted(DECODER_LINEAR), init_lora_weights=False,
        modules_to_save=modules_to_save, task_type="CAUSAL_LM"))
    model.save_pretrained(str(out))
    identity.write_adapter_meta(out, ref, models.load_tokenizer(ref), labels or LABELS,
                                system_prompt or prompts.DEFAULT_SYSTEM_PROMPT,
                                vocab_size=model.get_base_model().config.vocab_size)
    return out
