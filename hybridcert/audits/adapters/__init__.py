"""Adapters that turn real model families into a ``Filter`` (tokens [B, L] + images [B, C, H, W] -> decisions [B])."""

from hybridcert.audits.adapters.module import ModuleFilter, load_safetensors_module

__all__ = ["ModuleFilter", "load_safetensors_module"]
