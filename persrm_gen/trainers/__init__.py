"""Minimal SFT and GRPO trainers and the evaluator, on TRL."""
