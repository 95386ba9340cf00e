"""Projects, label schemas, items, annotations, gold labels, predictions, imports and exports."""
