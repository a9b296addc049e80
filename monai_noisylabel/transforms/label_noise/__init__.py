"""transforms/label_noise."""
