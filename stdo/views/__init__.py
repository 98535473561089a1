"""Multi-view (3D) super-resolution through video models: SequenceMatters' orderings, stdo's upscalers, consistency."""
