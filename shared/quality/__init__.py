"""Data quality: completeness scores, validation rules, gaps, enrichment, duplicates."""
