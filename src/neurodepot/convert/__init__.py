"""Conversion: dcm2niix per scan, BIDS mapping rules, the BIDS plan, export and validation."""
