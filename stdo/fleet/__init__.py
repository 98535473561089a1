"""stdo-fleet: a catalogue of videos through cluster -> train -> export on Ray (jobs, stages, catalogue, engine)."""
