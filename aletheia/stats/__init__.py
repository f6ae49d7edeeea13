"""What a data file holds.

Readers, column sketches, profiles, validation, drift, splits and reports.
"""
