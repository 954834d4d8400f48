"""Domain types, ids, errors and clock: the bottom layer, standard library only."""
