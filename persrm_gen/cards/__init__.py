"""Dataset and model cards rendered from templates in this folder."""
