"""Hugging Face `datasets` interop: Arrow files and `save_to_disk` folders in, `datasets.Dataset` in and out."""
