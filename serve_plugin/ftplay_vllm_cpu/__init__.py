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
_WEIGHTS = {}  # {data_ptr: (key, weight tensor, its active slots side by side)}
_MASKS = {}   # {"bgmv"|"sgmv": (key, index tensors, (active slots, mask))}: one step's, reused by every layer


def _mask(kind, tensors, slots, dtype, make):
    """(active slots as a tuple, (len(active), tokens, 1) one-hot of each token's slot among them, zero for slot
    -1), built once per step: every LoRA layer of a forward pass passes views of the same persistent index
    buffers, unchanged. Only the slots some token uses count: the free slot kept for runtime loading (and an
    adapter nobody asked for in this batch) would otherwise cost a third of the LoRA FLOPs. A hit needs the same
    memory, shape and `_version` (any in-place update of a buffer, or of a view of it, bumps it); the cache holds
    the tensors it was built from, so their memory cannot be freed and reused by another tensor meanwhile."""
    import torch

    key = tuple((t.data_ptr(), tuple(t.shape), t.stride(), t._version) for t in tensors) + (slots, dtype)
    hit = _MASKS.get(kind)
    if hit is not None and hit[0] == key:
        return hit[2]
    indices = make()
    active = tuple(int(s) for s in torch.unique(tensors[0]).tolist() if 0 <= s < slots)
    ids = torch.tensor(active, dtype=indices.dtype)
    mask = (indices.unsqueeze(0) == ids.unsqueeze(1)).to(dtype).unsqueeze(2)
    _MASKS[kind] = (key, tensors, (active, mask))
    return active, mask


def _products(inputs, weights, mask, dtype):
    """(tokens, out) = inputs @ weights[slot(t)].T for each token t, zero for slot -1, as ONE GEMM whatever the
    mix: the active slots' weights (slots, out, in) side by side; each token's input put in its slot's block
    of a (tokens, slots * in) matrix (zero elsewhere) for an expand (in = rank), or every active slot's product
    computed and the token's own kept for a shrink (out = rank). The per-slot gather/scatter before
    (x[rows], out[rows] = ...) cost 18% of the engine's time in a mixed batch (py-spy)."""
    import torch

    active, mask = mask
    if weights.dim() == 4:
        weights = weights.squeeze(1)
    slots, out, k = weights.shape
    if not active:
        return inputs.new_zeros((inputs.shape[0], out), dtype=dtype)
    x, mask_t = inputs.to(dtype), mask.transpose(0, 1)            # mask_t: (tokens, active slots, 1)
    w = _side_by_side(weights, active, dtype, shrink=out <= k)
    if out <= k:   # shrink: every active slot's (tokens, rank) at once, then each token's own slot
        return (torch.mm(x, w).view(-1, len(active), out) * mask_t).sum(1)
    return torch.mm((x.unsqueeze(1) * mask_t).reshape(x.shape[0], len(active) * k), w)


def _side_by_side(weights, active, dtype, shrink):
    """The active slots of weights (slots, out, in) as one (len(active) * in, out) matrix for an expand, or
    (in, len(active) * out) for a shrink; cached per weight tensor and slot set until it changes (`_version`)."""
    key = (weights.data_ptr(), tuple(weights.shape), weights.stride(), weights._version, dtype, active)
    hit = _WEIGHTS.get(key[0])
    if hit is None or hit[0] != key:
        if len(_WEIGHTS) > 512:
            _WEIGHTS.clear()
        w = weights[list(active)].to(dtype)                         # (active, out, in), a copy
        n, out, k = w.shape
        w = w.reshape(n * out, k).t() if shrink else w.transpose(1, 2).reshape(n * k, out)
        hit = _WEIGHTS[key[0]] = (key, weights, w.contiguous())
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


# One layer's slices (q/k/v of qkv_proj, gate/up of gate_up_proj) share their input: vLLM's CPU wrapper runs a shrink
# and an expand per slice; here ONE shrink (every active slot's and slice's lora_a side by side) and ONE expand (the
# slices' lora_b block-diagonal, so each slice's rank block lands in its own output columns) per layer, whatever the
# number of slices: a tiny model's step is bound by per-op overhead, not by these FLOPs.
def add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None, **kwargs):
    import torch

    x2, idx = x.view(-1, x.shape[-1]), self.token_lora_indices
    y2 = y.view(-1, y.shape[-1])
    if (x2.shape[0] != idx.shape[0] or y2.shape[0] != x2.shape[0] or buffer is not None
            or any(b.shape[-2] != n for b, n in zip(lora_b_stacked, output_slices))):
        return _ORIGINAL["add_lora_linear"](self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices,
                                            buffer=buffer, **kwargs)
    active, mask = _bgmv_mask(idx, lora_a_stacked[0].shape[0], torch.float32)
    add = kwargs.get("add_inputs", True)
    n_out = sum(output_slices)
    if not active:   # no token of this step uses an adapter
        if not add:
            y2[:, :n_out] = 0
        return None
    wa, wb = _fused(lora_a_stacked, lora_b_stacked, output_slices, active, y.dtype)
    mask_t = mask.transpose(0, 1)                                       # (tokens, active slots, 1)
    h = (torch.mm(x2.to(torch.float32), wa).view(x2.shape[0], len(active), -1) * mask_t).sum(1)
    if scale != 1.0:
        h = h * scale
    out = torch.mm((h.unsqueeze(1) * mask_t).reshape(x2.shape[0], -1).to(y.dtype), wb)
    if add:
        y2[:, :n_out] += out
    else:
        y2[:, :n_out] = out
    return None


def _fused(lora_a_stacked, lora_b_stacked, output_slices, active, dtype):
    """(in, active * slices * rank) lora_a and (active * slices * rank, sum(output_slices)) block-diagonal lora_b
    of one layer, rows and columns in (slot, slice, rank) order; cached until a weight changes (`_version`)."""
    import torch

    key = tuple((w.data_ptr(), tuple(w.shape), w._version) for w in (*lora_a_stacked, *lora_b_stacked))
    key += (active, dtype)
    hit = _WEIGHTS.get(("fused", key[0][0]))
    if hit is not None and hit[0] == key:
        return hit[2]
    if len(_WEIGHTS) > 512:
        _WEIGHTS.clear()
    sl, n_s = list(active), len(lora_a_stacked)
    a = torch.stack([(w.squeeze(1) if w.dim() == 4 else w)[sl] for w in lora_a_stacked], 1)  # (A, S, r, in)
    n_a, _, r, k = a.shape
    wa = a.reshape(n_a * n_s * r, k).t().contiguous().to(torch.float32)
    wb = torch.zeros(n_a, n_s, r, sum(output_slices), dtype=dtype)
    off = 0
    for s, (w, n) in enumerate(zip(lora_b_stacked, output_slices)):
        w = w.squeeze(1) if w.dim() == 4 else w                         # (slots, out, r)
        wb[:, s, :, off:off + n] = w[sl].transpose(1, 2).to(dtype)
        off += n
    hit = _WEIGHTS[("fused", key[0][0])] = (key, (lora_a_stacked, lora_b_stacked), (wa, wb.reshape(n_a * n_s * r, -1)))
    return hit[2]


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
    if os.environ.get("FTPLAY_VLLM_CPU_LORA_FUSED", "1") != "0":
        _ORIGINAL.setdefault("add_lora_linear", punica_cpu.PunicaWrapperCPU.add_lora_linear)
        punica_cpu.PunicaWrapperCPU.add_lora_linear = add_lora_linear
    log.info("ftplay: grouped CPU LoRA ops installed (%s)", ", ".join(_FUNCS))
