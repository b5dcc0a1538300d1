"""Consent records, Data Usage Agreements, GDPR exports and erasure (to come)."""
