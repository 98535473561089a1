"""Playback of a bundle: LR video + chunk map + per-chunk models -> SR frames."""
