"""Guidelines: versioned documents of rules with exemplars, published and acknowledged."""
