"""datadiet: does training-data quality or quantity matter more for a small language model?"""

__version__ = "0.1.0"
