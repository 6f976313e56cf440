"""Where tensors live and in what precision: CUDA with mixed precision when present, else the CPU in fp32.

bf16 autocast needs no gradient scaler; fp16 (older GPUs) does. On the CPU
everything stays in fp32, so CPU reruns give identical numbers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from transformers import CLIPModel

from fashion_search.config import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None = full precision
    compile: bool = False  # torch.compile both encoder towers (runtime.compile)

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A real scaler for fp16, a pass-through otherwise (enabled=False)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Host to device without a synchronisation when the source is pinned."""
        return tensor.to(self.device, non_blocking=True)

    def compiled(self, model: CLIPModel) -> CLIPModel:
        """The same model, its vision and text towers compiled in place when `compile` is on.

        In-place `nn.Module.compile` keeps the module tree, so state_dict keys and saved
        checkpoints are exactly those of the eager model. A tower compiled before is left
        alone: compiling it again would throw away the graphs already built.
        """
        if self.compile:
            for tower in (model.vision_model, model.text_model):
                if tower._compiled_call_impl is None:  # what nn.Module.compile sets
                    tower.compile()
        return model


def pick_runtime(device: str = "auto", precision: str = "auto", compile: bool = False) -> Runtime:
    """`device`: auto | cpu | cuda; `precision`: auto | fp32 | bf16 | fp16; `compile`: torch.compile the towers."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device=cuda but no CUDA device is visible; use runtime.device=auto or cpu")
    chosen = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    if chosen.type == "cpu" or precision == "fp32":
        return Runtime(chosen, None, compile)
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return Runtime(chosen, torch.bfloat16 if precision == "bf16" else torch.float16, compile)


CPU = pick_runtime("cpu")
