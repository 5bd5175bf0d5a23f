"""Evaluation: dataset statistics (`stats`), model metrics on the validation set (`metrics`), how the
two relate across a sweep's runs (`relate`) and the report that shows it (`report`).

Import the submodules qualified (`from datadiet.eval import relate`), so `eval` never shadows the builtin.
"""
