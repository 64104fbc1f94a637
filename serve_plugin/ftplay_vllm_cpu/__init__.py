"""vLLM plugin: LoRA on vLLM's CPU backend as one GEMM per layer for the whole mixed batch, not a weight copy per token.

vLLM's CPU LoRA ops (vllm/lora/ops/torch_ops) gather a full (rank x hidden) weight matrix for every
token (`lora_b_weights[indices]`) and multiply with einsum: a 64-request batch copies megabytes per
layer and projection, which made adapter requests 3-4x slower than base ones here. This computes the
same products with every adapter slot's weights side by side in one GEMM and a one-hot slot mask (built
once per engine step and reused by every layer), with the same output writes. It replaces the sgmv ops
too (what vLLM's CPU path calls for any batch holding a prefill) so the per-token slot expansion
(repeat_interleave) also runs once a step instead of once per layer and projection. A first version
grouped rows per slot (`out[rows] = x[rows] @ W[slot].T`): its gathers and scatters were 18% of the
engine's CPU time in a mixed base + 2 adapter batch (py-spy); per op, 256 mixed tokens, hidden 256,
rank 32: shrink 176 -> 124 us, expand 313 -> 240 us.

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
_FUNCS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")
_WEIGHTS = {}  # {data_ptr: (key, weight tensor, its expand layout)}
_MASKS = {}   # {"bgmv"|"sgmv": (key, index tensors, mask)}: one step's slot mask, reused by every layer


def _mask(kind, tensors, slots, dtype, make):
    """(slots, tokens, 1) one-hot of each token's slot, zero for slot -1, built once per step: every LoRA layer
    of a forward pass passes views of the same persistent index buffers, unchanged. A hit needs the same memory,
    shape and `_version` (any in-place update of a buffer, or of a view of it, bumps it); the cache holds the
    tensors it was built from, so their memory cannot be freed and reused by another tensor meanwhile."""
    import torch

    key = tuple((t.data_ptr(), tuple(t.shape), t.stride(), t._version) for t in tensors) + (slots, dtype)
    hit = _MASKS.get(kind)
    if hit is not None and hit[0] == key:
        return hit[2]
    indices = make()
    mask = (indices.unsqueeze(0) == torch.arange(slots, dtype=indices.dtype).unsqueeze(1)).to(dtype).unsqueeze(2)
    _MASKS[kind] = (key, tensors, mask)
    return mask


def _products(inputs, weights, mask, dtype):
    """(tokens, out) = inputs @ weights[slot(t)].T for each token t, zero for slot -1, as ONE GEMM whatever the
    mix: weights (slots, out, in) side by side as (out, slots * in); each token's input put in its slot's block
    of a (tokens, slots * in) matrix (zero elsewhere) for an expand (in = rank), or every slot's product
    computed and the token's own kept for a shrink (out = rank). The per-slot gather/scatter before
    (x[rows], out[rows] = ...) cost 18% of the engine's time in a mixed batch (py-spy)."""
    import torch

    if weights.dim() == 4:
        weights = weights.squeeze(1)
    slots, out, k = weights.shape
    x, mask_t = inputs.to(dtype), mask.transpose(0, 1)            # mask_t: (tokens, slots, 1)
    if out <= k:   # shrink: every slot's (tokens, rank) at once, then each token's own slot
        w = weights.to(dtype).reshape(slots * out, k)
        return (torch.mm(x, w.t()).view(-1, slots, out) * mask_t).sum(1)
    return torch.mm((x.unsqueeze(1) * mask_t).reshape(x.shape[0], slots * k), _side_by_side(weights, dtype))


def _side_by_side(weights, dtype):
    """weights (slots, out, rank) as (slots * rank, out), cached per weight tensor until it changes (`_version`)."""
    key = (weights.data_ptr(), tuple(weights.shape), weights.stride(), weights._version, dtype)
    hit = _WEIGHTS.get(key[0])
    if hit is None or hit[0] != key:
        if len(_WEIGHTS) > 512:
            _WEIGHTS.clear()
        slots, out, rank = weights.shape
        hit = _WEIGHTS[key[0]] = (key, weights, weights.to(dtype).transpose(1, 2).reshape(slots * rank, out).contiguous())
    return hit[2]


