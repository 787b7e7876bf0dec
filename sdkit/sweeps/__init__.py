"""Sweeps: A1111 axis syntax (:mod:`.axis`), the sweep spec (:mod:`.sweep`), running it with a cache
(:mod:`.runner`) and labelled grids (:mod:`.grid`)."""
