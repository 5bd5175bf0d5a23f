"""Tokenizer, token files, the GPT model and its trainer.

Modules: `tokenizer` (byte-level BPE, fixed across dataset variants), `data` (memory-mapped token
files), `model` (the GPT decoder), `config` (`TrainConfig`, presets, `--set` overrides), `trainer`
(`train(...) -> TrainResult`) and `checkpoint` (atomic checkpoints). Import the submodules directly;
this package imports nothing so that `curate --help` does not load torch.
"""

# The names of `config.PRESETS`, here so that `--help` lists them (and a wrong one fails at parsing)
# without importing torch (tests/train/test_config.py checks the two agree).
PRESET_NAMES = ("paper", "tiny", "small", "base")
# `TrainConfig.sampler`'s values, for `--sampler`.
SAMPLERS = ("random", "epoch")
