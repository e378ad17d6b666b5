"""Batch layer: land the raw snapshot, full-load it schema-on-read, conform silver, build the gold batch views."""
