"""Case reports (PDF) and the figures and wording the report and the GUI share."""
