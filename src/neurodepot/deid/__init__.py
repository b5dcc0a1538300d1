"""De-identification profile, pseudonyms, scrubbers and the release checker (to come)."""
