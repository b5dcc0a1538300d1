"""Signing in and out with a password: the session cookie and its CSRF token."""

from fastapi import APIRouter

router = APIRouter(tags=["session"])
