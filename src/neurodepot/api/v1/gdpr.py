"""Placeholder: filled in by the consent issue's work on `gdpr`."""

from fastapi import APIRouter

from neurodepot.api.schemas import GUARDED_ERRORS

router = APIRouter(tags=["gdpr"], responses=GUARDED_ERRORS)
