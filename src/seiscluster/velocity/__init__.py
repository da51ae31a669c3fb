"""Velocity branch: cluster the 1-D depth profiles of a 3-D tomography model."""
