"""One executor class per step type, written against ports only."""
