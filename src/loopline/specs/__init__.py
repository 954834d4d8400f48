"""The YAML documents people write and edit: monitor specs, data contracts, retraining
policies. Validated with pydantic; every error names the field and the file."""
