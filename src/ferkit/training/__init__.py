"""Training: fitting models on datasets and saving them as runs."""
