"""The sample-data generator in parts: fragments (data), text (one ticket), generate (the rows), checks."""