def _bgmv_mask(indices, slots, dtype):
    return _mask("bgmv", (indices,), slots, dtype, lambda: indices)


def _sgmv_mask(seq_len, indices, slots, dtype):
    import torch

    return _mask("sgmv", (indices, seq_len), slots, dtype, lambda: torch.repeat_interleave(indices, seq_len))


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling=1.0):
    if inputs.shape[0] != lora_indices_tensor.shape[0]:
        return _ORIGINAL["bgmv_shrink"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)
    mask = _bgmv_mask(lora_indices_tensor, lora_b_weights.shape[0], output_tensor.dtype)
    _write_shrink(_products(inputs, lora_b_weights, mask, output_tensor.dtype), output_tensor, scaling)


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True):
    if inputs.shape[0] != lora_indices_tensor.shape[0] or inputs.shape[0] != output_tensor.shape[0]:
        return _ORIGINAL["bgmv_expand"](inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs)
    mask = _bgmv_mask(lora_indices_tensor, lora_b_weights.shape[0], output_tensor.dtype)
    _write_expand(_products(inputs, lora_b_weights, mask, output_tensor.dtype), output_tensor, add_inputs)


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size,
                      add_inputs=True):
    if inputs.shape[0] != lora_indices_tensor.shape[0] or inputs.shape[0] != output_tensor.shape[0]:
        return _ORIGINAL["bgmv_expand_slice"](inputs, lora_b_weights, output_tensor, lora_indices_tensor,
                                             slice_offset, slice_size, add_inputs)
    mask = _bgmv_mask(lora_indices_tensor, lora_b_weights.shape[0], output_tensor.dtype)
    _write_expand(_products(inputs, lora_b_weights, mask, output_tensor.dtype),
                  output_tensor[:, slice_offset: slice_offset + slice_size], add_inputs)


def _write_shrink(outputs, output_tensor, scaling):
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def _write_expand(outputs, output_tensor, add_inputs):
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:, :common]
    else:
        output_tensor[:, :common] = outputs[:, :common]


# The sgmv ops take per-sequence slots and lengths (vLLM's CPU LoRA path calls them for every batch that holds a
# prefill, i.e. nearly always): the same products on the tokens' slots, the per-token expansion done once a step.
def sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, scaling):
    if inputs.shape[0] != token_nums:
        return _ORIGINAL["sgmv_shrink"](inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                                        lora_indices_tensor, batches, max_seq_length, token_nums, scaling)
    mask = _sgmv_mask(seq_len_tensor, lora_indices_tensor, lora_a_weights.shape[0], output_tensor.dtype)
    _write_shrink(_products(inputs, lora_a_weights, mask, output_tensor.dtype), output_tensor, scaling)


def sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, add_inputs=False):
    if inputs.shape[0] != token_nums or output_tensor.shape[0] != token_nums:
        return _ORIGINAL["sgmv_expand"](inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                                        lora_indices_tensor, batches, max_seq_length, token_nums, add_inputs)
    mask = _sgmv_mask(seq_len_tensor, lora_indices_tensor, lora_b_weights.shape[0], output_tensor.dtype)
    _write_expand(_products(inputs, lora_b_weights, mask, output_tensor.dtype), output_tensor, add_inputs)


def sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                      batches, max_seq_length, token_nums, slice_offset, slice_size, add_inputs=False):
    if inputs.shape[0] != token_nums or output_tensor.shape[0] != token_nums:
        return _ORIGINAL["sgmv_expand_slice"](inputs, lora_b_weights, output_tensor, b_seq_start_loc,
                                              seq_len_tensor, lora_indices_tensor, batches, max_seq_length,
                                              token_nums, slice_offset, slice_size, add_inputs)
    mask = _sgmv_mask(seq_len_tensor, lora_indices_tensor, lora_b_weights.shape[0], output_tensor.dtype)
    _write_expand(_products(inputs, lora_b_weights, mask, output_tensor.dtype),
                  output_tensor[:, slice_offset: slice_offset + slice_size], add_inputs)


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
