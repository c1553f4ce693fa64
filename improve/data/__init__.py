"""Where images come from (sources/), the decode-once cache, the profile, splits and folds, the DataModule."""
