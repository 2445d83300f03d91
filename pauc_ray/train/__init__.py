"""Distributed PAUC pretraining on Ray Train (``python -m pauc_ray.train``)."""
