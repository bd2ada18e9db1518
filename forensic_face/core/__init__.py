"""Bottom layer: error hierarchy, progress/cancel protocol and plain result types. No Qt, no torch."""
