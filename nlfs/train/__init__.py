"""The training engine: profiles, datasets, models, augmentations and the loop that turns a loss
and a profile into per-epoch metrics (`nlfs.evaluate` wraps it into a result record)."""
