"""Case reports (PDF) and the figures the report and the GUI share."""
