"""Running the expression classifier: model loading (``engine``) and the batching worker."""
