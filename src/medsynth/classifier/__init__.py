"""Chest X-ray classifiers: the project's own (trained on a dataset's training split) and torchxrayvision's
DenseNet-121 where its weights are present. Used to score real vs generated images and for domain features."""
