"""Data: dataset versions named by the hash of their rows, staged from frames, files and SQL
in constant memory, with profiles and data contracts validated in DuckDB."""
