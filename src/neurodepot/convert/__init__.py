"""dcm2niix, BIDS mapping rules, export and validation (to come)."""
