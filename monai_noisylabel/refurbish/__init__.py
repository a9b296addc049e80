"""refurbish."""
