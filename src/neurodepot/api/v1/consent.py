"""Placeholder: filled in by the consent issue's work on `consent`."""

from fastapi import APIRouter

from neurodepot.api.schemas import GUARDED_ERRORS

router = APIRouter(tags=["consent"], responses=GUARDED_ERRORS)
