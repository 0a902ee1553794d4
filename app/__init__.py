"""The Torchwork desktop app: a Qt view of engine state that owns no training logic."""
