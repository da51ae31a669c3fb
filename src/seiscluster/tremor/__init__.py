"""Tremor branch: waveform ingest, spectrograms and deep embedded clustering (ClusTremor)."""
