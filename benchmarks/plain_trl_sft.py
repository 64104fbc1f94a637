"""A plain TRL + PEFT LoRA run, written the way the TRL SFTTrainer docs show: the baseline for train_speed.py.

    python benchmarks/plain_trl_sft.py MODEL_DIR TRAIN_JSONL OUT_DIR

Dataset of `messages`, `peft_config=LoraConfig(...)`, `SFTConfig(assistant_only_loss=True)`, TRL's
defaults otherwise. Three deviations, each needed to run at all or to compare like with like:
`bf16=False` (SFTConfig defaults to bf16, which this CPU lacks), the same LoRA and optimizer
hyper-parameters as ftplay's run, and the model's own loss: TRL 1.15 computes the loss with a
chunked LM-head kernel that needs Triton with a GPU driver and fails on CPU ("0 active drivers").
Prints one JSON line: tokens (non-padding tokens trained on), seconds (trainer.train() only), steps.
"""
import json
import sys
import time

from datasets import load_dataset
from peft import LoraConfig
from transformers import Trainer
from trl import SFTConfig, SFTTrainer


class CpuSFTTrainer(SFTTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


def main(model_dir, train_file, out_dir):
    dataset = load_dataset("json", data_files=train_file, split="train").remove_columns(["id"])
    peft_config = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, task_type="CAUSAL_LM",
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                             "gate_proj", "up_proj", "down_proj"])
    args = SFTConfig(output_dir=out_dir, num_train_epochs=1, per_device_train_batch_size=8, learning_rate=1e-3,
                     warmup_steps=0.1, optim="adamw_8bit", assistant_only_loss=True, max_length=512, bf16=False,
                     logging_steps=10, save_strategy="no", report_to="none", seed=3407, disable_tqdm=True)
    trainer = CpuSFTTrainer(model=model_dir, args=args, train_dataset=dataset, peft_config=peft_config)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    history = trainer.state.log_history
    print(json.dumps({"tokens": tokens, "seconds": round(seconds, 3), "steps": trainer.state.global_step,
                      "final_loss": history[-2].get("loss") if len(history) > 1 else None,
                      "gradient_checkpointing": args.gradient_checkpointing}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
