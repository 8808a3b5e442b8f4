"""Engine: the tracker protocols (sans-IO codecs), session actors, domain events and heuristics.
Depends on storage only; never on projections' SQL or on api."""
