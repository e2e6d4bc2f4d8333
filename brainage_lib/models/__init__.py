"""Network architectures, one paper architecture per module."""
