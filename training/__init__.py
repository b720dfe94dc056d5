"""Training, evaluation and export of the fer-stream expression classifier."""
