"""VideoPoet's super-resolution transformer: model, trainer, MaskGIT sampler."""
