"""A simulated warehouse that speaks raw signals: tags, antennas and readers with read
probabilities and read cycles, doors, vehicles at the gate, sensor samples, GPS fixes and link
cuts, on a simulated clock. ``signals`` is what the world emits; the world model turns a
scenario's description into a time-ordered stream of them."""
