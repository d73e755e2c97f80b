"""ferkit: train, compare, explain and deploy facial-expression recognisers."""

__version__ = "0.1.0"
