"""Numeric precision of the local engines: which dtype the weights take, and int8 on a CPU.

    resolve("auto", "cpu") -> "int8"      resolve("auto", "cuda") -> "bf16"
    quantize_linears(model, keep=lambda name, module: ...)   # int8 linear layers, in place

`--precision` (a request field, so it joins the request hash and the sidecar) chooses:

- fp32: the checkpoint in float32, as transformers loads it.
- bf16: weights and activations in bfloat16 (float16 on a GPU without bf16).
- int8: linear layers with int8 weights (per output channel) multiplied on PyTorch's dynamic
  quantization kernel (fbgemm's int8 GEMM, `quantized::linear_dynamic`, what
  `torch.ao.quantization.quantize_dynamic` puts in a model). x86 CPUs only: the kernel has no GPU
  version.
- auto: int8 on an x86 CPU, bf16 on a GPU (fp32 on a CPU without the int8 kernel).

Why dynamic quantization (and not torchao): on the 2-core development CPU it made MusicGen-small's
decoder about 5x faster than float32, while torchao 0.18's eager int8 path was 10-20x *slower* than
float32 there (measured by an earlier session; torchao's int8 needs torch.compile to be fast). Why
not weight-only int8 (`torch._weight_int8pack_mm`, float activations times int8 weights): it made
the same decoder about 2x slower than float32 on that CPU.

How `Int8Linear` uses the kernel (tests/test_precision.py measures each point):

1. Per token. The kernel picks ONE activation scale for its whole input (min and max over every
   row: aten/src/ATen/native/quantized/cpu/qlinear_dynamic.cpp, `apply_dynamic_impl`), so a row's
   result would depend on the other rows of the batch: clip k of a batch would not reproduce alone
   with its seed, and a quiet row next to a loud one would lose precision. Each row is mapped onto
   [0, 1] first, u = (x - lo) / (hi - lo), so the kernel's scale is the same whatever the batch;
   the map is undone on the output with the weight's row sums: W x = (hi - lo) W u + lo W 1.
2. Two passes of the activations, where one is not enough. The kernel quantizes activations to 7
   bits (reduce_range: without VNNI, fbgemm sums pairs of products in int16, which 8-bit activations
   could overflow). On the real 1B MIDI-LLM architecture that rounding was most of int8's error
   (cosine 0.974 to the float32 logits, under the bound). So for MIDI-LLM and the lyrics LLM the
   remainder r = u - round(127 u) / 127 goes through the same call as a second row (as 127 r + 1/2,
   in [0, 1]): W u = W round(u) + W r, and what is left is the rounding of the remainder, 1/127 of
   1/127. The only real rounding is then the weights' (cosine 0.996 there), for about 10% more time
   on that model (its 2048-wide weights are read once for both rows). MusicGen's decoder meets the
   bound with one pass (cosine 0.997, KL 0.0025 on the real small architecture with guidance) and
   its narrower layers pay relatively more for the second: it keeps one (two cost it about a
   quarter of its speed).

This module imports torch lazily: the CLI reads PRECISIONS without loading it.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, get_args

from muse_cli.contracts import Precision
from muse_cli.errors import InputError, RuntimeFailure

if TYPE_CHECKING:
    import torch

PRECISIONS: tuple[str, ...] = get_args(Precision)  # auto, fp32, bf16, int8: the contracts' one list
REMOTE_PRECISIONS = ("auto", "bf16")  # what the Modal GPU classes run: their bf16 path, unchanged


def check(precision: str) -> str:
    """The precision name, or InputError (engine constructors take it from requests or callers)."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def resolve(precision: str, device: str) -> str:
    """The concrete precision on `device`: fp32, bf16, fp16 (a GPU without bf16) or int8.

    int8 on a GPU is refused (InputError, exit 2): dynamic quantization has CPU kernels only, and a
    GPU that runs bf16 gains nothing from int8 activations. `auto` on a CPU without PyTorch's x86 int8
    kernel (an ARM Mac, say) is fp32.
    """
    check(precision)
    device = str(device)
    gpu = not device.startswith("cpu")
    if precision == "auto":
        precision = "bf16" if gpu else ("int8" if int8_available() else "fp32")
    if precision == "int8" and gpu:
        raise InputError(
            f"precision int8 runs on a CPU only (PyTorch's int8 kernels have no GPU version); on {device} "
            "use --precision auto or bf16"
        )
    if precision == "bf16" and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_bf16_supported():
            return "fp16"
    return precision


