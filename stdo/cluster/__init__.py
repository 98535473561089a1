"""Clustering: score every patch of a clip and group the patches into chunks."""
