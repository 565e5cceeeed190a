"""`make demo`: the whole system on one machine, with a simulated warehouse."""
