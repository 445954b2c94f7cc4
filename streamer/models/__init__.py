"""Official model checkpoints: the catalogue of what the project runs, a verified download cache, and `setup`
(checkpoint -> exported model directories -> a ready configuration). The CLI's `models` and `setup` commands are
thin wrappers over this package."""
