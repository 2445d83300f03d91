"""One router per file: health, models, datasets, embed, nemd, metrics."""
