"""Datasets: layout detection, decoding with a cache, balancing and class subsets."""

from ferkit.data.balance import (
    cap_per_class,
    class_weights,
    stratified_split,
    stratified_subset,
    undersample,
)
from ferkit.data.dataset import Dataset, Split, load_dataset, resolve_split_name
from ferkit.data.images import ImageProblem, decode_image
from ferkit.data.problems import Problem
from ferkit.data.vocabulary import CANONICAL, canonical_name, require_canonical

__all__ = [
    "CANONICAL",
    "Dataset",
    "ImageProblem",
    "Problem",
    "Split",
    "canonical_name",
    "cap_per_class",
    "class_weights",
    "decode_image",
    "load_dataset",
    "require_canonical",
    "resolve_split_name",
    "stratified_split",
    "stratified_subset",
    "undersample",
]
