"""The command line, `loopline NOUN VERB`: one module per noun, each a thin caller of the services."""
