"""Generation, judges, safety and capability metrics, break cost."""
