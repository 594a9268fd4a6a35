"""Evaluation: held-out loss and exact match for finetuned causal LMs (more metrics follow)."""
