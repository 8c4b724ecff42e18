"""Model families, one module each (added by the chapters that teach them)."""
