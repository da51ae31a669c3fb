"""seiscluster: configuration-driven unsupervised clustering of seismic data."""

__version__ = "0.1.0"
