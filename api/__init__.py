"""HTTP surface (Quart-trio on Hypercorn) and the command line.

The outermost layer: nothing imports it.
"""
