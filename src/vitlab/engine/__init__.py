"""The headless engine: models, data, training loop, profiling and the run store. Never imports Textual."""
