"""Torch-free batch scoring of exported movierec models (rec-score)."""