def int8_available() -> bool:
    """PyTorch's x86 int8 kernels (fbgemm) are built into this torch."""
    import torch

    return bool({"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines))


def check_remote(precision: str) -> None:
    """Modal's GPU classes run their own bf16 path: fp32 and int8 are local-backend settings."""
    if precision not in REMOTE_PRECISIONS:
        raise InputError(
            f"--precision {precision} is for --backend local; the Modal GPUs run bf16 "
            "(use --precision auto or bf16 there)"
        )


def dtype(resolved: str) -> "torch.dtype":
    """The floating dtype of a resolved precision (int8 models keep their other layers in float32)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(resolved, torch.float32)


def same(request_precision: str, engine_precision: str, device: str, engine: str) -> None:
    """A request must ask for the precision the engine was loaded at (InputError otherwise).

    The local backend builds one engine per precision, so this holds there by construction; it
    guards an engine loaded once by a host (Modal) against a request it cannot honour.
    """
    if resolve(request_precision, device) != engine_precision:
        raise InputError(
            f"this {engine} engine runs at {engine_precision} on {device}; the request asks for "
            f"precision {request_precision}",
            hint="use --backend local for fp32 and int8",
        )


# -------------------------------------------------------------------------------------- int8


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.ao.quantization warns that it is deprecated (it still works in torch 2.13): the engines
    choose it knowingly, and their users cannot act on the warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"(?s).*quantized tensor creation functions")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\.")
        yield


def _int8_modules() -> Any:
    """PyTorch's dynamic-quantization settings (`per_channel_dynamic_qconfig`), or a clear failure."""
    try:
        with _quiet():
            from torch.ao.quantization import per_channel_dynamic_qconfig
    except ImportError as exc:  # a future torch without torch.ao.quantization
        raise RuntimeFailure(
            f"precision int8 needs PyTorch's dynamic quantization (torch.ao.quantization): {exc}",
            hint="use --precision fp32, or a torch version that still has torch.ao.quantization (2.13 does)",
        ) from None
    if not int8_available():
        raise RuntimeFailure(
            "precision int8 needs PyTorch's x86 int8 kernels (fbgemm), not built into this torch",
            hint="use --precision fp32",
        )
    return per_channel_dynamic_qconfig


def _int8_linear_class():
    import torch

    class Int8Linear(torch.nn.Module):
        """A float Linear's int8 twin: int8 weights per output channel on PyTorch's dynamic-quantization
        kernel, activations per token in two passes (module docstring). float32 in, float32 out.

        The weight goes through what `quantize_dynamic` does to a Linear with `per_channel_dynamic_qconfig`
        (its weight observer, `torch.quantize_per_channel`, `quantized::linear_prepack`); forward calls
        the kernel `DynamicQuantizedLinear.forward` calls (torch/ao/nn/quantized/dynamic/modules/linear.py:
        `quantized::linear_dynamic`, reduce_range=True). Built directly rather than through that module,
        which packs the weight three times (loading MusicGen-small's decoder took 8 s instead of 3).
        """

        def __init__(self, linear: "torch.nn.Linear", two_pass: bool = True):
            super().__init__()
            self.two_pass = two_pass
            qconfig = _int8_modules()
            weight = linear.weight.detach().float()
            with _quiet():
                observer = qconfig.weight()  # per output channel, symmetric, int8
                observer(weight)
                scale, zero_point = observer.calculate_qparams()
                qweight = torch.quantize_per_channel(weight, scale.double(), zero_point.long(), 0, torch.qint8)
                self._packed = torch.ops.quantized.linear_prepack(qweight, None)
            bias = linear.bias.detach().float().clone() if linear.bias is not None else None
            # W 1, to undo the affine maps: the int8 codes summed exactly (int32 holds 128 x 16M), times
            # each channel's scale
            codes = qweight.int_repr().sum(dim=1, dtype=torch.int32)
            self.register_buffer("rowsum", (codes.double() * qweight.q_per_channel_scales()).float())
            self.register_buffer("bias", bias if bias is not None else torch.zeros_like(self.rowsum))
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            x = x.float()
            lo, hi = x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)
            span = (hi - lo).clamp_min_(1e-30)
            u = (x - lo) / span  # each row spans [0, 1]: the kernel's scale is 1/127 whatever the batch
            if not self.two_pass:
                y = torch.ops.quantized.linear_dynamic(u, self._packed, True)
                return torch.addcmul(torch.addcmul(self.bias, lo, self.rowsum), y, span)
            # What the kernel rounds away, r = u - round(127 u) / 127, lies in +-0.5/127: as v = 127 r + 0.5
            # it is in [0, 1] too, so it shares the call (and the scale u fixes) as a second row.
            v = torch.frac(u * ACTIVATION_LEVELS + 0.5)
            y = torch.ops.quantized.linear_dynamic(torch.stack((u, v)), self._packed, True)
            # W x = span (W u + W r) + lo W 1, with W r = (W v - W 1 / 2) / 127
            out = torch.addcmul(torch.addcmul(self.bias, lo - span * (0.5 / ACTIVATION_LEVELS), self.rowsum), y[0], span)
            return torch.addcmul(out, y[1], span / ACTIVATION_LEVELS)

        def extra_repr(self) -> str:
            passes = "two int8 passes" if self.two_pass else "one 7-bit pass"
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"int8 weights per channel, activations per token in {passes}")

    return Int8Linear


