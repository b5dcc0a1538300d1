"""Accounts, memberships, the access policy, and the audit log."""
