"""Self-service accounts: registration, email verification, password reset."""

from fastapi import APIRouter

router = APIRouter(tags=["accounts"])
