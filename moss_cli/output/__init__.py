"""Results into files: one writer per format, subtitle layout and line breaking, report pages."""
