"""transforms/soft_label."""
