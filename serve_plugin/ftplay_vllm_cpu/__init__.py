"""vLLM plugin: LoRA on vLLM's CPU backend as one matrix product per adapter, not a weight copy per token.

vLLM's CPU LoRA ops (vllm/lora/ops/torch_ops) gather a full (rank x hidden) weight matrix for every
token (`lora_b_weights[indices]`) and multiply with einsum: a 64-request batch copies megabytes per
layer and projection, which made adapter requests 3-4x slower than base ones here. This computes the
same products grouped by adapter slot, `x[rows] @ W[slot].T`, with the same output writes.

One difference, on purpose: vLLM marks a token of a base-model request with slot -1 ("no LoRA",
vllm/lora/punica_wrapper/punica_base.py), and its CPU ops index `W[-1]`, the LAST slot, so in a batch
that mixes base and adapter requests with every slot occupied, base tokens get the last adapter's
delta. Here slot -1 contributes nothing. Loaded by vLLM in every process through the
`vllm.general_plugins` entry point; a no-op unless the platform is CPU; FTPLAY_VLLM_CPU_LORA=0
turns it off (benchmarks/serve_speed.py measures both).
"""
import logging
import os

log = logging.getLogger(__name__)
_FUNCS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


def _products(inputs, weights, indices, dtype):
    """(tokens, out) = inputs @ weights[indices[t]].T for each token t, one GEMM per distinct slot;
    zero for slot -1 (no LoRA)."""
    import torch

    if weights.dim() == 4:
        weights = weights.squeeze(1)
    x = inputs.to(dtype)
    slots = torch.unique(indices)
    if slots.numel() == 1 and slots[0] >= 0:
        return x @ weights[slots[0]].to(dtype).T
    out = x.new_zeros((x.shape[0], weights.shape[1]))
    for s in slots[slots >= 0]:
        rows = indices == s
        out[rows] = x[rows] @ weights[s].to(dtype).T
    return out


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling=1.0):
    if inputs.shape[0] != lora_indices_tensor.shape[0]:
        return _ORIGINAL["bgmv_shrink"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True):
    if inputs.shape[0] != lora_indices_tensor.shape[0] or inputs.shape[0] != output_tensor.shape[0]:
        return _ORIGINAL["bgmv_expand"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs)
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:, :common]
    else:
        output_tensor[:, :common] = outputs[:, :common]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size,
                      add_inputs=True):
    if inputs.shape[0] != lora_indices_tensor.shape[0] or inputs.shape[0] != output_tensor.shape[0]:
        return _ORIGINAL["bgmv_expand_slice"](inputs, lora_b_weights, output_tensor, lora_indices_tensor,
                                             slice_offset, slice_size, add_inputs)
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs


_ORIGINAL = {}


def register():
    """vLLM calls this in each of its processes; patching twice is harmless."""
    if os.environ.get("FTPLAY_VLLM_CPU_LORA", "1") == "0":
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    for name in _FUNCS:
        _ORIGINAL.setdefault(name, getattr(lora_ops, name))
        for module in (lora_ops, punica_cpu):
            if hasattr(module, name):
                setattr(module, name, globals()[name])
    log.info("ftplay: grouped CPU LoRA ops installed (%s)", ", ".join(_FUNCS))
