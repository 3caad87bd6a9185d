"""scorecard."""
