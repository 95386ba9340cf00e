"""The annotator workbench: per-annotator queues with overlap and hidden gold checks,
leases, skips and uncertainty flags; submissions validated at entry."""
