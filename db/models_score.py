"""Models of risk scores, scorecards and trained models (issue 7)."""
