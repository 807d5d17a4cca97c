"""persrm-gen: synthetic preference data and trainers for personalized reward models."""

__version__ = "0.1.0"
