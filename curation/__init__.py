"""Curation of a collection: dedup, labels, validation, statistics, splits, releases."""
