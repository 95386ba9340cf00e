"""Analytics over a project's work: the lead dashboard (volume, throughput, agreement and
audit trends, error categories, turnaround, the annotator scorecard) kept as stored
snapshots so that the page answers in milliseconds whatever the project's size."""
