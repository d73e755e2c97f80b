"""Explanations for neural-network runs, by job; :mod:`ferkit.evaluation.explain` is the
public module that gathers them."""
