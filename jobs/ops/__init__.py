"""Operating the lake: maintenance, status and history of what ran, backfills, what the lake holds."""
