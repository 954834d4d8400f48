"""The prediction log: its tables and columns, the writer servers append to, and the
readers that monitors and deployment reports share."""
