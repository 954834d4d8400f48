"""Data: fingerprints of tables today; dataset versions and validation build on them."""