_INT8_LINEAR: Any = None
ACTIVATION_LEVELS = 127.0  # the kernel's activation codes with reduce_range: 0..127 over [0, 1]


def int8_linear(linear: "torch.nn.Linear", two_pass: bool = True) -> Any:
    """The int8 twin of one float Linear (see Int8Linear)."""
    global _INT8_LINEAR
    if _INT8_LINEAR is None:
        _INT8_LINEAR = _int8_linear_class()
    return _INT8_LINEAR(linear, two_pass)


def is_int8(module: Any) -> bool:
    return _INT8_LINEAR is not None and isinstance(module, _INT8_LINEAR)


def _int8_embedding_class():
    import torch

    class Int8Embedding(torch.nn.Module):
        """An Embedding with 8-bit rows: each row's own float scale and offset (fbgemm's row-wise byte
        format, `quantized::embedding_bag_byte_prepack`; what PyTorch's quantized Embedding with
        `float_qparams_weight_only_qconfig` stores). Looked up with `embedding_bag_byte_rowwise_offsets`,
        one row per bag. Packed a few thousand rows at a time from the checkpoint's dtype, so a bf16
        vocabulary is never held in float32 whole (Qwen2.5-7B's would be 2.2 GB)."""

        def __init__(self, embedding: "torch.nn.Embedding", chunk: int = 8192):
            super().__init__()
            weight = embedding.weight.detach()
            packed = [torch.ops.quantized.embedding_bag_byte_prepack(weight[i:i + chunk].float().contiguous())
                      for i in range(0, weight.shape[0], chunk)]
            self.register_buffer("packed", torch.cat(packed))
            self.num_embeddings, self.embedding_dim = weight.shape

        def forward(self, ids: "torch.Tensor") -> "torch.Tensor":
            flat = ids.reshape(-1)
            offsets = torch.arange(flat.numel(), dtype=flat.dtype, device=flat.device)
            rows = torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                self.packed, flat, offsets, False, 0, False, None, None, False)
            return rows.view(*ids.shape, self.embedding_dim)

        def extra_repr(self) -> str:
            return f"{self.num_embeddings}, {self.embedding_dim}, 8-bit rows"

    return Int8Embedding


_INT8_EMBEDDING: Any = None


def int8_embedding(embedding: "torch.nn.Embedding") -> Any:
    """The 8-bit twin of an Embedding (see Int8Embedding); its lookups return float32."""
    global _INT8_EMBEDDING
    _int8_modules()
    if _INT8_EMBEDDING is None:
        _INT8_EMBEDDING = _int8_embedding_class()
    return _INT8_EMBEDDING(embedding)


def own_memory(model: Any) -> None:
    """Copy every parameter and buffer left in float into memory of its own (in place).

    transformers maps safetensors checkpoints into memory: a tensor loaded from the file is a view of
    the mapping, and one such view keeps every page of the file that was ever read resident. After
    quantizing, the float layers left (norms, embeddings, a text encoder, EnCodec) would keep the
    whole float checkpoint in the process's memory; copied out, the mapping is released.
    """
    import torch

    with torch.no_grad():
        for param in model.parameters():
            # in place, so every holder of the parameter sees the copy (an LSTM's _flat_weights, tied weights)
            param.data = param.data.clone()
        for module in model.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None:  # a new tensor: a view's `_base` would keep the mapped original alive
                    module._buffers[name] = buffer.clone()


def quantize_linears(model: Any, keep: Callable[[str, Any], bool] | None = None, two_pass: bool = True) -> list[str]:
    """Swap every torch.nn.Linear of `model` (in place) for its int8 twin, except those `keep`
    names (called with the module's dotted name and the module). Returns the names swapped.
    `two_pass`: activations in two passes (precise) or one (faster; module docstring).

    One layer at a time, and each float layer is dropped as soon as its twin replaces it (only names
    are held while walking), so the model never holds a float and an int8 copy of all its layers.
    """
    import torch

    names = [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    swapped: list[str] = []
    for name in names:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        child = getattr(parent, child_name)
        if keep is not None and keep(name, child):
            continue
        setattr(parent, child_name, int8_linear(child, two_pass))
        del child
        swapped.append(name)
    return swapped
