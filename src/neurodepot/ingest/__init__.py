"""DICOM listener, routing, prearchive, archive and bulk import."""
