"""What is asked and how answers become results: task specs, hints, parsing, the pipeline."""
