"""Placeholder: filled in by the consent issue's work on `shared`."""

from fastapi import APIRouter

from neurodepot.api.schemas import GUARDED_ERRORS

router = APIRouter(tags=["shared"], responses=GUARDED_ERRORS)
