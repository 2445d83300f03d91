"""Clustering for PAUC: multi-K faiss k-means over momentum features (no models, no training)."""
