"""Bridges to other frameworks: :mod:`fnlearn.interop.torch` carries a running PyTorch job
(weights, optimizer state, lr scheduler, whole checkpoints) into fnlearn and back.

Nothing here is imported by ``import fnlearn``; torch is imported only when a converter runs.
"""
