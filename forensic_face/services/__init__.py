"""What a user does — cases, analysis, enrolment, search, reports, demo — called by both the CLI and the GUI."""
