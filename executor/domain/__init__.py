"""Plain domain types: what a run, a step, an outcome and a run-store entry are."""
