"""GDPR tools: subject access export, erasure, retention, record of processing."""
