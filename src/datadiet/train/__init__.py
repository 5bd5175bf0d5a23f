"""Tokenizer, token files, the GPT model and its trainer.

Modules: `tokenizer` (byte-level BPE, fixed across dataset variants), `data` (memory-mapped token
files), `model` (the GPT decoder), `config` (`TrainConfig`, presets, `--set` overrides), `trainer`
(`train(...) -> TrainResult`) and `checkpoint` (atomic checkpoints). Import the submodules directly;
this package imports nothing so that `curate --help` does not load torch.
"""
