"""What a person reads and uses after a run: report.md and its plots, predictions, exported models."""
