"""stdo: Spatial-Temporal Data Overfitting for neural-enhanced video delivery."""

__version__ = "0.1.0"
