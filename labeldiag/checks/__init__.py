"""Pure checks: plain numbers and arrays in, findings out (numpy/scipy only, no torch)."""
